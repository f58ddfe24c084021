"""Helpers shared by the file-based dataset plugins: finding the root, listing images, matching
class names, fingerprints, option parsing and the error messages users see."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from cxrbench.data.dicom import DICOM_EXTENSIONS, is_dicom_path
from cxrbench.data.images import FileImages
from cxrbench.errors import DatasetError
from cxrbench.specs import SampleTable

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}) | DICOM_EXTENSIONS
DATA_ENV = "CXRBENCH_DATA"
"""When ``dataset.root`` is null, datasets look in ``$CXRBENCH_DATA/<their default folder>``."""

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset plugin tells the user when its data is missing or malformed."""

    name: str
    source: str
    layout: str
    default_folder: str
    """Folder looked up under ``$CXRBENCH_DATA`` when no root is given."""


def is_debris(name: str) -> bool:
    """macOS/Windows archive debris (``__MACOSX``, ``.DS_Store``, ``._x.jpeg``, ``Thumbs.db``)."""
    return name.startswith(".") or name == "__MACOSX" or name.lower() in ("thumbs.db", "desktop.ini")


def norm(name: str) -> str:
    """Case-, space-, underscore- and hyphen-insensitive form of a class or folder name."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def subdirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder``, sorted, without archive debris."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not is_debris(p.name))
    except OSError:
        return []


def list_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension, case-insensitive; DICOM also without one), sorted, no debris."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not is_debris(d)) if recursive else []
        found += [Path(dirpath) / f for f in filenames
                  if not is_debris(f) and (os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS
                                           or is_dicom_path(os.path.join(dirpath, f)))]  # + DICM, no extension
    return sorted(found)


def synthetic_hint(options: dict[str, Any] | None = None, variant: str | None = None) -> str:
    """The overrides that run the same suite on the built-in synthetic data instead."""
    parts = ["--set dataset.name=synthetic_cxr", "--set dataset.root=null"]
    if variant is not None:
        parts.append("--set dataset.variant=null")
    if options:
        parts.append("--set 'dataset.options={}'")
    return " ".join(parts)


def missing_data_error(info: DatasetInfo, problem: str, looked: Sequence[Path | str] = (),
                       options: dict[str, Any] | None = None, variant: str | None = None) -> DatasetError:
    """A DatasetError saying what is missing, where we looked, where to get it and how to go on."""
    lines = [f"dataset {info.name!r}: {problem}"]
    if looked:
        lines.append("  looked in: " + ", ".join(str(p) for p in looked))
    lines.append(f"  get it from: {info.source}")
    lines.append("  expected layout:")
    lines += [f"    {line}" for line in info.layout.splitlines()]
    lines.append(f"  then: --set dataset.root=PATH, or put it at ${DATA_ENV}/{info.default_folder} "
                 f"and leave dataset.root null")
    lines.append(f"  or run the same suite on synthetic data: {synthetic_hint(options, variant)}")
    return DatasetError("\n".join(lines))


def resolve_root(info: DatasetInfo, root: str | None, options: dict[str, Any] | None = None,
                 variant: str | None = None) -> Path:
    """``root``, or ``$CXRBENCH_DATA/<default folder>`` when it is null; must exist."""
    if root is None:
        env = os.environ.get(DATA_ENV)
        if not env:
            raise missing_data_error(info, f"dataset.root is not set and ${DATA_ENV} is not set", (),
                                     options, variant)
        path = Path(os.path.expanduser(env)) / info.default_folder
    else:
        path = Path(os.path.expanduser(os.path.expandvars(root)))
    if not path.exists():
        raise missing_data_error(info, f"{path} does not exist", [path], options, variant)
    return path.resolve()


def parse_options(model: type[M], options: dict[str, Any], dataset: str) -> M:
    """Validate ``dataset.options`` against a dataset's pydantic model (unknown keys rejected)."""
    try:
        return model.model_validate(options or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}"
                             for e in exc.errors())
        known = ", ".join(model.model_fields)
        raise DatasetError(f"dataset {dataset!r}: bad dataset.options ({problems}); "
                           f"known options: {known or 'none'}") from None


def match_classes(dataset: str, requested: Sequence[str], available: Sequence[str],
                  aliases: dict[str, str] | None = None, what: str = "classes") -> list[int]:
    """Index in ``available`` of each requested class, matched by :func:`norm` (plus ``aliases``).

    Raises a DatasetError listing the expected names when a requested class is unknown.
    """
    lookup = {norm(a): i for i, a in enumerate(available)}
    for alias, target in (aliases or {}).items():
        if norm(target) in lookup:
            lookup.setdefault(norm(alias), lookup[norm(target)])
    out, unknown = [], []
    for c in requested:
        if norm(c) in lookup:
            out.append(lookup[norm(c)])
        else:
            unknown.append(c)
    if unknown:
        raise DatasetError(f"dataset {dataset!r}: unknown {what} {unknown}; expected names from "
                           f"{list(available)} (case-insensitive)")
    if len(set(out)) != len(out):
        raise DatasetError(f"dataset {dataset!r}: {what} {list(requested)} name the same class twice")
    return out


def fingerprint(dataset: str, root: Path, files: Iterable[Path | str], extra: Any = None) -> str:
    """Hash of every file's (relative path, size, mtime_ns) in row order: any change changes it."""
    h = hashlib.sha256(json.dumps([dataset, str(root), extra], sort_keys=True, default=str).encode())
    for f in files:
        st = os.stat(f)
        try:
            rel = os.path.relpath(f, root)
        except ValueError:  # another drive (Windows)
            rel = str(f)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return f"{dataset}-{h.hexdigest()[:24]}"


def relative_ids(root: Path, files: Sequence[Path]) -> list[str]:
    """Sample ids: paths relative to ``root`` with forward slashes (stable across machines)."""
    return [Path(os.path.relpath(f, root)).as_posix() for f in files]


def file_table(dataset: str, root: Path, files: Sequence[Path], labels: Any, class_names: Sequence[str], *,
               patient_ids: Sequence[str] | None = None, official_split: Sequence[str] | None = None,
               extra_files: Sequence[Path] = (), extras: dict[str, Any] | None = None) -> SampleTable:
    """A SampleTable over image files: relative-path ids, a stat-based fingerprint, :class:`FileImages`.

    ``extra_files`` (label CSVs, split lists) are part of the fingerprint too.
    """
    files = [Path(f) for f in files]
    return SampleTable(
        ids=relative_ids(root, files),
        labels=np.asarray(labels, dtype=np.int64),
        class_names=list(class_names),
        load_image=FileImages([str(f) for f in files]),
        patient_ids=list(patient_ids) if patient_ids is not None else None,
        official_split=list(official_split) if official_split is not None else None,
        synthetic=False,
        fingerprint=fingerprint(dataset, root, [*files, *extra_files]),
        extras={"root": str(root), **(extras or {})},
    )
