"""The results folder: ``results/<suite>/<run-id>/`` and every path in it, written through one atomic write.

A run folder holds ``run.json`` (the header), ``splits.csv``, ``records/<job>.json``,
``predictions/<job>.csv``, ``checkpoints/<job>.pt``, ``latency/<job>.json``,
``external/<name>/<job>.csv``, ``logs/<job>.log``, ``probes.json`` and ``report/``. Latency files
imported from other devices live beside the runs, in ``results/<suite>/_latency/<device>/``.

Every file goes through :func:`write_atomic` (temp file + rename), so a crash never leaves half a
record, and readers see the old file or the new one.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from cxrbench.errors import ResultsError
from cxrbench.results.records import JobRecord, first_checkpoints

RUN_FILE = "run.json"
SPLITS_FILE = "splits.csv"
RECORDS_DIR = "records"
PREDICTIONS_DIR = "predictions"
CHECKPOINTS_DIR = "checkpoints"
RUN_LATENCY_DIR = "latency"
EXTERNAL_DIR = "external"
LOGS_DIR = "logs"
PROBES_FILE = "probes.json"
REPORT_DIR = "report"
LATENCY_DIR = "_latency"
"""Per suite: latency files imported from other devices (``<root>/<suite>/_latency/<device>/``)."""

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def default_results_root() -> Path:
    """``$CXRBENCH_RESULTS`` or ``./results``."""
    return Path(os.environ.get("CXRBENCH_RESULTS", "results"))


def safe_name(name: str) -> str:
    """``name`` usable as a folder name (anything outside ``[A-Za-z0-9_.-]`` becomes ``_``)."""
    return _SAFE.sub("_", name).strip("._") or "unknown"


def device_label(name: str | None = None) -> str:
    """The device name latency files and records carry: ``name`` made file-safe, or this machine's
    short hostname (the default ``--device-name``)."""
    import socket

    return safe_name(name) if name else safe_name(socket.gethostname().split(".")[0] or "unknown")


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8) so readers see the old file or the new one, never a partial one.

    The temp file sits next to ``path`` (same file system, so the rename is atomic) and is created
    with ``open()``, so the file keeps the umask's mode. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """:func:`write_atomic` of ``data`` as indented JSON (numpy scalars/arrays and paths allowed)."""
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default))


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


def imported_latency_dir(root: str | Path, suite: str, device: str) -> Path:
    """Where ``cxrbench results import`` puts a device's latency files for ``suite``."""
    return Path(root) / safe_name(suite) / LATENCY_DIR / safe_name(device)


class RunStore:
    """One run's folder: every path in it, and the writes into it."""

    def __init__(self, run_dir: str | Path):
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

    # -- paths -----------------------------------------------------------------------------------

    @property
    def header_path(self) -> Path:
        return self.dir / RUN_FILE

    @property
    def splits_path(self) -> Path:
        """The split manifest (sample_id, fold, split)."""
        return self.dir / SPLITS_FILE

    def record_path(self, job: str) -> Path:
        return self.dir / RECORDS_DIR / f"{job}.json"

    def predictions_path(self, job: str) -> Path:
        return self.dir / PREDICTIONS_DIR / f"{job}.csv"

    def checkpoint_path(self, job: str) -> Path:
        return self.dir / CHECKPOINTS_DIR / f"{job}.pt"

    @property
    def latency_dir(self) -> Path:
        """The run's own latency files (suite ``profile.latency``)."""
        return self.dir / RUN_LATENCY_DIR

    def latency_path(self, job: str) -> Path:
        return self.latency_dir / f"{job}.json"

    def external_predictions_path(self, name: str, job: str) -> Path:
        """A job's predictions on the suite's external test set ``name``."""
        return self.dir / EXTERNAL_DIR / name / f"{job}.csv"

    def log_path(self, job: str) -> Path:
        """Everything a job logged, printed or warned."""
        return self.dir / LOGS_DIR / f"{job}.log"

    @property
    def probes_path(self) -> Path:
        """``cxrbench probe``'s results."""
        return self.dir / PROBES_FILE

    @property
    def report_dir(self) -> Path:
        """``cxrbench report``'s default output folder."""
        return self.dir / REPORT_DIR

    def relative(self, path: Path) -> str:
        """``path`` relative to the run folder, as records store it."""
        return str(Path(path).relative_to(self.dir))

    # -- writes ----------------------------------------------------------------------------------

    def write_bytes(self, path: Path, data: bytes | str) -> Path:
        """:func:`write_atomic` for a file of this run (``path`` from one of the methods above)."""
        return write_atomic(path, data)

    def write_json(self, path: Path, data: Any) -> Path:
        return write_json_atomic(path, data)

    def append_log(self, job: str, text: str) -> Path:
        """Add ``text`` to ``logs/<job>.log`` (one block per attempt), still through one atomic write."""
        path = self.log_path(job)
        old = path.read_text(encoding="utf-8") if path.is_file() else ""
        return write_atomic(path, old + text)

    def write_header(self, header: dict[str, Any]) -> None:
        write_json_atomic(self.header_path, header)

    def write_record(self, record: JobRecord) -> None:
        write_json_atomic(self.record_path(record.job_id), record.to_dict())

    # -- reads -----------------------------------------------------------------------------------

    def read_header(self) -> dict[str, Any]:
        try:
            return json.loads(self.header_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultsError(f"{self.header_path}: cannot read run header: {exc}") from None

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
        return first_checkpoints(self.records())

    def finished_jobs(self) -> set[str]:
        """Jobs whose record says ``ok`` (``--resume`` skips these; failed jobs run again)."""
        return {r.job_id for r in self.records() if r.status == "ok"}


def iter_runs(root: Path) -> Iterator[RunStore]:
    """Every run folder under ``root`` (``<root>/<suite>/<run-id>/run.json``), oldest first."""
    if not root.is_dir():
        return
    for path in sorted(root.glob(f"*/*/{RUN_FILE}"), key=lambda p: p.parent.name):
        yield RunStore(path.parent)
