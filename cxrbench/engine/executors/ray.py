"""The ``ray`` executor: each job a Ray task with the suite's per-job resources.

A failed job runs again up to ``retries`` times and then comes back as a ``failed`` record naming
the last error and the number of attempts.

Ray workers need no shared file system: the decoded images go out once through Ray's object store
(``ray.put``) and each task returns its record, predictions CSV, checkpoint bytes and log text,
which the driver writes. Lifecycle hooks run on the driver only; ``on_epoch_end`` events are
streamed back live through a small inbox actor (and replayed from the record's curves if any were
lost, so a plugin sees every epoch of a successful job once either way).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from cxrbench.data.prepare import PreparedData
from cxrbench.engine.batches import make_batches
from cxrbench.engine.device import resolve_device
from cxrbench.engine.executors.base import Finished, RunContext
from cxrbench.engine.jobs.kernel import Job, JobKind, JobOutput, describe_error
from cxrbench.engine.jobs.train_eval import monitor_of
from cxrbench.engine.progress import EventInbox
from cxrbench.errors import CxrbenchError
from cxrbench.plugins import Registry
from cxrbench.results.records import JobRecord
from cxrbench.results.store import RunStore
from cxrbench.suite.schema import ExecutorConfig, Suite

log = logging.getLogger(__name__)

RAY_HINT = "pip install cxrbench[ray]"

def import_ray() -> Any:
    """The ``ray`` module, or a CxrbenchError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise CxrbenchError(f"executor 'ray' needs Ray, which is not installed ({exc}); {RAY_HINT}") from None
    return ray


def _not_loaded(i: int, size: int) -> np.ndarray:
    raise RuntimeError("images are decoded once by the driver; a worker never loads files")


@dataclass
class _Shared:
    """What the driver puts into Ray's object store once, for every task."""

    suite: Suite
    data: PreparedData
    """Images, labels, ids and folds only (no file loader, manifest or extras)."""
    mean: torch.Tensor
    std: torch.Tensor
    registry: Registry
    """The driver's model and metric specs the jobs need (no plugin manager: hooks stay on the driver)."""
    kind: JobKind
    """The run's job kind."""
    device: str
    threads: int
    images_path: str | None = None
    """shared_cache: the ``images.npy`` a worker memory-maps instead of receiving the array."""

    def worker_data(self) -> PreparedData:
        if self.images_path is None:
            return self.data
        images = np.load(self.images_path, mmap_mode="r")
        n = len(self.data.table)
        if images.ndim != 4 or len(images) < n:
            raise RuntimeError(f"{self.images_path}: image cache has shape {images.shape}, expected >= {n} rows")
        return replace(self.data, images=images[:n])


@dataclass
class _Attempt:
    """What one Ray task returns: the job's output, or its error; the log it wrote either way."""

    output: JobOutput | None
    error: str | None
    log: str
    node: str
    seconds: float
    started: float = 0.0
    """Wall-clock start (``time.time()``) inside the worker."""


def portable_registry(registry: Registry, suite: Suite) -> Registry:
    """The registry view shipped to Ray workers: the suite's models and metrics, every latency runtime.

    Plugins given to the driver in code (``registry=``) work on workers too (cloudpickle);
    installed plugins must be importable on every node.
    """
    metrics = [suite.metrics.primary, *suite.metrics.report, "loss", monitor_of(suite, registry)[0]]
    return registry.portable(models=[e.name for e in suite.models], metrics=metrics, datasets=(), executors=())


def _node_name() -> str:
    name = socket.gethostname()
    try:
        import ray

        gpus = ray.get_gpu_ids()
        if gpus:
            name += " gpu" + ",".join(str(g) for g in gpus)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    return name


class _Events:
    """A worker's side of the driver's event inbox: fire and forget, never fails a job.

    No ``ray.get`` per event: a task blocked in ``ray.get`` hands its CPUs back to the scheduler,
    which would start another job on them.
    """

    def __init__(self, inbox: Any):
        self.inbox, self.last = inbox, None

    def send(self, *item: Any) -> None:
        if self.inbox is None:
            return
        try:
            self.last = self.inbox.put.remote(item)
        except Exception:  # noqa: BLE001 - display only
            self.inbox = None

    def flush(self, timeout: float = 10.0) -> None:
        """Let the last event reach the inbox (an actor runs one caller's calls in order)."""
        if self.last is not None:
            with contextlib.suppress(Exception):
                import ray

                ray.wait([self.last], timeout=timeout)


