"""A whole run: validate, prepare data once, plan jobs, hand them to an executor, write records as they finish."""

from __future__ import annotations

import logging
import sys
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import cxrbench
from cxrbench.data.prepare import PreparedData
from cxrbench.engine.batches import make_batches
from cxrbench.engine.device import resolve_device
from cxrbench.engine.precision import runtime_protocol
from cxrbench.environment import environment, git_commit
from cxrbench.engine.executors.base import RunContext
from cxrbench.engine.jobs import Job, job_kind_for
from cxrbench.engine.progress import NullProgress
from cxrbench.errors import CxrbenchError, ResultsError, SuiteError
from cxrbench.plugins import Registry, get_registry
from cxrbench.results.records import JobRecord, RunInfo
from cxrbench.results.store import SPLITS_FILE, RunStore, default_results_root, new_run_id, now_iso
from cxrbench.suite.checks import check_suite
from cxrbench.suite.loader import load_suite, protocol_hash, resolved_dict, sha256_of
from cxrbench.suite.schema import ExecutorConfig, Suite

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """What ``cxrbench run`` reports at the end."""

    store: RunStore
    status: str
    """complete | failed (some job failed) | interrupted"""
    records: list[JobRecord] = field(default_factory=list)
    """This call's job records, in the order they finished."""
    skipped: list[str] = field(default_factory=list)
    executor: dict[str, Any] = field(default_factory=dict)
    """Which executor ran the jobs, with its settings and timings (Ray: connect, per attempt)."""

    @property
    def exit_code(self) -> int:
        return {"complete": 0, "failed": 1, "interrupted": 130}[self.status]


def _notify(hook: Any, **kwargs: Any) -> None:
    """Call a lifecycle hook; a plugin that raises is reported, not fatal."""
    try:
        hook(**kwargs)
    except Exception as exc:  # noqa: BLE001
        log.warning("a plugin's %s hook raised %s: %s", hook.name, type(exc).__name__, exc)


def _header(suite: Suite, suite_path: str, run_id: str, data: PreparedData, device: torch.device,
            registry: Registry, overrides: list[str], models: list[str] | None, jobs: list[Job]) -> dict[str, Any]:
    resolved = resolved_dict(suite)
    return {
        "run_id": run_id,
        "suite_name": suite.name,
        "suite_path": str(suite_path),
        "suite": resolved,
        "suite_sha256": sha256_of(resolved),
        "protocol_sha256": protocol_hash(suite, runtime_protocol(suite, device)),
        "runtime_protocol": runtime_protocol(suite, device),
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
        "split_manifest": SPLITS_FILE,
        "split_manifest_sha256": data.manifest_sha256,
        "jobs": [j.id for j in jobs],
        "status": "running",
        "created_at": now_iso(),
        "finished_at": None,
    }


def make_executor(config: ExecutorConfig, registry: Registry) -> Any:
    """The executor a suite's ``executor:`` block names, from the registry; fails before any work
    when it is unknown or cannot run here (e.g. Ray not installed)."""
    spec = registry.executor(config.name)
    problem = spec.check() if spec.check is not None else None
    if problem:
        raise CxrbenchError(problem)
    return spec.create(config)


def with_executor(suite: Suite, executor: str | None = None, address: str | None = None) -> Suite:
    """The suite with its ``executor:`` block overridden from the command line (``--executor``, ``--address``)."""
    if executor is None and address is None:
        return suite
    updates = {k: v for k, v in (("name", executor), ("address", address)) if v is not None}
    try:
        config = ExecutorConfig.model_validate(suite.executor.model_dump() | updates)
    except ValueError as exc:
        raise SuiteError(f"--executor/--address: {exc}") from None
    if address is not None and config.name != "ray":
        raise SuiteError("--address joins a Ray cluster: use it with --executor ray (or executor: {name: ray})")
    return suite.model_copy(update={"executor": config})


