"""What every executor is handed: the run's shared context, and running one job with retries.

An executor (registered through ``register_executors``; see :class:`cxrbench.specs.ExecutorSpec`)
only turns planned jobs into finished records, yielding each as soon as it is known; the driver
(:mod:`cxrbench.engine.runner`) writes every record and calls every lifecycle hook.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from rich.markup import escape

from cxrbench.data.prepare import PreparedData
from cxrbench.engine.batches import Batches
from cxrbench.engine.jobs.kernel import Job, JobKind, JobOutput, describe_error, save_output
from cxrbench.plugins import Registry
from cxrbench.results.records import JobRecord
from cxrbench.results.store import RunStore
from cxrbench.suite.schema import Suite

log = logging.getLogger(__name__)

Finished = Iterator[tuple[Job, JobRecord]]
"""What ``executor.run(jobs, ctx)`` yields: each job with its finished (not yet written) record."""


@dataclass
class RunContext:
    """What every job of a run shares, built once by the driver."""

    suite: Suite
    data: PreparedData
    batches: Batches
    registry: Registry
    store: RunStore
    device: torch.device
    """The driver's resolved device (jobs run here run on it)."""
    kind: JobKind
    """The run's job kind: what executing one job means."""
    device_name: str = "auto"
    """The device as asked (auto | cpu | cuda | mps): remote workers resolve it themselves."""
    progress: Any = None
    on_epoch_end: Callable[[str, int, dict[str, Any]], None] | None = None
    """Driver-side delivery of ``on_epoch_end(job, epoch, logs)``."""

    def execute(self, job: Job, on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> JobOutput:
        """Run one job of the run's kind in this process (nothing written; exceptions propagate)."""
        return self.kind.execute(job, self.suite, self.data, self.batches, self.registry, self.device,
                                 self.progress, on_epoch_end)

    def save(self, output: JobOutput) -> JobRecord:
        """Write a finished job's artefacts into the run folder; its record (the driver writes it)."""
        return save_output(output, self.store)

    def failed(self, job: Job, errors: list[str]) -> JobRecord:
        """The record of a job that failed every attempt (``errors``: one per attempt)."""
        return self.kind.failed_record(job, self.data, errors)

    def attempt(self, job: Job, retries: int = 0) -> JobRecord:
        """Execute and save ``job`` in this process, retrying a failure ``retries`` times; never raises
        for a failing job (its record says ``failed``), only for Ctrl-C."""
        def epoch_hook(epoch: int, logs: dict[str, Any]) -> None:
            if self.on_epoch_end is not None:
                self.on_epoch_end(job.id, epoch, logs)

        errors: list[str] = []
        for attempt in range(1, retries + 2):
            try:
                return self.save(self.execute(job, epoch_hook))
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
                log.debug("job %s attempt %d failed:\n%s", job.id, attempt, traceback.format_exc())
                errors.append(describe_error(exc))
                if attempt <= retries and self.progress is not None:
                    self.progress.log(f"[yellow]job {job.id} attempt {attempt} failed ({escape(errors[-1])}); "
                                      f"retrying[/yellow]")
        return self.failed(job, errors)