@contextlib.contextmanager
def _capture_logs() -> Iterator[io.StringIO]:
    """Everything a job logs, prints or warns, into a string (written to ``logs/<job>.log`` by the driver)."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield buf
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(level)


def ray_attempt(shared: _Shared, job: Job, attempt: int, inbox: Any = None) -> _Attempt:
    """Run one attempt of a job inside a Ray worker; never raises (the error is returned)."""
    t0, started = time.perf_counter(), time.time()
    node = _node_name()
    events = _Events(inbox)
    events.send("start", job.id, attempt, node)
    with _capture_logs() as buf:
        log.info("job %s attempt %d on %s (pid %d)", job.id, attempt, node, os.getpid())
        try:
            # CPU kernels reduce in a thread-count-dependent order: match the driver's count so
            # metrics equal a local run's bit for bit.
            torch.set_num_threads(shared.threads)
            device = resolve_device(shared.device)
            if device.type == "cpu":
                torch.set_flush_denormal(True)
            log.info("device %s, %d torch threads", device, torch.get_num_threads())
            data = shared.worker_data()
            batches = make_batches(shared.suite, data, (shared.mean, shared.std))
            epochs = shared.suite.model_train(job.entry).epochs

            def on_epoch(epoch: int, logs: dict[str, Any]) -> None:
                log.info("epoch %d: %s", epoch, {k: round(v, 6) if isinstance(v, float) else v
                                                 for k, v in logs.items()})
                events.send("epoch", job.id, attempt, epoch, epochs, dict(logs))

            output = shared.kind.execute(job, shared.suite, data, batches, shared.registry, device, None, on_epoch)
            error = None
        except Exception as exc:  # noqa: BLE001 - returned to the driver, which retries or records it
            output, error = None, describe_error(exc)
            buf.write(traceback.format_exc())
    events.flush()
    return _Attempt(output, error, buf.getvalue(), node, time.perf_counter() - t0, started)


def _ray_temp_dir() -> str:
    # Ray's socket paths must stay under ~107 bytes: a short folder of our own under /tmp.
    return os.environ.get("RAY_TMPDIR") or f"/tmp/cxrbench-ray-{os.getuid()}"


@dataclass
class RayExecutor:
    """Each job a Ray task with the suite's per-job resources; the driver keeps the run folder."""

    config: ExecutorConfig
    cluster_cpus: int | None = None
    """CPUs of a Ray started here (``address`` null); ``None``: Ray counts them."""
    poll_seconds: float = 0.2
    name: str = "ray"
    stats: dict[str, Any] = field(default_factory=dict)
    """Timings: connect/shutdown seconds, and per attempt the node and seconds inside the task."""

    def __post_init__(self) -> None:
        self.ray = import_ray()

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"name": self.name, "address": c.address, "num_cpus": c.num_cpus, "num_gpus": c.num_gpus,
                "memory_gb": c.memory_gb, "retries": c.retries, "torch_threads": self._threads(),
                "images": c.images}

    def _threads(self) -> int:
        return self.config.threads or torch.get_num_threads()

    def _connect(self) -> bool:
        """Join (or start) Ray; True when this call initialised it (then we shut it down)."""
        ray = self.ray
        if ray.is_initialized():
            return False
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        t0 = time.perf_counter()
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING}
        if self.config.address:
            kwargs["address"] = self.config.address
        else:
            kwargs.update(num_cpus=self.cluster_cpus, _temp_dir=_ray_temp_dir())
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise CxrbenchError(f"cannot start or join Ray (address {self.config.address or 'local'}): {exc}") \
                from None
        self.stats["connect_seconds"] = time.perf_counter() - t0
        return True

    def _check_feasible(self) -> str:
        """Fail fast when no node can ever hold one job; return a short cluster description."""
        c = self.config
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        need = {"CPU": c.num_cpus, "GPU": c.num_gpus, "memory": (c.memory_gb or 0) * 1024 ** 3}
        fits = [n for n in nodes if all(n["Resources"].get(k, 0) >= v for k, v in need.items() if v)]
        total = self.ray.cluster_resources()
        where = (f"Ray {c.address or 'local'}: {len(nodes)} node(s), {total.get('CPU', 0):g} CPU, "
                 f"{total.get('GPU', 0):g} GPU")
        if not fits:
            raise CxrbenchError(f"no node of the Ray cluster can run a job needing num_cpus={c.num_cpus:g}, "
                                f"num_gpus={c.num_gpus:g}, memory_gb={c.memory_gb} ({where}); lower the "
                                f"suite's executor resources")
        return where

    def _shared(self, ctx: RunContext) -> _Shared:
        data, images_path = ctx.data, None
        if self.config.images == "shared_cache":
            entry = (data.notes.get("image_cache") or {}).get("path")
            if entry:
                images_path = str(Path(entry).resolve() / "images.npy")
            else:
                ctx.progress.log("[yellow]executor.images=shared_cache: these images are not in the disk "
                                 "cache (synthetic data or cache off); shipping them through Ray instead[/yellow]")
        table = replace(data.table, load_image=_not_loaded, extras={})
        images = np.empty((0,), np.uint8) if images_path else np.ascontiguousarray(data.images)
        slim = replace(data, table=table, images=images, manifest=pd.DataFrame(), bad=[], notes={})
        device = ctx.device_name
        if device == "auto" and not self.config.num_gpus:
            device = "cpu"  # never take a GPU the job did not reserve
        return _Shared(ctx.suite, slim, ctx.batches.mean, ctx.batches.std, portable_registry(ctx.registry, ctx.suite),
                       ctx.kind, device, self._threads(), images_path)

    def _inbox(self) -> Any:
        try:
            return self.ray.remote(num_cpus=0)(EventInbox).remote()
        except Exception as exc:  # noqa: BLE001 - without it epochs are replayed at the end of each job
            log.warning("no live job events (%s); epochs are reported when each job finishes", exc)
            return None

    def run(self, jobs: list[Job], ctx: RunContext) -> Finished:
        """Submit every job at once; yield ``(job, record)`` as each finishes (after its retries)."""
        ray = self.ray
        if ctx.device_name in ("cuda", "mps") and not self.config.num_gpus:
            raise CxrbenchError(f"--device {ctx.device_name} with the Ray executor: reserve a GPU per job "
                                f"(executor.num_gpus, e.g. --set executor.num_gpus=1)")
        started_here = self._connect()
        pending: dict[Any, tuple[Job, int]] = {}
        events = None
        try:
            where = self.stats["cluster"] = self._check_feasible()
            ctx.progress.queue_jobs([j.id for j in jobs], where)
            shared = ray.put(self._shared(ctx))
            events = self._inbox()
            c = self.config
            task = ray.remote(ray_attempt).options(
                num_cpus=c.num_cpus, num_gpus=c.num_gpus,
                memory=int(c.memory_gb * 1024 ** 3) if c.memory_gb else None,
                max_retries=0, retry_exceptions=False, name="cxrbench-job")
            seen_epochs: dict[tuple[str, int], set[int]] = {}
            finished: set[tuple[str, int]] = set()
            errors: dict[str, list[str]] = {j.id: [] for j in jobs}
            self.stats["attempts"] = []

            def submit(job: Job, attempt: int) -> None:
                pending[task.remote(shared, job, attempt, events)] = (job, attempt)

            for job in jobs:
                submit(job, 1)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_seconds)
                self._drain(events, ctx, seen_epochs, finished)
                for ref in ready:
                    job, attempt = pending.pop(ref)
                    finished.add((job.id, attempt))  # late events of this attempt are ignored
                    result = self._result(ref)
                    self.stats["attempts"].append({"job": job.id, "attempt": attempt, "node": result.node,
                                                   "started": result.started, "seconds": result.seconds,
                                                   "ok": result.output is not None})
                    self._write_log(ctx.store, job, attempt, result)
                    if result.output is not None:
                        self._replay_epochs(ctx, job, result.output.record, seen_epochs.get((job.id, attempt), set()))
                        yield job, ctx.save(result.output)
                        continue
                    errors[job.id].append(result.error or "unknown error")
                    if attempt <= c.retries:
                        ctx.progress.job_retry(job.id, attempt, errors[job.id][-1])
                        submit(job, attempt + 1)
                    else:
                        yield job, ctx.failed(job, errors[job.id])
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if events is not None:
                with contextlib.suppress(Exception):
                    ray.kill(events)
            if started_here:
                t0 = time.perf_counter()
                ray.shutdown()
                self.stats["shutdown_seconds"] = time.perf_counter() - t0

    def _result(self, ref: Any) -> _Attempt:
        """The task's return value; a crashed worker, lost node or OOM kill becomes a failed attempt."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                error = f"{type(cause).__name__}: {cause}"
            else:
                error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            return _Attempt(None, error, f"{error}\n", "?", 0.0)

    def _drain(self, events: Any, ctx: RunContext, seen: dict[tuple[str, int], set[int]],
               finished: set[tuple[str, int]]) -> None:
        """Show workers' start/epoch events and deliver ``on_epoch_end`` live, on the driver."""
        if events is None:
            return
        try:
            items = self.ray.get(events.take.remote())
        except Exception:  # noqa: BLE001 - display only
            return
        for item in items:
            if (item[1], item[2]) in finished:
                continue
            if item[0] == "start":
                _, job, attempt, node = item
                ctx.progress.job_started(job, node, attempt)
            elif item[0] == "epoch":
                _, job, attempt, epoch, epochs, logs = item
                ctx.progress.job_epoch(job, epoch, epochs)
                seen.setdefault((job, attempt), set()).add(epoch)
                if ctx.on_epoch_end is not None:
                    ctx.on_epoch_end(job, epoch, logs)

    @staticmethod
    def _replay_epochs(ctx: RunContext, job: Job, record: JobRecord, seen: set[int]) -> None:
        """Deliver from the record's curves any epoch whose live event did not arrive."""
        if ctx.on_epoch_end is None:
            return
        curves = record.curves
        for i, epoch in enumerate(int(e) for e in curves.get("epoch", [])):
            if epoch not in seen:
                logs = {"epoch": epoch} | {k: v[i] for k, v in curves.items() if k != "epoch"}
                ctx.on_epoch_end(job.id, epoch, logs)

    @staticmethod
    def _write_log(store: RunStore, job: Job, attempt: int, result: _Attempt) -> None:
        status = "ok" if result.output is not None else f"failed: {result.error}"
        text = f"===== {job.id} attempt {attempt} on {result.node} ({result.seconds:.1f} s, {status})\n{result.log}"
        store.append_log(job.id, text if text.endswith("\n") else text + "\n")
