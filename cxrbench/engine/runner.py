"""A whole run: validate, prepare data once, plan jobs, run each, write records as they finish."""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import cxrbench
from cxrbench.data.prepare import PreparedData, prepare_data
from cxrbench.data.transforms import eval_transform, normalization_stats, train_transform
from cxrbench.engine.baselines import baseline_records
from cxrbench.engine.device import resolve_device
from cxrbench.engine.environment import environment, git_commit
from cxrbench.engine.job import Job, plan_jobs, run_job
from cxrbench.engine.progress import NullProgress
from cxrbench.engine.trainer import Batches
from cxrbench.errors import ResultsError
from cxrbench.plugins import Registry, get_registry
from cxrbench.results.records import JobRecord, RunInfo
from cxrbench.results.store import RunStore, default_results_root, new_run_id, now_iso
from cxrbench.suite.checks import check_suite
from cxrbench.suite.loader import load_suite, protocol_hash, resolved_dict, sha256_of
from cxrbench.suite.schema import Suite

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """What ``cxrbench run`` reports at the end."""

    store: RunStore
    status: str
    """complete | failed (some job failed) | interrupted"""
    records: list[JobRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"complete": 0, "failed": 1, "interrupted": 130}[self.status]


def _notify(hook: Any, **kwargs: Any) -> None:
    """Call a lifecycle hook; a plugin that raises is reported, not fatal."""
    try:
        hook(**kwargs)
    except Exception as exc:  # noqa: BLE001
        log.warning("a plugin's %s hook raised %s: %s", hook.name, type(exc).__name__, exc)


def make_batches(suite: Suite, data: PreparedData) -> Batches:
    """Shared tensors + transforms for every job (normalisation statistics from fold 0's train rows)."""
    labels = torch.as_tensor(data.table.labels)
    labels = labels.float() if suite.task.type == "multilabel" else labels.long()
    mean, std = normalization_stats(suite.input, data.images, data.folds[0].train)
    shape = (1, len(mean), 1, 1)
    return Batches(torch.from_numpy(data.images), labels, torch.tensor(mean).view(shape),
                   torch.tensor(std).view(shape), train_transform(list(suite.augment), suite.input),
                   eval_transform(suite.input))


def _header(suite: Suite, suite_path: str, run_id: str, data: PreparedData, device: torch.device,
            registry: Registry, overrides: list[str], models: list[str] | None, jobs: list[Job]) -> dict[str, Any]:
    resolved = resolved_dict(suite)
    return {
        "run_id": run_id,
        "suite_name": suite.name,
        "suite_path": str(suite_path),
        "suite": resolved,
        "suite_sha256": sha256_of(resolved),
        "protocol_sha256": protocol_hash(suite),
        "overrides": list(overrides),
        "models_filter": models,
        "command": " ".join(["cxrbench", *sys.argv[1:]]) if sys.argv and "cxrbench" in sys.argv[0] else None,
        "cxrbench_version": cxrbench.__version__,
        "plugins": [{"name": p.name, "version": p.version, "distribution": p.distribution, "error": p.error}
                    for p in registry.plugins],
        "git": git_commit(),
        "environment": environment(device),
        "seeds": list(suite.seeds),
        "dataset": {"name": suite.dataset.name, **data.summary()},
        "synthetic": data.synthetic,
        "split_manifest": "splits.csv",
        "split_manifest_sha256": data.manifest_sha256,
        "jobs": [j.id for j in jobs],
        "status": "running",
        "created_at": now_iso(),
        "finished_at": None,
    }


