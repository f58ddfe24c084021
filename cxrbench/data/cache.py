"""The preprocessing cache: every image decoded and resized once, kept on disk as a memory-mapped array.

One cache entry per (dataset, files with their size and mtime, row order, image size, channels,
resize recipe) -- the table's ``fingerprint`` carries the files. Every model, fold, seed and epoch
of a run, and every later run asking for the same thing, reads the same ``images.npy`` through
``np.load(mmap_mode="c")`` (copy-on-write: tensors built on it are writable, the file never
changes). Touching a source file changes the fingerprint, hence the key: the stale entry is rebuilt
and the old one removed. Entries are written to a temporary folder and renamed into place, so a
crash never leaves a half-written cache. Rows that could not be decoded are listed in the entry's
``meta.json``.

Location: ``$CXRBENCH_CACHE``, else ``$XDG_CACHE_HOME/cxrbench``, else ``~/.cache/cxrbench``.
Synthetic tables and tables without a fingerprint are decoded in memory and not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrbench.data.images import RESIZE_POLICY, compact, decode_table
from cxrbench.specs import SampleTable

log = logging.getLogger(__name__)

CACHE_ENV = "CXRBENCH_CACHE"
FORMAT_VERSION = 1
_STALE_TMP_SECONDS = 24 * 3600
_SPARE_BYTES = 64 << 20


@dataclass
class CachedImages:
    """Decoded images: ``images[j]`` is table row ``keep[j]`` as uint8 ``(C, S, S)``."""

    images: np.ndarray
    keep: np.ndarray
    bad: list[tuple[str, str]] = field(default_factory=list)
    """(sample id, "path: reason") of rows that could not be decoded."""
    hit: bool = False
    path: Path | None = None
    """The cache entry folder (None when decoded in memory only)."""
    seconds: float = 0.0
    """Time spent decoding now (0 on a cache hit)."""

    def info(self) -> dict[str, Any]:
        """What run.json records about the cache."""
        return {"hit": self.hit, "path": str(self.path) if self.path else None,
                "decode_seconds": round(self.seconds, 3)}


def default_cache_dir() -> Path:
    """``$CXRBENCH_CACHE``, else ``$XDG_CACHE_HOME/cxrbench``, else ``~/.cache/cxrbench``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(os.path.expanduser(env))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cxrbench"


def cacheable(table: SampleTable) -> bool:
    """Real data with a fingerprint is cached; synthetic data is cheap to re-render and is not."""
    return bool(table.fingerprint) and not table.synthetic


