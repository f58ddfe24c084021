"""Progress display for runs: rich bars with ETA, a live table of parallel jobs, or nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text


class NullProgress:
    """Progress reporter that shows nothing."""

    def __enter__(self) -> "NullProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def start_phase(self, description: str, total: int) -> None: ...
    def advance_phase(self, n: int = 1) -> None: ...
    def end_phase(self) -> None: ...
    def start_jobs(self, total: int) -> None: ...
    def start_job(self, job: str, epochs: int) -> None: ...
    def start_epoch(self, epoch: int, batches: int) -> None: ...
    def advance_batch(self, loss: Any) -> None:
        """One training batch done; ``loss`` may be a device tensor: read it only when it is shown."""
    def end_epoch(self, logs: dict[str, Any]) -> None: ...
    def end_job(self, job: str, status: str) -> None: ...

    # parallel executors (Ray): a table of jobs instead of per-batch bars
    def queue_jobs(self, jobs: list[str], where: str = "") -> None: ...
    def job_started(self, job: str, node: str, attempt: int = 1) -> None: ...
    def job_epoch(self, job: str, epoch: int, epochs: int | None = None) -> None: ...
    def job_retry(self, job: str, attempt: int, error: str) -> None: ...

    def log(self, message: str) -> None: ...


def _clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class _Row:
    job: str
    state: str = "queued"
    node: str = ""
    attempt: int = 0
    epoch: str = ""
    started: float | None = None
    ended: float | None = None
    note: str = ""


STATE_STYLE = {"queued": "dim", "running": "cyan", "retrying": "yellow", "done": "green", "failed": "red"}


class JobTable:
    """State of every job of a parallel run (queued / running on a node / done / failed) and an ETA.

    A rich renderable: ``Live(JobTable(...))`` redraws it. ``clock`` is injectable for tests.
    """

    def __init__(self, jobs: list[str], where: str = "", max_rows: int = 30,
                 clock: Callable[[], float] = time.monotonic):
        self.rows = {j: _Row(j) for j in jobs}
        self.where, self.max_rows, self.clock = where, max_rows, clock
        self.t0 = clock()
        self.peak = 0

    def started(self, job: str, node: str, attempt: int = 1) -> None:
        row = self.rows[job]
        row.state, row.node, row.attempt, row.started, row.ended, row.epoch = \
            "running", node, attempt, self.clock(), None, ""
        self.peak = max(self.peak, self.count("running"))

    def epoch(self, job: str, epoch: int, epochs: int | None = None) -> None:
        self.rows[job].epoch = f"{epoch}/{epochs}" if epochs else str(epoch)

    def retry(self, job: str, attempt: int, error: str) -> None:
        row = self.rows[job]
        row.state, row.note, row.epoch = "retrying", f"attempt {attempt} failed: {error}", ""

    def ended(self, job: str, status: str) -> None:
        row = self.rows[job]
        row.state, row.ended = ("done" if status == "ok" else "failed"), self.clock()
        if row.started is None:
            row.started = row.ended

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.rows.values())

    def eta(self) -> float | None:
        """Seconds left: mean finished-job time x queued jobs / jobs run at once, plus what running
        jobs still need; ``None`` until a job has finished."""
        durations = [r.ended - r.started for r in self.rows.values()
                     if r.ended is not None and r.started is not None]
        if not durations:
            return None
        mean, now = sum(durations) / len(durations), self.clock()
        queued = self.count("queued") + self.count("retrying")
        running = sum(max(mean - (now - r.started), 0.0) for r in self.rows.values()
                      if r.state == "running" and r.started is not None)
        return (mean * queued + running) / max(self.peak, 1)

    def _shown(self) -> list[_Row]:
        rows = list(self.rows.values())
        if len(rows) <= self.max_rows:
            return rows
        active = [r for r in rows if r.state in ("running", "retrying", "failed")]
        done = [r for r in rows if r.state == "done"][-5:]
        queued = [r for r in rows if r.state == "queued"][:5]
        keep = {id(r) for r in active + done + queued}
        return [r for r in rows if id(r) in keep]

    def summary(self) -> str:
        parts = [f"{self.count('done') + self.count('failed')}/{len(self.rows)} finished"]
        parts += [f"{self.count(s)} {s}" for s in ("failed", "running", "retrying", "queued") if self.count(s)]
        ends = [r.ended for r in self.rows.values()]
        now = max(ends) if ends and None not in ends else self.clock()  # all finished: the clock stops
        parts.append(f"elapsed {_clock_text(now - self.t0)}")
        eta = self.eta()
        if eta is not None and self.count("queued") + self.count("running") + self.count("retrying"):
            parts.append(f"eta ~{_clock_text(eta)}")
        return ", ".join(parts)

    def __rich__(self) -> Group:
        now = self.clock()
        table = Table(title=f"jobs{' on ' + self.where if self.where else ''}", title_justify="left",
                      expand=False, box=None, pad_edge=False)
        for col in ("job", "state", "node", "try", "epoch", "time", ""):
            table.add_column(col, no_wrap=col != "")
        for r in self._shown():
            took = None if r.started is None else (r.ended or now) - r.started
            table.add_row(r.job, Text(r.state, style=STATE_STYLE.get(r.state, "")), r.node,
                          str(r.attempt) if r.attempt else "", r.epoch, _clock_text(took) if took is not None else "",
                          Text(r.note[:80], style="dim"))
        hidden = len(self.rows) - len(self._shown())
        lines: list[Any] = [table]
        if hidden:
            lines.append(Text(f"  ... {hidden} more", style="dim"))
        lines.append(Text(self.summary()))
        return Group(*lines)


class RichProgress(NullProgress):
    """Three bars: all jobs, epochs of the current job, batches of the current epoch."""

    LOSS_EVERY_S = 0.25
    """Seconds between two reads of the training loss (each read waits for the GPU)."""

    def __init__(self, console: Console | None = None, clock: Callable[[], float] = time.monotonic):
        self.console = console or Console(stderr=True)
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                            TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=False,
                            refresh_per_second=4)
        self.clock = clock
        self._loss_read_at = -1e9
        self.loss_reads = 0
        self._phase: TaskID | None = None
        self._jobs: TaskID | None = None
        self._epochs: TaskID | None = None
        self._batches: TaskID | None = None
        self.table: JobTable | None = None
        self._live: Live | None = None

    def __enter__(self) -> "RichProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.bar.stop()

    def queue_jobs(self, jobs: list[str], where: str = "") -> None:
        """Switch from bars to one live table of jobs (parallel runs; worker logs go to files)."""
        self.bar.stop()  # rich shows one live display at a time
        self.table = JobTable(jobs, where)
        self._live = Live(self.table, console=self.console, refresh_per_second=4, transient=False)
        self._live.start()

    def job_started(self, job: str, node: str, attempt: int = 1) -> None:
        if self.table is not None:
            self.table.started(job, node, attempt)

    def job_epoch(self, job: str, epoch: int, epochs: int | None = None) -> None:
        if self.table is not None:
            self.table.epoch(job, epoch, epochs)

    def job_retry(self, job: str, attempt: int, error: str) -> None:
        if self.table is not None:
            self.table.retry(job, attempt, error)

    def start_phase(self, description: str, total: int) -> None:
        self._phase = self.bar.add_task(description, total=total, info="")

    def advance_phase(self, n: int = 1) -> None:
        if self._phase is not None:
            self.bar.advance(self._phase, n)

    def end_phase(self) -> None:
        if self._phase is not None:
            self.bar.remove_task(self._phase)
            self._phase = None

    def start_jobs(self, total: int) -> None:
        self._jobs = self.bar.add_task("jobs", total=total, info="")

    def start_job(self, job: str, epochs: int) -> None:
        for task in (self._epochs, self._batches):
            if task is not None:
                self.bar.remove_task(task)
        self._epochs = self.bar.add_task(f"  {job}", total=epochs, info="")
        self._batches = None

    def start_epoch(self, epoch: int, batches: int) -> None:
        if self._batches is not None:
            self.bar.remove_task(self._batches)
        self._batches = self.bar.add_task(f"    epoch {epoch}", total=batches, info="")

    def advance_batch(self, loss: Any) -> None:
        if self._batches is None:
            return
        now = self.clock()
        if now - self._loss_read_at < self.LOSS_EVERY_S:
            self.bar.update(self._batches, advance=1)
            return
        self._loss_read_at, self.loss_reads = now, self.loss_reads + 1
        self.bar.update(self._batches, advance=1, info=f"loss {float(loss):.4f}")

    def end_epoch(self, logs: dict[str, Any]) -> None:
        if self._epochs is not None:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in logs.items()
                              if k.startswith("val_") and isinstance(v, float))
            self.bar.update(self._epochs, advance=1, info=shown)

    def end_job(self, job: str, status: str) -> None:
        if self.table is not None:
            self.table.ended(job, status)
            return
        for task in (self._epochs, self._batches):
            if task is not None:
                self.bar.remove_task(task)
        self._epochs = self._batches = None
        if self._jobs is not None:
            self.bar.advance(self._jobs)
        if status != "ok":
            self.console.print(f"[red]job {job} {status}[/red]")

    def log(self, message: str) -> None:
        self.console.print(message)


class EventInbox:
    """Progress events sent by parallel workers, kept in arrival order until the driver takes them.

    The Ray executor runs it as a single-threaded actor (so one worker's events stay in order);
    it lives here because an actor's process imports its module, and this one does not need torch.
    """

    def __init__(self) -> None:
        self.items: list[tuple] = []

    def put(self, item: tuple) -> None:
        self.items.append(item)

    def take(self) -> list[tuple]:
        items, self.items = self.items, []
        return items