def _driver_device(device: str, executor: str) -> torch.device:
    """The device local jobs run on; with Ray, what the driver has (workers resolve their own)."""
    if executor == "local":
        return resolve_device(device)
    try:
        return resolve_device(device)
    except CxrbenchError:
        if device in ("cuda", "mps"):  # the head node may lack the workers' accelerator
            return torch.device("cpu")
        raise


def run_suite(suite_path: str | Path, overrides: list[str] | tuple[str, ...] = (), models: list[str] | None = None,
              device: str = "auto", results_root: Path | None = None, resume: str | None = None,
              progress: Any = None, registry: Registry | None = None, strict: bool = False,
              executor: str | None = None, address: str | None = None) -> RunOutcome:
    """Run every job of a suite, writing each record as soon as it finishes.

    With ``resume`` (a run folder or id) jobs recorded as ``ok`` are skipped; the suite must
    resolve to the same protocol and split as the run being resumed. ``executor`` (local | ray)
    and ``address`` (a Ray cluster) override the suite's ``executor:`` block; the driver (this
    process) writes every record and calls every lifecycle hook whichever executor runs the jobs.
    """
    registry = registry or get_registry()
    progress = progress or NullProgress()
    suite = with_executor(load_suite(suite_path, list(overrides), models), executor, address)
    check_suite(suite, registry, str(suite_path))
    runner = make_executor(suite.executor, registry)  # before any work: a missing Ray fails fast
    kind = job_kind_for(suite)
    dev = _driver_device(device, suite.executor.name)
    if dev.type == "cpu":
        torch.set_flush_denormal(True)  # untrained nets produce denormals that slow CPUs down ~10x
    root = Path(results_root) if results_root else default_results_root()

    with progress:
        data = kind.prepare_data(suite, registry, progress, strict=strict)
        jobs = kind.plan(suite, data)
        if resume:
            store = RunStore.open(resume, root)
            old = store.read_header()
            if old.get("protocol_sha256") != protocol_hash(suite, runtime_protocol(suite, dev)):
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
            store.write_bytes(store.splits_path, data.manifest.to_csv(index=False))
        header["executor"] = runner.describe()
        store.write_header(header)

        kind.before_jobs(suite, data, registry, store, done)
        info = RunInfo(store.run_id, store.dir, suite.name, header["suite"], [j.id for j in jobs], header)
        _notify(registry.hooks.on_run_start, run=info)

        def on_epoch_end(job: str, epoch: int, logs: dict[str, Any]) -> None:
            _notify(registry.hooks.on_epoch_end, run=info, job=job, epoch=epoch, logs=logs)

        ctx = RunContext(suite, data, make_batches(suite, data), registry, store, dev, kind, device, progress,
                         on_epoch_end)
        outcome = RunOutcome(store, "complete")
        todo = [j for j in jobs if j.id not in done]
        outcome.skipped = [j.id for j in jobs if j.id in done]
        try:
            with closing(runner.run(todo, ctx)) as finished:
                for job, record in finished:
                    _finish(record, store, progress, registry, info)
                    outcome.records.append(record)
                    if record.status != "ok":
                        outcome.status = "failed"
        except KeyboardInterrupt:
            outcome.status = "interrupted"
            progress.log("[yellow]interrupted: finished jobs are saved; continue with "
                         f"`cxrbench run {suite_path} --resume {store.dir}`[/yellow]")
        finally:
            outcome.executor = runner.describe() | getattr(runner, "stats", {})
            used = {k: v for k, v in outcome.executor.items() if k != "attempts"}
            header = store.read_header() | {"status": outcome.status, "finished_at": now_iso(), "executor": used}
            store.write_header(header)
            _notify(registry.hooks.on_run_end, run=info, records=store.records(), status=outcome.status)
    return outcome


def _finish(record: JobRecord, store: RunStore, progress: Any, registry: Registry, info: RunInfo) -> None:
    """On the driver, whatever executed the job: write its record, then tell progress and plugins."""
    store.write_record(record)
    progress.end_job(record.job_id, record.status)
    _notify(registry.hooks.on_model_result, run=info, record=record)