def run_suite(suite_path: str | Path, overrides: list[str] | tuple[str, ...] = (), models: list[str] | None = None,
              device: str = "auto", results_root: Path | None = None, resume: str | None = None,
              progress: Any = None, registry: Registry | None = None, strict: bool = False) -> RunOutcome:
    """Run every job of a suite, writing each record as soon as it finishes.

    With ``resume`` (a run folder or id) jobs recorded as ``ok`` are skipped; the suite must
    resolve to the same protocol and split as the run being resumed.
    """
    registry = registry or get_registry()
    progress = progress or NullProgress()
    suite = load_suite(suite_path, list(overrides), models)
    check_suite(suite, registry, str(suite_path))
    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.set_flush_denormal(True)  # untrained nets produce denormals that slow CPUs down ~10x
    root = Path(results_root) if results_root else default_results_root()

    with progress:
        data = prepare_data(suite, registry, progress, strict=strict)
        jobs = plan_jobs(suite, len(data.folds))
        if resume:
            store = RunStore.open(resume, root)
            old = store.read_header()
            if old.get("protocol_sha256") != protocol_hash(suite):
                raise ResultsError(f"cannot resume {store.dir}: the suite now resolves to a different protocol "
                                   f"than the run's (compare `cxrbench run {suite_path} --print-resolved` "
                                   f"with {store.dir}/run.json)")
            if old.get("split_manifest_sha256") != data.manifest_sha256:
                raise ResultsError(f"cannot resume {store.dir}: the data split differs from the run's")
            done = store.finished_jobs()
            header = old | {"status": "running", "resumed_at": now_iso(),
                            "jobs": list(dict.fromkeys([*old.get("jobs", []), *(j.id for j in jobs)])),
                            "suite": resolved_dict(suite), "suite_sha256": sha256_of(resolved_dict(suite))}
        else:
            resolved = resolved_dict(suite)
            store = RunStore.create(root, suite.name, new_run_id(sha256_of(resolved)))
            done = set()
            header = _header(suite, str(suite_path), store.run_id, data, dev, registry, list(overrides), models, jobs)
            data.manifest.to_csv(store.dir / "splits.csv", index=False)
        store.write_header(header)

        if suite.metrics.baselines:
            baseline_records(suite, data, registry, store, done)
        info = RunInfo(store.run_id, store.dir, suite.name, header["suite"], [j.id for j in jobs], header)
        _notify(registry.pm.hook.on_run_start, run=info)
        batches = make_batches(suite, data)
        outcome = RunOutcome(store, "complete")
        todo = [j for j in jobs if j.id not in done]
        outcome.skipped = [j.id for j in jobs if j.id in done]
        progress.start_jobs(len(todo))
        try:
            for job in todo:
                record = _run_one(job, suite, data, batches, registry, store, dev, progress, info)
                outcome.records.append(record)
                if record.status != "ok":
                    outcome.status = "failed"
        except KeyboardInterrupt:
            outcome.status = "interrupted"
            progress.log("[yellow]interrupted: finished jobs are saved; continue with "
                         f"`cxrbench run {suite_path} --resume {store.dir}`[/yellow]")
        finally:
            header = store.read_header() | {"status": outcome.status, "finished_at": now_iso()}
            store.write_header(header)
            _notify(registry.pm.hook.on_run_end, run=info, records=store.records(), status=outcome.status)
    return outcome


def _run_one(job: Job, suite: Suite, data: PreparedData, batches: Batches, registry: Registry, store: RunStore,
             device: torch.device, progress: Any, info: RunInfo) -> JobRecord:
    """Run a job; a model or plugin that raises becomes a ``failed`` record and the run goes on."""
    def epoch_hook(epoch: int, logs: dict[str, Any]) -> None:
        _notify(registry.pm.hook.on_epoch_end, run=info, job=job.id, epoch=epoch, logs=logs)

    try:
        record = run_job(job, suite, data, batches, registry, store, device, progress, epoch_hook)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
        log.debug("job %s failed:\n%s", job.id, traceback.format_exc())
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
        record = JobRecord(job_id=job.id, model=job.entry.key, model_name=job.entry.name, fold=job.fold,
                           seed=job.seed, status="failed", error=f"{type(exc).__name__}: {exc}{where}",
                           model_config=job.entry.model_dump(mode="json"), synthetic=data.synthetic,
                           finished_at=now_iso())
    store.write_record(record)
    progress.end_job(job.id, record.status)
    _notify(registry.pm.hook.on_model_result, run=info, record=record)
    return record
