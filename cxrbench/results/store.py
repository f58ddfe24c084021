"""The results folder: ``results/<suite>/<run-id>/`` with run.json, records, predictions, checkpoints.

Every JSON file is written atomically (temp file + rename), so a crash never leaves half a record.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from cxrbench.errors import ResultsError
from cxrbench.results.records import JobRecord

RUN_FILE = "run.json"
RECORDS_DIR = "records"
PREDICTIONS_DIR = "predictions"
CHECKPOINTS_DIR = "checkpoints"


def default_results_root() -> Path:
    """``$CXRBENCH_RESULTS`` or ``./results``."""
    return Path(os.environ.get("CXRBENCH_RESULTS", "results"))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so readers see the old file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=False, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def new_run_id(suite_sha: str) -> str:
    """Sortable, unique enough: UTC time plus the suite hash prefix."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + f"-{suite_sha[:8]}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunStore:
    """One run's folder."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)

    @classmethod
    def create(cls, root: Path, suite_name: str, run_id: str) -> "RunStore":
        run_dir = Path(root) / suite_name / run_id
        n = 1
        while True:  # two runs of one suite in the same second get -2, -3, ...
            try:
                run_dir.mkdir(parents=True)
                break
            except FileExistsError:
                n += 1
                run_dir = Path(root) / suite_name / f"{run_id}-{n}"
        for sub in (RECORDS_DIR, PREDICTIONS_DIR, CHECKPOINTS_DIR):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        return cls(run_dir)

    @classmethod
    def open(cls, run: str | Path, root: Path | None = None) -> "RunStore":
        """Open a run by folder path or by run id (searched under ``root``)."""
        path = Path(run)
        if not (path / RUN_FILE).is_file():
            root = root or default_results_root()
            matches = sorted(root.glob(f"*/{run}/{RUN_FILE}")) if root.is_dir() else []
            if not matches:
                raise ResultsError(f"no run {str(run)!r}: neither a run folder nor a run id under {root}/")
            path = matches[-1].parent
        return cls(path)

    @property
    def run_id(self) -> str:
        return self.dir.name

    def read_header(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / RUN_FILE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultsError(f"{self.dir / RUN_FILE}: cannot read run header: {exc}") from None

    def write_header(self, header: dict[str, Any]) -> None:
        write_json_atomic(self.dir / RUN_FILE, header)

    def record_path(self, job: str) -> Path:
        return self.dir / RECORDS_DIR / f"{job}.json"

    def predictions_path(self, job: str) -> Path:
        return self.dir / PREDICTIONS_DIR / f"{job}.csv"

    def checkpoint_path(self, job: str) -> Path:
        return self.dir / CHECKPOINTS_DIR / f"{job}.pt"

    def write_record(self, record: JobRecord) -> None:
        write_json_atomic(self.record_path(record.job_id), record.to_dict())

    def records(self) -> list[JobRecord]:
        out = []
        for path in sorted((self.dir / RECORDS_DIR).glob("*.json")):
            try:
                out.append(JobRecord.from_dict(json.loads(path.read_text())))
            except (OSError, json.JSONDecodeError, TypeError) as exc:
                raise ResultsError(f"{path}: unreadable record: {exc}") from None
        return out

    def first_checkpoints(self) -> dict[str, JobRecord]:
        """model label -> the record of its first ok job (lowest fold, then seed) that saved a checkpoint."""
        out: dict[str, JobRecord] = {}
        for rec in sorted(self.records(), key=lambda r: (r.fold, r.seed)):
            if rec.status == "ok" and rec.checkpoint_path and rec.model not in out:
                out[rec.model] = rec
        return out

    def finished_jobs(self) -> set[str]:
        """Jobs whose record says ``ok`` (``--resume`` skips these; failed jobs run again)."""
        return {r.job_id for r in self.records() if r.status == "ok"}


def iter_runs(root: Path) -> Iterator[RunStore]:
    """Every run folder under ``root`` (``<root>/<suite>/<run-id>/run.json``), oldest first."""
    if not root.is_dir():
        return
    for path in sorted(root.glob(f"*/*/{RUN_FILE}"), key=lambda p: p.parent.name):
        yield RunStore(path.parent)
