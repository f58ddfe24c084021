"""Progress display for runs: rich bars with ETA, or nothing (tests, --quiet)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


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
    def advance_batch(self, loss: float) -> None: ...
    def end_epoch(self, logs: dict[str, Any]) -> None: ...
    def end_job(self, job: str, status: str) -> None: ...

    def log(self, message: str) -> None: ...


class RichProgress(NullProgress):
    """Three bars: all jobs, epochs of the current job, batches of the current epoch."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                            TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=False)
        self._phase: TaskID | None = None
        self._jobs: TaskID | None = None
        self._epochs: TaskID | None = None
        self._batches: TaskID | None = None

    def __enter__(self) -> "RichProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.stop()

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

    def advance_batch(self, loss: float) -> None:
        if self._batches is not None:
            self.bar.update(self._batches, advance=1, info=f"loss {loss:.4f}")

    def end_epoch(self, logs: dict[str, Any]) -> None:
        if self._epochs is not None:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in logs.items()
                              if k.startswith("val_") and isinstance(v, float))
            self.bar.update(self._epochs, advance=1, info=shown)

    def end_job(self, job: str, status: str) -> None:
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
