"""``mimic_cxr``: MIMIC-CXR-JPG 2.0 / 2.1 (Johnson et al., 2019) as PhysioNet ships it.

Four CSVs in the root (``.csv`` or ``.csv.gz``): ``mimic-cxr-2.0.0-chexpert.csv`` or ``-negbio.csv``
(one row per study: ``subject_id, study_id`` and the 14 CheXpert observations), ``-metadata.csv``
(one row per image: ``dicom_id, subject_id, study_id, ViewPosition, ...``) and ``-split.csv``
(``dicom_id, study_id, subject_id, split`` in train / validate / test). Images are
``files/p10/p10000032/s50414267/<dicom_id>.jpg``. A study's labels go to each of its images; the
uncertainty policy is the one of ``chexpert`` (:mod:`cxrbench.data.datasets.chexpert_labels`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from cxrbench.data.datasets.chexpert_labels import LabelerOptions, check_columns, labelled_table, read_labels
from cxrbench.data.datasets.common import file_table
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

if TYPE_CHECKING:  # pandas is imported on load only: listing datasets stays fast
    import pandas as pd

NAME = "mimic_cxr"
PREFIX = "mimic-cxr-2.0.0-"
SPLITS = {"train": "train", "validate": "val", "test": "test"}
KEYS = ("subject_id", "study_id")
META_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition")
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")


class MimicOptions(LabelerOptions):
    labeler: Literal["chexpert", "negbio"] = "chexpert"
    """Which label file: mimic-cxr-2.0.0-chexpert.csv or -negbio.csv."""
    views: list[str] | None = Field(default_factory=lambda: ["PA", "AP"])
    """ViewPosition values to keep (case-insensitive; "" = images without one); null keeps every image."""


def find_csv(root: Path, kind: str) -> Path | None:
    """``root/mimic-cxr-2.0.0-<kind>.csv`` or its ``.csv.gz``."""
    for suffix in (".csv", ".csv.gz"):
        path = root / f"{PREFIX}{kind}{suffix}"
        if path.is_file():
            return path
    return None


def _read(root: Path, kind: str, columns: tuple[str, ...]) -> tuple[pd.DataFrame, Path]:
    import pandas as pd
    path = find_csv(root, kind)
    if path is None:
        raise DatasetError(f"dataset {NAME!r}: {root} has no {PREFIX}{kind}.csv(.gz)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types
        raise DatasetError(f"dataset {NAME!r}: cannot read {path}: {exc}") from None
    df.columns = [c.strip() for c in df.columns]
    check_columns(NAME, df, path.name, columns)
    for c in columns:
        df[c] = df[c].str.strip()
    return df, path


def _unique(df: pd.DataFrame, keys: list[str], path: Path) -> None:
    dup = np.flatnonzero(df.duplicated(keys).to_numpy())
    if len(dup):
        i = int(dup[0])
        raise DatasetError(f"dataset {NAME!r}: {path.name} line {i + 2}: {dict(df.loc[i, keys])} appears twice")


def load(request: DataRequest) -> SampleTable:
    """Rows of MIMIC-CXR-JPG (see ``SPEC.layout``): one per image of the kept views."""
    opts: MimicOptions = request.options  # type: ignore[assignment]
    root = request.root
    assert root is not None  # SPEC.default_folder is set
    if find_csv(root, "metadata") is None:
        raise missing_data_error(SPEC, f"no {PREFIX}metadata.csv(.gz) in {root}", [root], request.options)
    meta, meta_path = _read(root, "metadata", META_COLUMNS)
    split, split_path = _read(root, "split", SPLIT_COLUMNS)
    labels_df, labels_path = _read(root, opts.labeler, KEYS)
    _unique(meta, ["dicom_id"], meta_path)
    _unique(split, ["dicom_id"], split_path)
    _unique(labels_df, list(KEYS), labels_path)
    bad = np.flatnonzero(~split["split"].isin(list(SPLITS)).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DatasetError(f"dataset {NAME!r}: {split_path.name} line {i + 2}: split {split['split'][i]!r} is not "
                           f"one of {list(SPLITS)}")
    matrix = read_labels(NAME, labels_df, labels_path.name, request.classes, opts)

    meta["line"] = np.arange(len(meta)) + 2
    n_meta = len(meta)
    if opts.views is not None:
        wanted = {v.strip().upper() for v in opts.views}
        meta = meta[meta["ViewPosition"].str.upper().isin(wanted)].reset_index(drop=True)
    n_other_views = n_meta - len(meta)
    rows = meta.merge(split[["dicom_id", "split"]], on="dicom_id", how="left")
    no_split = np.flatnonzero(rows["split"].isna().to_numpy())
    if len(no_split):
        i = int(no_split[0])
        raise DatasetError(f"dataset {NAME!r}: {meta_path.name} line {rows['line'][i]}: dicom_id "
                           f"{rows['dicom_id'][i]} is not in {split_path.name} ({len(no_split)} such image(s))")
    study_row = labels_df[list(KEYS)].assign(label_row=np.arange(len(labels_df)))
    rows = rows.merge(study_row, on=list(KEYS), how="left")
    unlabelled = rows["label_row"].isna().to_numpy()
    rel = ("files/p" + rows["subject_id"].str.slice(0, 2) + "/p" + rows["subject_id"] + "/s" + rows["study_id"]
           + "/" + rows["dicom_id"] + ".jpg")
    files = [os.path.join(root, r) for r in rel]
    exists = np.fromiter((not u and os.path.isfile(f) for u, f in zip(unlabelled, files)), dtype=bool,
                         count=len(files))
    where = [f"{meta_path.name} line {n}" for n in rows["line"]]
    missing = [(rel[i], f"{where[i]}: image file {files[i]} not found")
               for i in np.flatnonzero(~unlabelled & ~exists)]
    if missing and not opts.allow_missing:
        listed = "\n".join(f"  {r}" for _, r in missing[:5])
        raise DatasetError(f"dataset {NAME!r}: {len(missing)} image(s) cannot be used, e.g.:\n{listed}\n"
                           "(option allow_missing: true skips and lists them)")
    skipped = [(rel[i], f"{where[i]}: study s{rows['study_id'][i]} has no row in {labels_path.name}")
               for i in np.flatnonzero(unlabelled)] + missing
    keep = np.flatnonzero(exists)
    if len(keep) == 0:
        raise DatasetError(f"dataset {NAME!r}: no usable image in {root} (views {opts.views})")
    label_rows = rows["label_row"].to_numpy()[keep].astype(np.int64)
    table = file_table(NAME, root, [files[i] for i in keep], matrix.labels[label_rows], matrix.classes,
                       patient_ids=rows["subject_id"].to_numpy()[keep].tolist(),
                       official_split=rows["split"].map(SPLITS).to_numpy()[keep].tolist(),
                       label_file=labels_path, extra_files=[meta_path, split_path], skipped=skipped,
                       extras={"view": rows["ViewPosition"].to_numpy()[keep].tolist(), "source": [NAME] * len(keep),
                               "study_id": rows["study_id"].to_numpy()[keep].tolist()})
    labelled_table(table, NAME, opts, matrix, label_rows)
    table.notes += [f"labels per study from {labels_path.name}, given to each image of the study; official "
                    "split from " + split_path.name + " (validate -> val)"]
    if n_other_views:
        table.notes.append(f"{n_other_views} image(s) of other views left out (views: {opts.views})")
    if unlabelled.any():
        table.notes.append(f"{int(unlabelled.sum())} image(s) of studies without a label row left out")
    return table


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("multilabel",),
    description=("MIMIC-CXR-JPG 2.0/2.1: 377,110 JPEGs of 227,827 studies, 65,379 patients (Beth Israel "
                 "Deaconess), 14 CheXpert-labeler observations per study (1 / 0 / -1 uncertain / blank) mapped to "
                 "the shared vocabulary. Options: labeler (chexpert | negbio), uncertain (ones | zeros | ignore = "
                 "masked), blank (ignore = masked | zeros), views (default [PA, AP]), allow_missing. Patient = "
                 "subject_id; official split from -split.csv (train / validate -> val / test)."),
    source="https://physionet.org/content/mimic-cxr-jpg/ (Johnson et al. 2019; credentialed PhysioNet access, "
           "CITI training and the PhysioNet Credentialed Health Data Use Agreement)",
    layout=("<root>/mimic-cxr-2.0.0-chexpert.csv[.gz] (or -negbio)  (subject_id, study_id, Atelectasis, ...)\n"
            "<root>/mimic-cxr-2.0.0-metadata.csv[.gz]  (dicom_id, subject_id, study_id, ViewPosition, ...)\n"
            "<root>/mimic-cxr-2.0.0-split.csv[.gz]     (dicom_id, study_id, subject_id, split)\n"
            "<root>/files/p10/p10000032/s50414267/<dicom_id>.jpg"),
    options_schema=MimicOptions,
    default_folder="mimic_cxr",
)
