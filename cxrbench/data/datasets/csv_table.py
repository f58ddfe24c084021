"""``csv``: images listed in a CSV file with their labels (and optionally patients and a split)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

from cxrbench.data.datasets.common import file_table, match_classes, norm
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

NAME = "csv"
PATH_COLUMNS = ("path", "image", "file", "filename")
SPLIT_VALUES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
NONE_LABELS = ("", "nofinding", "none")

class CsvOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csv: str | None = None
    """The CSV file; relative paths are resolved against dataset.root (default: dataset.root itself)."""
    allow_missing: bool = False
    """Skip (and list) rows whose image file is missing instead of failing."""


def _column(df: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    lookup = {norm(c): c for c in df.columns}
    return next((lookup[norm(n)] for n in names if norm(n) in lookup), None)


def _find_csv(request: DataRequest, opts: CsvOptions) -> tuple[Path, Path | None]:
    """(the CSV file, the data root or None)."""
    root = request.root
    if opts.csv is None:
        if root is None or not root.is_file():
            raise DatasetError(f"dataset {NAME!r}: set option csv: PATH, or point dataset.root at the CSV file")
        return root, root.parent
    path = Path(os.path.expanduser(opts.csv))
    if not path.is_absolute() and root is not None:
        path = (root if root.is_dir() else root.parent) / path
    if not path.is_file():
        raise missing_data_error(SPEC, f"CSV file {path} not found", [path], request.options)
    return path.resolve(), root if root is None or root.is_dir() else root.parent


def _labels(df: pd.DataFrame, request: DataRequest, csv: Path) -> tuple[np.ndarray, list[str]]:
    def where(i: int) -> str:
        return f"{csv.name} line {i + 2}"

    if request.task != "multilabel":
        col = _column(df, ("label",))
        if col is None:
            raise DatasetError(f"dataset {NAME!r}: {csv} needs a 'label' column (has {list(df.columns)})")
        values = [str(v).strip() for v in df[col]]
        classes = list(request.classes) or sorted(set(values), key=str.lower)
        lookup = {norm(c): i for i, c in enumerate(classes)}
        out = []
        for i, v in enumerate(values):
            if norm(v) not in lookup:
                raise DatasetError(f"dataset {NAME!r}: {where(i)}: label {v!r} is not one of the classes {classes}")
            out.append(lookup[norm(v)])
        return np.asarray(out, dtype=np.int64), classes

    pipe = _column(df, ("labels", "label"))
    if pipe is not None:
        cells = [[p.strip() for p in str(v).split("|") if norm(p) not in NONE_LABELS] for v in df[pipe]]
        classes = list(request.classes) or sorted({p for c in cells for p in c}, key=str.lower)
        lookup = {norm(c): i for i, c in enumerate(classes)}
        out = np.zeros((len(df), len(classes)), dtype=np.int64)
        for i, parts in enumerate(cells):
            for p in parts:
                if norm(p) not in lookup:
                    raise DatasetError(f"dataset {NAME!r}: {where(i)}: label {p!r} is not one of the classes {classes}")
                out[i, lookup[norm(p)]] = 1
        return out, classes
    reserved = {norm(c) for c in (*PATH_COLUMNS, "patient_id", "patient", "split")}
    columns = [c for c in df.columns if norm(c) not in reserved]
    classes = list(request.classes) or columns
    picked = [columns[j] for j in match_classes(NAME, classes, columns, what="label columns")]
    out = np.zeros((len(df), len(classes)), dtype=np.int64)
    for k, col in enumerate(picked):
        for i, v in enumerate(df[col]):
            if str(v).strip() not in ("0", "1", "0.0", "1.0"):
                raise DatasetError(f"dataset {NAME!r}: {where(i)}: column {col!r} must be 0 or 1, got {v!r}")
            out[i, k] = int(float(v))
    return out, classes


def load(request: DataRequest) -> SampleTable:
    """Rows of a CSV-listed dataset (see ``SPEC.layout``)."""
    opts: CsvOptions = request.options  # type: ignore[assignment]
    csv, root = _find_csv(request, opts)
    try:
        import pandas as pd  # on load only: registering the dataset stays pandas-free

        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types
        raise DatasetError(f"dataset {NAME!r}: cannot read {csv}: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    path_col = _column(df, PATH_COLUMNS)
    if path_col is None:
        raise DatasetError(f"dataset {NAME!r}: {csv} needs a 'path' column (has {list(df.columns)})")
    if len(df) == 0:
        raise DatasetError(f"dataset {NAME!r}: {csv} has no rows")
    labels, classes = _labels(df, request, csv)
    patient_col, split_col = _column(df, ("patient_id", "patient")), _column(df, ("split",))

    keep, files, patients, split, skipped = [], [], [], [], []
    for i, raw in enumerate(df[path_col]):
        where = f"{csv.name} line {i + 2}"
        rel = Path(os.path.expanduser(str(raw).strip()))
        candidates = [rel] if rel.is_absolute() else [csv.parent / rel, *([root / rel] if root else [])]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            if not opts.allow_missing:
                raise DatasetError(f"dataset {NAME!r}: {where}: image {raw!r} not found (looked at "
                                   f"{', '.join(str(c) for c in candidates)}); option allow_missing: true skips it")
            skipped.append((str(raw), f"{where}: image file not found"))
            continue
        if split_col is not None:
            value = norm(str(df[split_col].iat[i]))
            if value not in SPLIT_VALUES:
                raise DatasetError(f"dataset {NAME!r}: {where}: split {df[split_col].iat[i]!r} is not train, val "
                                   "or test")
            split.append(SPLIT_VALUES[value])
        if patient_col is not None:
            patient = str(df[patient_col].iat[i]).strip()
            if not patient:
                raise DatasetError(f"dataset {NAME!r}: {where}: empty {patient_col}")
            patients.append(patient)
        keep.append(i)
        files.append(path)
    if not files:
        raise DatasetError(f"dataset {NAME!r}: no image of {csv} was found")
    return file_table(NAME, csv.parent, files, labels[keep], classes,
                      patient_ids=patients if patient_col else None,
                      official_split=split if split_col else None, label_file=csv, skipped=skipped)


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("binary", "multiclass", "multilabel"),
    description=("Your own images listed in a CSV: path + label (class name), or labels (pipe-separated) / one "
                 "0/1 column per label for multilabel; optional patient_id and split (train/val/test). "
                 "Options: csv (the file; or point dataset.root at it), allow_missing."),
    source="your own images listed in a CSV file",
    layout=("a CSV (option csv, or dataset.root pointing at it) with columns:\n"
            "  path        image file, relative to the CSV's folder or to dataset.root (or absolute)\n"
            "  label       class name (binary/multiclass), or\n"
            "  labels      pipe-separated label names (multilabel; empty = none), or one 0/1 column per label\n"
            "  patient_id  optional: enables patient-grouped splits\n"
            "  split       optional: train / val / test (an official split)"),
    options_schema=CsvOptions,
)
