"""The job kernel: what every kind of job shares.

A :class:`Job` is one unit of work (a suite's model entry, a fold, a seed). A :class:`JobKind`
(one module per kind in this package) says how a suite's data is prepared, which jobs it plans,
and how one job executes into a :class:`JobOutput`: the record plus its artefacts as bytes, so
that any executor (this process, a Ray worker, a third party's) can run it and the driver alone
writes the run folder with :func:`save_output`.
"""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from cxrbench.models.factory import build_model as build_from_spec
from cxrbench.results.records import JobRecord, job_id
from cxrbench.results.store import RunStore, now_iso
from cxrbench.suite.schema import ModelEntry, Suite

if TYPE_CHECKING:  # pragma: no cover
    from cxrbench.data.prepare import PreparedData
    from cxrbench.engine.batches import Batches
    from cxrbench.plugins import Registry

log = logging.getLogger(__name__)

EXTERNAL_DIR = "external"


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


def build_model(suite: Suite, entry: ModelEntry, registry: Registry) -> tuple[torch.nn.Module, Any]:
    """The entry's model under the suite (params validated, weights loaded, freeze applied), and its spec."""
    spec = registry.model(entry.name)
    return build_from_spec(spec, **suite.model_build_args(entry)), spec


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


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # open() keeps the umask's file mode
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def external_predictions_path(store: RunStore, name: str, job: str) -> Path:
    """Where a job's predictions on external set ``name`` go."""
    return store.dir / EXTERNAL_DIR / name / f"{job}.csv"


def save_output(output: JobOutput, store: RunStore) -> JobRecord:
    """Write a job's artefacts into the run folder; its record, with their paths (not yet written)."""
    record = output.record
    pred_path = store.predictions_path(record.job_id) if output.predictions_csv else None
    if pred_path is not None:
        _write_bytes_atomic(pred_path, output.predictions_csv)
    ckpt = None
    if output.checkpoint is not None:
        ckpt = store.checkpoint_path(record.job_id)
        _write_bytes_atomic(ckpt, output.checkpoint)
    if output.latency:
        from cxrbench.engine.suite_profiling import save_job_latency

        save_job_latency(store.dir, record.job_id, output.latency)
    external = {}
    for name, entry in record.external.items():
        if name in output.external_csv:
            path = external_predictions_path(store, name, record.job_id)
            _write_bytes_atomic(path, output.external_csv[name])
            entry = entry | {"predictions_path": str(path.relative_to(store.dir))}
        external[name] = entry
    return replace(record, external=external,
                   predictions_path=str(pred_path.relative_to(store.dir)) if pred_path else None,
                   checkpoint_path=str(ckpt.relative_to(store.dir)) if ckpt else None)
