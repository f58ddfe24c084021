"""The ``local`` executor: jobs in this process, one after another, or one per GPU at once.

On a machine with N visible GPUs (and ``--device auto|cuda`` without an index) N worker threads
each own one GPU and take the next job as theirs finishes; each job seeds only its own GPU's
generator and models are built under a lock (:mod:`cxrbench.engine.jobs.train_eval`), so a job's
results do not depend on what runs beside it. Records still reach the driver one at a time.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import replace
from typing import Any, Callable

import torch

from cxrbench.engine.executors.base import Finished, RunContext
from cxrbench.engine.jobs.kernel import Job
from cxrbench.results.records import JobRecord
from cxrbench.suite.schema import ExecutorConfig


def gpu_slots(device: torch.device, count: int) -> list[torch.device]:
    """The devices jobs run on at once: every visible GPU for an unindexed CUDA device, else ``device``."""
    if device.type == "cuda" and device.index is None and count > 1:
        return [torch.device("cuda", i) for i in range(count)]
    return [device]


class LocalExecutor:
    """Jobs in this process: in plan order on one device, or one per GPU at once."""

    name = "local"

    def __init__(self, config: ExecutorConfig | None = None,
                 device_count: Callable[[], int] = torch.cuda.device_count):
        self.retries = config.retries if config is not None else 0
        self.device_count = device_count
        self.stats: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "retries": self.retries, "torch_threads": torch.get_num_threads()}

    def run(self, jobs: list[Job], ctx: RunContext) -> Finished:
        """Yield ``(job, record)`` for each job: plan order on one device, finishing order on several GPUs."""
        slots = gpu_slots(ctx.device, self.device_count() if ctx.device.type == "cuda" else 1)
        self.stats = {"devices": [str(d) for d in slots]}
        if len(slots) > 1 and len(jobs) > 1:
            yield from self._parallel(jobs, ctx, slots)
            return
        ctx.progress.start_jobs(len(jobs))
        for job in jobs:
            yield job, ctx.attempt(job, self.retries)

    def _attempt(self, ctx: RunContext, job: Job, device: torch.device,
                 on_epoch: Callable[[str, int, dict[str, Any]], None]) -> JobRecord:
        """One job on ``device`` in a worker thread (no per-batch progress; epochs go to ``on_epoch``)."""
        guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
        with guard:
            return replace(ctx, device=device, progress=None, on_epoch_end=on_epoch).attempt(job, self.retries)

    def _parallel(self, jobs: list[Job], ctx: RunContext, slots: list[torch.device]) -> Finished:
        todo: queue.Queue[Job] = queue.Queue()
        for job in jobs:
            todo.put(job)
        events: queue.Queue[tuple] = queue.Queue()
        stop = threading.Event()
        epochs = {job.id: ctx.suite.model_train(job.entry).epochs for job in jobs}

        def worker(device: torch.device) -> None:
            while not stop.is_set():
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                events.put(("start", job, str(device)))
                try:
                    record = self._attempt(ctx, job, device,
                                           lambda j, e, logs: events.put(("epoch", j, e, logs)))
                except BaseException as exc:  # noqa: BLE001 - handed to the driver thread
                    events.put(("error", job, exc))
                    return
                events.put(("done", job, record))

        ctx.progress.queue_jobs([j.id for j in jobs], where=f"{len(slots)} GPUs")
        threads = [threading.Thread(target=worker, args=(d,), daemon=True, name=f"cxrbench-{d}") for d in slots]
        for t in threads:
            t.start()
        left = len(jobs)
        try:
            while left:
                try:
                    kind, job, *rest = events.get(timeout=0.2)
                except queue.Empty:
                    continue
                if kind == "start":
                    ctx.progress.job_started(job.id, rest[0])
                elif kind == "epoch":  # (job id, epoch, logs)
                    ctx.progress.job_epoch(job, rest[0], epochs.get(job))
                    if ctx.on_epoch_end is not None:
                        ctx.on_epoch_end(job, rest[0], rest[1])
                elif kind == "error":
                    raise rest[0]
                else:
                    left -= 1
                    yield job, rest[0]
        finally:
            stop.set()
