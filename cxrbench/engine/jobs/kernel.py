"""The job kernel: what every kind of job shares.

A :class:`Job` is one unit of work (a suite's model entry, a fold, a seed). A :class:`JobKind`
(one module per kind in this package) says how a suite's data is prepared, which jobs it plans,
and how one job executes into a :class:`JobOutput`: the record plus its artefacts as bytes, so
that any executor (this process, a Ray worker, a third party's) can run it and the driver alone
writes the run folder with :func:`save_output`.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

import torch

from cxrbench.models.build import build_model  # noqa: F401 - re-exported for job kinds
from cxrbench.results.records import JobRecord, job_id
from cxrbench.results.store import RunStore, now_iso
from cxrbench.suite.schema import ModelEntry, Suite

if TYPE_CHECKING:  # pragma: no cover
    from cxrbench.data.prepare import PreparedData
    from cxrbench.engine.batches import Batches
    from cxrbench.plugins import Registry

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Job:
    """One unit of work: a model entry of the suite, a fold and a seed."""

    entry: ModelEntry
    fold: int
    seed: int

    @property
    def id(self) -> str:
        return job_id(self.entry.key, self.fold, self.seed)


@dataclass
class JobOutput:
    """A finished job before it touches the run folder: the record and its artefacts as bytes.

    ``record.predictions_path``/``checkpoint_path`` are set by :func:`save_output`.
    """

    record: JobRecord
    predictions_csv: bytes = b""
    checkpoint: bytes | None = None
    latency: list[dict[str, Any]] | None = None
    """Latency records (suite ``profile.latency``), written to ``<run>/latency/<job>.json``."""
    external_csv: dict[str, bytes] = field(default_factory=dict)
    """Predictions CSV per suite ``external_test`` set, written to ``<run>/external/<name>/<job>.csv``."""


EpochHook = Callable[[int, dict[str, Any]], None]


class JobKind:
    """A kind of job a suite can ask for; the runner picks one per run (:func:`cxrbench.engine.jobs.job_kind_for`).

    Subclasses define ``name``, ``record_kind`` (``JobRecord.kind`` of their records) and the
    methods below. Instances are stateless and picklable (they travel to Ray workers).
    """

    name: str = ""
    record_kind: str = "model"

    def prepare_data(self, suite: Suite, registry: Registry, progress: Any = None,
                     strict: bool = False) -> PreparedData:
        """The run's data, decoded and split once on the driver."""
        raise NotImplementedError

    def plan(self, suite: Suite, data: PreparedData) -> list[Job]:
        """Every job of the run, in the order they run."""
        raise NotImplementedError

    def before_jobs(self, suite: Suite, data: PreparedData, registry: Registry, store: RunStore,
                    done: set[str]) -> None:
        """Driver-side work before the first job (e.g. baseline rows); nothing by default."""

    def execute(self, job: Job, suite: Suite, data: PreparedData, batches: Batches, registry: Registry,
                device: torch.device, progress: Any = None, on_epoch_end: EpochHook | None = None) -> JobOutput:
        """Run one job without writing anything; exceptions propagate (the executor records them)."""
        raise NotImplementedError

    def failed_record(self, job: Job, data: PreparedData, errors: list[str]) -> JobRecord:
        """The record of a job that failed every attempt: the last error, and how many attempts (if > 1)."""
        error = errors[-1] if errors else "unknown error"
        if len(errors) > 1:
            error += f" [failed {len(errors)} attempts]"
        return JobRecord(job_id=job.id, model=job.entry.key, model_name=job.entry.name, fold=job.fold,
                         seed=job.seed, status="failed", kind=self.record_kind, error=error,
                         model_config=job.entry.model_dump(mode="json"), synthetic=data.synthetic,
                         finished_at=now_iso())


def model_cost(model: torch.nn.Module, suite: Suite) -> dict[str, Any]:
    """The cost fields of the model as trained (suite input size, classes and channels), and that input."""
    from cxrbench.models.cost import cost_fields

    return {**cost_fields(model, suite.input.image_size, suite.input.channels),
            "input": [suite.input.channels, suite.input.image_size, suite.input.image_size]}


def describe_error(exc: BaseException) -> str:
    """``Type: message (at file:line)``: how a failed job's record names its error."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def save_output(output: JobOutput, store: RunStore) -> JobRecord:
    """Write a job's artefacts into the run folder through the store; its record, with their paths
    (the record itself is written by the driver)."""
    from cxrbench.results.latency import write_latency_job

    record = output.record
    pred_path = store.write_bytes(store.predictions_path(record.job_id), output.predictions_csv) \
        if output.predictions_csv else None
    ckpt = store.write_bytes(store.checkpoint_path(record.job_id), output.checkpoint) \
        if output.checkpoint is not None else None
    if output.latency:
        write_latency_job(store, record.job_id, output.latency)
    external = {}
    for name, entry in record.external.items():
        if name in output.external_csv:
            path = store.write_bytes(store.external_predictions_path(name, record.job_id), output.external_csv[name])
            entry = entry | {"predictions_path": store.relative(path)}
        external[name] = entry
    return replace(record, external=external,
                   predictions_path=store.relative(pred_path) if pred_path else None,
                   checkpoint_path=store.relative(ckpt) if ckpt else None)
