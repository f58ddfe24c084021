"""Helpers shared by the file-based dataset plugins: listing images, matching class names,
fingerprints and building the table (root resolution and option validation are the core's:
:mod:`cxrbench.data.loading`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from cxrbench.data.dicom import DICOM_EXTENSIONS, is_dicom_path
from cxrbench.data.images import FileImages
from cxrbench.data.label_space import key as norm  # the one name-matching rule (classes, folders, labels)
from cxrbench.errors import DatasetError
from cxrbench.specs import SampleTable

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}) | DICOM_EXTENSIONS


def is_debris(name: str) -> bool:
    """macOS/Windows archive debris (``__MACOSX``, ``.DS_Store``, ``._x.jpeg``, ``Thumbs.db``)."""
    return name.startswith(".") or name == "__MACOSX" or name.lower() in ("thumbs.db", "desktop.ini")



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


def _relative(root: Path | str, files: Iterable[Path | str]) -> list[str]:
    """Each path relative to ``root`` (native separators): a string slice when it lies under ``root``
    as given (112k paths in milliseconds), else ``os.path.relpath``."""
    base = os.fspath(root).rstrip(os.sep) + os.sep
    out = []
    for f in files:
        f = os.fspath(f)
        if f.startswith(base):
            out.append(os.path.normpath(f[len(base):]))
        else:
            try:
                out.append(os.path.relpath(f, root))
            except ValueError:  # another drive (Windows)
                out.append(f)
    return out


def fingerprint(dataset: str, root: Path, files: Iterable[Path | str], extra: Any = None) -> str:
    """Hash of every file's (relative path, size, mtime_ns) in row order: any change changes it."""
    h = hashlib.sha256(json.dumps([dataset, str(root), extra], sort_keys=True, default=str).encode())
    files = [os.fspath(f) for f in files]
    for f, rel in zip(files, _relative(root, files)):
        st = os.stat(f)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return f"{dataset}-{h.hexdigest()[:24]}"


def relative_ids(root: Path, files: Sequence[Path | str]) -> list[str]:
    """Sample ids: paths relative to ``root`` with forward slashes (stable across machines)."""
    rel = _relative(root, files)
    return rel if os.sep == "/" else [r.replace(os.sep, "/") for r in rel]


def file_table(dataset: str, root: Path, files: Sequence[Path | str], labels: Any, class_names: Sequence[str], *,
               patient_ids: Sequence[str] | None = None, official_split: Sequence[str] | None = None,
               extra_files: Sequence[Path] = (), extras: dict[str, Any] | None = None,
               label_file: Path | None = None, skipped: Sequence[tuple[str, str]] = (),
               missing: Sequence[Path] = ()) -> SampleTable:
    """A SampleTable over image files: relative-path ids, a stat-based fingerprint, :class:`FileImages`.

    ``extra_files`` (split lists) and ``label_file`` (the label CSV) are part of the fingerprint too;
    ``extras`` are per-row metadata; ``missing`` are the folders of the layout that are absent.
    """
    files = [os.fspath(f) for f in files]
    return SampleTable(
        ids=relative_ids(root, files),
        labels=np.asarray(labels, dtype=np.int64),
        class_names=list(class_names),
        load_image=FileImages(files),
        patient_ids=list(patient_ids) if patient_ids is not None else None,
        official_split=list(official_split) if official_split is not None else None,
        synthetic=False,
        fingerprint=fingerprint(dataset, root, [*files, *([label_file] if label_file else []), *extra_files]),
        extras=dict(extras or {}),
        root=str(root),
        label_file=str(label_file) if label_file else None,
        skipped=list(skipped),
        missing=[f"{m}/" for m in missing],
    )
