"""The hook implementations (entry point ``cxrbench_mlflow.plugin``).

Only lifecycle hooks: the plugin registers no model, dataset or metric. MLflow itself is imported
on the first run event, so listing plugins or models does not pay for it.
"""

from __future__ import annotations

from typing import Any

from cxrbench import hookimpl
from cxrbench.results.records import JobRecord, RunInfo

from cxrbench_mlflow.tracker import MlflowTracker

TRACKER = MlflowTracker()
"""The process-wide tracker; its state is keyed by run folder, so concurrent runs stay apart."""


@hookimpl
def on_run_start(run: RunInfo) -> None:
    TRACKER.run_start(run)


@hookimpl
def on_epoch_end(run: RunInfo, job: str, epoch: int, logs: dict[str, Any]) -> None:
    TRACKER.epoch_end(run, job, epoch, logs)


@hookimpl
def on_model_result(run: RunInfo, record: JobRecord) -> None:
    TRACKER.model_result(run, record)


@hookimpl
def on_run_end(run: RunInfo, records: list[JobRecord], status: str) -> None:
    TRACKER.run_end(run, records, status)
