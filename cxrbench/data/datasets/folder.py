"""``image_folder``: any class-per-folder image collection (``root/<class>/*.png``), for your own data."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from cxrbench.data.datasets.common import file_table, list_images, match_classes, norm, subdirs
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

NAME = "image_folder"
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}

class FolderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_regex: str | None = None
    """Regular expression on the file name stem whose first group (or group ``patient``) is the patient id."""

    @field_validator("patient_regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                pattern = re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
            if pattern.groups < 1:
                raise ValueError("needs a capturing group for the patient id")
        return v


def _patient(pattern: re.Pattern[str], f: Path) -> str:
    m = pattern.search(f.stem)
    if not m:
        raise DatasetError(f"dataset {NAME!r}: option patient_regex {pattern.pattern!r} does not match {f}")
    return m.group("patient") if "patient" in pattern.groupindex else m.group(1)


def load(request: DataRequest) -> SampleTable:
    """Rows of a class-per-folder collection; classes are matched to folder names case-insensitively."""
    opts: FolderOptions = request.options  # type: ignore[assignment]
    root = request.root
    assert root is not None  # SPEC.default_folder is set: the core always resolves one
    if not root.is_dir():
        raise DatasetError(f"dataset {NAME!r}: {root} is not a folder")
    top = {norm(d.name): d for d in subdirs(root)}
    split_dirs = {SPLIT_ALIASES[k]: d for k, d in top.items() if k in SPLIT_ALIASES}
    # an official split: every top folder is a split (train and test; val optional; a missing one is
    # listed in `missing` and refused by a run), or train and test sit next to other folders
    official = bool(split_dirs) and (len(split_dirs) == len(top) or {"train", "test"} <= set(split_dirs))
    parts = [(s, split_dirs[s]) for s in SPLITS if s in split_dirs] if official else [(None, root)]
    missing = [root / s for s in ("train", "test") if s not in split_dirs] if official else []

    found_names = sorted({d.name for _, base in parts for d in subdirs(base)}, key=str.lower)
    if not found_names:
        raise DatasetError(f"dataset {NAME!r}: no class folders under {root} (expected {SPEC.layout.splitlines()[0]})")
    classes = list(request.classes) or found_names
    names = list({norm(n): n for n in found_names}.values())
    matched = match_classes(NAME, classes, names, what="classes (folders)")
    label_of = {norm(names[j]): label for label, j in enumerate(matched)}
    extra = [n for n in names if norm(n) not in label_of]
    if extra:
        raise DatasetError(f"dataset {NAME!r}: folder(s) {extra} under {root} are not among the suite's classes "
                           f"{classes}; add them to task.classes or move them away")
    pattern = re.compile(opts.patient_regex) if opts.patient_regex else None
    files, labels, split, patients = [], [], [], []
    for part, base in parts:
        for folder in subdirs(base):  # sorted folder order, so rows do not depend on the suite's class order
            found = list_images(folder)
            if not found:
                raise DatasetError(f"dataset {NAME!r}: class folder {folder} holds no images")
            files += found
            labels += [label_of[norm(folder.name)]] * len(found)
            split += [part] * len(found)
            if pattern is not None:
                patients += [_patient(pattern, f) for f in found]
    counts = {c: labels.count(i) for i, c in enumerate(classes)}
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DatasetError(f"dataset {NAME!r}: no images for class(es) {empty} under {root}")
    return file_table(NAME, root, files, labels, classes, patient_ids=patients if pattern else None,
                      official_split=split if official else None, missing=missing)


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("binary", "multiclass"),
    description=("Your own images, one folder per class (names matched to task.classes case-insensitively; "
                 "an official split is used when root has train/ and test/ folders, val optional). "
                 "Option patient_regex: a regex on the file name whose first group is the patient id "
                 "(enables patient-grouped splits). For multilabel data use dataset csv."),
    source="your own images (any folder of PNG/JPEG/BMP/TIFF files)",
    layout=("<root>/<class>/**/*.{png,jpg,jpeg,bmp,tif,tiff}   (one folder per class of task.classes)\n"
            "or <root>/{train,val,test}/<class>/...          (an official split; val optional)"),
    options_schema=FolderOptions,
    default_folder="image_folder",
)
