"""Profile only (``profile.only: true``): the job kind that builds every model, trains none, profiles each.

One job per model (fold 0, the first seed); resume, Ctrl-C, retries and failure isolation are
those of a training run, on any executor. Each job's record has ``kind: profile`` (cost filled,
metrics empty); its latency records go to ``<run>/latency/<job>.json`` as a trained run's do.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from cxrbench.data.prepare import PreparedData, prepare_data
from cxrbench.engine.jobs.kernel import Job, JobKind, JobOutput, build_model, model_cost
from cxrbench.errors import DatasetError
from cxrbench.plugins import Registry
from cxrbench.results.records import JobRecord
from cxrbench.results.store import now_iso
from cxrbench.suite.loader import sha256_of
from cxrbench.suite.schema import DatasetConfig, ModelEntry, SplitConfig, Suite, TaskConfig

log = logging.getLogger(__name__)

PROFILE_KIND = "profile"
"""``JobRecord.kind`` of a profile-only job."""
STANDIN = "standin"
"""``PreparedData.notes`` key set when synthetic images stand in for a missing dataset."""


class ProfileOnly(JobKind):
    """Build each model (untrained, or its pretrained/weights), profile it with ``profile.latency``."""

    name = "profile"
    record_kind = PROFILE_KIND

    def prepare_data(self, suite: Suite, registry: Registry, progress: Any = None,
                     strict: bool = False) -> PreparedData:
        return prepare_profile_data(suite, registry, progress, strict=strict)

    def plan(self, suite: Suite, data: PreparedData) -> list[Job]:
        return plan_profile_jobs(suite)

    def execute(self, job: Job, suite: Suite, data: PreparedData, batches: Any, registry: Registry,
                device: torch.device, progress: Any = None, on_epoch_end: Any = None) -> JobOutput:
        return profile_only_job(job, suite, data, batches, registry, device, progress)


def plan_profile_jobs(suite: Suite) -> list[Job]:
    """One job per model (fold 0, the suite's first seed): folds and seeds change no latency."""
    return [Job(entry, 0, suite.seeds[0]) for entry in suite.models]


def prepare_profile_data(suite: Suite, registry: Registry, progress: Any = None, strict: bool = False) -> PreparedData:
    """The suite's data when it can be loaded; else synthetic_cxr images standing in for it.

    A profile-only run needs images only to calibrate int8 and check conversions, so a dataset
    that is not on this machine (an edge device) is replaced by synthetic_cxr images at the suite's
    size and channels; ``notes['standin']`` (in run.json) and the latency records say so.
    """
    try:
        return prepare_data(suite, registry, progress, strict=strict)
    except DatasetError as exc:
        reason = str(exc).splitlines()[0]
        if progress is not None:
            progress.log(f"[yellow]dataset {suite.dataset.name!r} not available ({reason}); int8 calibration "
                         f"uses synthetic_cxr images instead[/yellow]")
    cfg = suite.profile.latency
    needed = cfg.calib_images if "int8" in cfg.runtimes else 16
    standin = suite.model_copy(update={
        "task": TaskConfig(type="binary", classes=["normal", "pneumonia"]),
        "dataset": DatasetConfig(name="synthetic_cxr", options={"n_samples": math.ceil(needed / 0.7) + 2, "seed": 0}),
        "split": SplitConfig(strategy="ratio", seed=0)})
    data = prepare_data(standin, registry, progress)
    data.notes[STANDIN] = {"dataset": suite.dataset.name, "reason": reason, "images": "synthetic_cxr"}
    return data


def _accuracy_note(entry: ModelEntry, data: PreparedData, suite: Suite, trained: bool) -> str | None:
    """Why int8 accuracy is not measured for this entry (None: it is)."""
    if STANDIN in data.notes:
        return f"dataset {suite.dataset.name!r} not available (synthetic stand-in images): accuracy not measured"
    if entry.weights is None and not trained:
        head = "pretrained backbone with an untrained classifier head" if entry.pretrained else "untrained weights"
        return f"{head} (profile-only suite, no `weights:` file): accuracy would be meaningless, not measured"
    if not len(data.folds[0].test):
        return "no test rows: accuracy not measured"
    return None


def profile_records(job: Job, model: torch.nn.Module, suite: Suite, data: PreparedData, batches: Any,
                    registry: Registry, *, trained: bool = False, run_id: str | None = None,
                    job_id: str | None = None) -> list[dict[str, Any]]:
    """Latency records of one built model with the suite's ``profile.latency`` (nothing written).

    The one policy for profiling a suite's models, used by profile-only runs and by
    ``cxrbench profile --suite``: int8 is calibrated on training rows of fold 0 (or the synthetic
    stand-in); its accuracy and the fp32 model's are measured on the test rows only when the model
    is trained (the entry loads ``weights``, or ``trained``: a run's checkpoint). ``run_id`` and
    ``job_id`` name the run and job a checkpoint came from.
    """
    from cxrbench.engine.suite_profiling import profile_job_records

    entry = job.entry
    if STANDIN in data.notes:
        source = f"synthetic_cxr images (stand-in: dataset {suite.dataset.name!r} not available)"
    else:
        source = f"training images of {suite.dataset.name} (fold 0)"
    note = _accuracy_note(entry, data, suite, trained)
    records = profile_job_records(model, suite.profile.latency, suite, batches, data.folds[0], registry,
                                  job_id or job.id, entry.key, entry.name, run_id, measure_accuracy=note is None,
                                  calib_from=source)
    if note is not None:
        for r in records:
            if r.get("accuracy") is None and r.get("accuracy_note"):
                r["accuracy_note"] = note
    return records


def check_measured(job: Job, records: list[dict[str, Any]]) -> None:
    """Raise when profiling measured nothing because of errors (the job is then a failed record)."""
    if any(r.get("status") == "ok" for r in records):
        return
    errors = {r["runtime"]: r.get("error") for r in records if r.get("status") == "error"}
    if errors:
        listed = "; ".join(f"{runtime}: {error}" for runtime, error in errors.items())
        raise RuntimeError(f"profiling {job.id} measured nothing: {listed}")


def profile_only_job(job: Job, suite: Suite, data: PreparedData, batches: Any, registry: Registry,
                     device: torch.device, progress: Any = None) -> JobOutput:
    """Build one model (untrained, or its declared pretrained/weights), profile it; nothing written.

    ``device`` is unused: the latency device is ``profile.latency.device``. Exceptions propagate
    (the executor turns them into a failed record).
    """
    entry = job.entry
    started = now_iso()
    if progress is not None:
        progress.start_job(job.id, 1)
        progress.log(f"{job.id}: profiling ({', '.join(suite.profile.latency.runtimes)}; nothing is trained)")
    torch.manual_seed(job.seed)
    model, spec = build_model(suite, entry, registry)
    model.eval()
    if batches is not None:
        from cxrbench.engine.batches import model_input_for

        batches = batches.for_model(model_input_for(suite, spec))  # int8 calibration images as the model expects them
    cost = model_cost(model, suite)
    records = profile_records(job, model, suite, data, batches, registry)
    check_measured(job, records)
    config = entry.model_dump(mode="json")
    record = JobRecord(job_id=job.id, model=entry.key, model_name=entry.name, fold=job.fold, seed=job.seed,
                       status="ok", kind=PROFILE_KIND, cost=cost, model_config=config,
                       model_config_sha256=sha256_of(config), plugin=spec.plugin, synthetic=data.synthetic,
                       started_at=started, finished_at=now_iso())
    return JobOutput(record, latency=records)