def _sha(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def cache_key(table: SampleTable, size: int, channels: int, dataset: str = "") -> str:
    """Identity of the decoded array: files (via the fingerprint), row order, size, channels, recipe."""
    ids = hashlib.sha256("\n".join(table.ids).encode()).hexdigest()
    return _sha({"format": FORMAT_VERSION, "dataset": dataset, "fingerprint": table.fingerprint, "ids": ids,
                 "size": size, "channels": channels, "resize": RESIZE_POLICY})[:32]


def _slot(table: SampleTable, size: int, channels: int, dataset: str) -> str:
    """What an entry is *for* (same dataset folder, size, channels): older entries of a slot are stale."""
    where = [table.root, table.label_file, table.archive]
    return _sha({"dataset": dataset, "where": where, "size": size, "channels": channels})[:12]


def entry_dir(cache_dir: Path, table: SampleTable, size: int, channels: int, dataset: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", dataset or "data")
    return cache_dir / f"{name}-{size}px-{channels}ch-{_slot(table, size, channels, dataset)}-" \
                       f"{cache_key(table, size, channels, dataset)}"


def _open(entry: Path, table: SampleTable, size: int, channels: int) -> CachedImages | None:
    """A complete, matching entry, or None (missing or inconsistent: it will be rebuilt)."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        images = np.load(entry / "images.npy", mmap_mode="c")
    except (OSError, ValueError):
        return None
    bad_rows = [int(r) for r, _, _ in meta.get("bad", [])]
    keep = np.setdiff1d(np.arange(len(table)), np.asarray(bad_rows, dtype=np.int64))
    if (meta.get("n_rows") != len(table) or images.shape != (len(table), channels, size, size)
            or meta.get("n_keep") != len(keep)):
        return None
    return CachedImages(images[: len(keep)], keep, [(i, r) for _, i, r in meta["bad"]], hit=True, path=entry)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _prune(cache_dir: Path, entry: Path) -> None:
    """Remove other entries of the same slot (stale files) and temporary folders of crashed runs."""
    prefix = entry.name.rsplit("-", 1)[0] + "-"
    now = time.time()
    for other in cache_dir.iterdir():
        if other.name.startswith(prefix) and other != entry:
            _remove(other)
        elif other.name.startswith(".tmp-"):
            try:
                if now - other.stat().st_mtime > _STALE_TMP_SECONDS:
                    _remove(other)
            except OSError:
                pass


def _phase(progress: Any, description: str, total: int):
    if progress is not None:
        progress.start_phase(description, total)
        return progress.advance_phase
    return None


def _end(progress: Any) -> None:
    if progress is not None:
        progress.end_phase()


def _log(progress: Any, message: str) -> None:
    log.info(message)
    if progress is not None and hasattr(progress, "log"):
        progress.log(message)


def _decode_all(table: SampleTable, out: np.ndarray, size: int, channels: int, progress: Any,
                workers: int | None, note: str = "") -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode every row into ``out`` under a progress phase, then move the readable rows to its front.

    Returns (kept row indices, (row, reason) of each unreadable image).
    """
    advance = _phase(progress, f"decoding {len(table)} images at {size}px{note}", len(table))
    try:
        failures = decode_table(table, out, size, channels, advance, workers)
    finally:
        _end(progress)
    return compact(out, [i for i, _ in failures]), failures


def decode_in_memory(table: SampleTable, size: int, channels: int, progress: Any = None,
                     workers: int | None = None) -> CachedImages:
    """Decode every row into RAM (no cache)."""
    t0 = time.perf_counter()
    images = np.empty((len(table), channels, size, size), dtype=np.uint8)
    keep, failures = _decode_all(table, images, size, channels, progress, workers)
    return CachedImages(images[: len(keep)], keep, [(table.ids[i], r) for i, r in failures],
                        seconds=time.perf_counter() - t0)


def _build(entry: Path, table: SampleTable, size: int, channels: int, dataset: str, progress: Any,
           workers: int | None) -> None:
    """Decode into a temporary folder next to ``entry``, then rename it into place."""
    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        out = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                        shape=(len(table), channels, size, size))
        keep, failures = _decode_all(table, out, size, channels, progress, workers, " (cache miss)")
        out.flush()
        del out
        meta = {"format": FORMAT_VERSION, "dataset": dataset, "fingerprint": table.fingerprint,
                "key": cache_key(table, size, channels, dataset), "root": table.root,
                "size": size, "channels": channels, "resize": RESIZE_POLICY, "n_rows": len(table),
                "n_keep": len(keep), "bad": [[i, table.ids[i], r] for i, r in failures],
                "decode_seconds": round(time.perf_counter() - t0, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, entry)
        except OSError:
            if not entry.exists():
                raise
            # another process finished the same entry first: use theirs
    finally:
        if tmp.exists():
            _remove(tmp)


def load_images(table: SampleTable, size: int, channels: int, *, dataset: str = "",
                cache_dir: str | os.PathLike | None = None, use_cache: bool = True, progress: Any = None,
                workers: int | None = None) -> CachedImages:
    """Decoded images of every row of ``table``, from the cache when possible.

    A miss decodes every row once (threads; :func:`cxrbench.data.images.decode_table`) into a
    new entry; a hit decodes nothing. Falls back to decoding in memory when the table is not
    cacheable, ``use_cache`` is false, or the cache folder is not writable / too small.
    """
    if not use_cache or not cacheable(table):
        return decode_in_memory(table, size, channels, progress, workers)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = entry_dir(root, table, size, channels, dataset)
    found = _open(entry, table, size, channels)
    if found is not None:
        _log(progress, f"images: cache hit, {entry}")
        return found
    need = len(table) * channels * size * size
    try:
        root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(root).free
    except OSError as exc:
        _log(progress, f"images: cache folder {root} unusable ({exc}); decoding in memory")
        return decode_in_memory(table, size, channels, progress, workers)
    if free < need + _SPARE_BYTES:
        _log(progress, f"images: {root} has {free >> 20} MB free, the cache needs {need >> 20} MB; "
                       f"decoding in memory (set ${CACHE_ENV} to a larger disk)")
        return decode_in_memory(table, size, channels, progress, workers)
    if entry.exists():  # an inconsistent leftover
        _remove(entry)
    t0 = time.perf_counter()
    _build(entry, table, size, channels, dataset, progress, workers)
    seconds = time.perf_counter() - t0
    _prune(root, entry)
    found = _open(entry, table, size, channels)
    if found is None:  # pragma: no cover - the entry was just written
        raise OSError(f"cache entry {entry} could not be read back")
    found.hit, found.seconds = False, seconds
    return found
