"""Helpers for the loaders of published archives (PadChest, RSNA, VinDr-CXR, SIIM, NLM TB sets).

Reading a label CSV with required columns, finding files by name anywhere under a root, choosing
a task's labels (binary / multiclass by class name, multilabel through the shared vocabulary of
:mod:`cxrbench.data.label_space` with a mask for what the archive lacks), reading DICOM headers
in parallel, and the "rows that cannot be used" error every loader raises.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from cxrbench.data.datasets.common import is_debris, match_classes
from cxrbench.data.dicom import DicomHeader, read_dicom_header
from cxrbench.data.images import default_workers
from cxrbench.data.label_space import canonical, key, select_classes
from cxrbench.errors import DatasetError

if TYPE_CHECKING:  # pandas is imported on load only: listing datasets stays fast
    import pandas as pd


def read_csv(dataset: str, path: Path, required: Sequence[str]) -> pd.DataFrame:
    """``path`` as strings (no NaN conversion), column names stripped (SIIM's ``" EncodedPixels"``).

    Raises a DatasetError naming the file when it cannot be read or lacks a ``required`` column.
    """
    import pandas as pd
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, low_memory=False)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types
        raise DatasetError(f"dataset {dataset!r}: cannot read {path}: {type(exc).__name__}: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    absent = [c for c in required if c not in df.columns]
    if absent:
        raise DatasetError(f"dataset {dataset!r}: {path} lacks column(s) {absent} (has {list(df.columns)[:12]})")
    return df


def where(path: Path, row: int, ident: str | None = None) -> str:
    """How a CSV row is named in messages: ``file.csv line N (id)`` (the header is line 1)."""
    return f"{path.name} line {row + 2}" + (f" ({ident})" if ident else "")


def index_files(root: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """File stem -> path of every file under ``root`` (any depth) ending in one of ``suffixes``.

    Case-insensitive suffixes, debris skipped, the first path in sorted walk order wins.
    """
    wanted = tuple(s.lower() for s in suffixes)
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_debris(d))
        for f in sorted(filenames):
            if not is_debris(f) and f.lower().endswith(wanted):
                out.setdefault(os.path.splitext(f)[0], Path(dirpath) / f)
    return out


def unusable(dataset: str, source: Path, skipped: Sequence[tuple[str, str]], hint: str = "") -> DatasetError:
    """The error for rows that cannot be used: how many, the first five reasons, and what skips them."""
    listed = "\n".join(f"  {reason}" for _, reason in skipped[:5])
    return DatasetError(f"dataset {dataset!r}: {len(skipped)} row(s) of {source} cannot be used, e.g.:\n{listed}"
                        + (f"\n({hint})" if hint else ""))


def single_label(dataset: str, classes: Sequence[str], expected: Sequence[str],
                 aliases: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, int]]:
    """The suite's class names (default ``expected``) and dataset class -> suite label index.

    The suite must name each of ``expected`` once (any order, case-insensitive, ``aliases`` too).
    """
    classes = list(classes) or list(expected)
    if len(classes) != len(expected):
        raise DatasetError(f"dataset {dataset!r} has classes {list(expected)} (case-insensitive, any order), "
                           f"but the suite names {classes}")
    matched = match_classes(dataset, classes, expected, dict(aliases or {}))
    return classes, {expected[j]: i for i, j in enumerate(matched)}


def multilabel(dataset: str, columns: Mapping[str, np.ndarray], classes: Sequence[str], default: Sequence[str],
               known: Mapping[str, np.ndarray] | None = None
               ) -> tuple[list[str], np.ndarray, np.ndarray | None, list[str]]:
    """``(classes, labels (N, K), mask (N, K) or None when every label is known, notes)`` for a multilabel suite.

    ``columns`` maps the archive's label names (vocabulary names where it has them, its own names
    otherwise) to 0/1 per row; ``classes`` defaults to ``default``. A vocabulary class the archive
    lacks is masked (not evaluated, never negative) and named in a note; a name that is neither in
    the vocabulary nor among ``columns`` is an error (a typo must not become an all-masked label).
    """
    classes = list(classes) or list(default)
    have = {key(c) for c in columns}
    unknown = [c for c in classes if canonical(c) is None and key(c) not in have]
    if unknown:
        raise DatasetError(f"dataset {dataset!r}: unknown labels {unknown}; it has {sorted(columns, key=str.lower)} "
                           "(plus any name of the shared vocabulary, masked where the archive lacks it)")
    if len({key(canonical(c) or c) for c in classes}) != len(classes):
        raise DatasetError(f"dataset {dataset!r}: labels {classes} name the same label twice")
    labels, mask, missing = select_classes(columns, classes, known)
    if len(missing) == len(classes):
        raise DatasetError(f"dataset {dataset!r} annotates none of the labels {classes}")
    notes = [f"{dataset} does not annotate {missing}: masked (not evaluated, never scored as negative)"] \
        if missing else []
    return classes, labels, (None if mask.all() else mask), notes


def dicom_headers(dataset: str, paths: Sequence[Path], rows: Sequence[str],
                  workers: int | None = None) -> list[DicomHeader]:
    """Header-only reads of ``paths`` in a thread pool; ``rows[i]`` names path i in the error.

    Raises one DatasetError listing the unreadable files (first five) and their rows.
    """
    def head(p: Path) -> DicomHeader | str:
        try:
            return read_dicom_header(p)
        except DatasetError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        heads = list(pool.map(head, paths, chunksize=64))
    bad = [(rows[i], h) for i, h in enumerate(heads) if isinstance(h, str)]
    if bad:
        listed = "\n".join(f"  {row}: {msg}" for row, msg in bad[:5])
        raise DatasetError(f"dataset {dataset!r}: {len(bad)} DICOM file(s) cannot be read:\n{listed}")
    return heads  # type: ignore[return-value]


def binary_column(dataset: str, values: Sequence[str], label: str, path: Path) -> np.ndarray:
    """A 0/1 CSV column as int64 (``1``, ``0``, ``1.0``, ``0.0``); anything else names its row."""
    out = np.zeros(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        s = str(v).strip()
        if s not in ("0", "1", "0.0", "1.0"):
            raise DatasetError(f"dataset {dataset!r}: {where(path, i)}: {label} must be 0 or 1, got {v!r}")
        out[i] = int(float(s))
    return out


def to_vocabulary(raw: Mapping[str, np.ndarray], mapping: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """Archive label columns -> vocabulary columns where a name denotes one, the rest kept as named.

    A raw name goes to ``mapping[name]`` (matched by :func:`~cxrbench.data.label_space.key`), else
    to its :func:`~cxrbench.data.label_space.canonical` name; several raw columns of one vocabulary
    label are OR-ed (e.g. VinDr's rib and clavicle fractures -> Fracture).
    """
    by_key = {key(k): v for k, v in (mapping or {}).items()}
    out: dict[str, np.ndarray] = {}
    for name, col in raw.items():
        target = by_key.get(key(name)) or canonical(name) or name
        col = np.asarray(col, dtype=np.int64)
        out[target] = np.maximum(out[target], col) if target in out else col
    return out
