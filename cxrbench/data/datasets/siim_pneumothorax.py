"""``siim_pneumothorax``: SIIM-ACR Pneumothorax Segmentation (Kaggle 2019), 10,675 training DICOMs (12,047 in stage 2).

``train-rle.csv`` has columns ``ImageId`` and `` EncodedPixels`` (the leading space is in the real
header), one row per pneumothorax mask in run-length encoding, or one row ``-1`` for an image
without one. Images lie at ``dicom-images-train/<StudyUID>/<SeriesUID>/<ImageId>.dcm`` and are
found by file name anywhere under the root. Patient ids and view positions come from the DICOM
headers (header-only reads, option ``read_headers``), else each image is its own patient.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from cxrbench.data.datasets.archive import (dicom_headers, index_files, multilabel, read_csv, single_label,
                                            unusable, where)
from cxrbench.data.datasets.common import file_table
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

NAME = "siim_pneumothorax"
CSV_NAMES = ("train-rle.csv", "stage_2_train.csv")
COLUMNS = ("ImageId", "EncodedPixels")
BINARY = ("normal", "pneumothorax")
ALIASES = {"negative": "normal", "no pneumothorax": "normal", "no_pneumothorax": "normal", "positive": "pneumothorax"}


class SiimOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csv: str | None = None
    """The label file (default: train-rle.csv, else stage_2_train.csv, in the root)."""
    read_headers: bool = True
    """Read PatientID and ViewPosition from each DICOM header (a broken file fails here, naming its row)."""
    allow_missing: bool = False
    """Skip (and list) images without a DICOM file instead of failing."""


def parse_rle(cell: str, at: str) -> bool:
    """True for a mask (an even number of positive integers), False for ``-1``; else a DatasetError."""
    text = cell.strip()
    if text == "-1":
        return False
    parts = text.split()
    if not parts or len(parts) % 2 or not all(p.isdigit() for p in parts):
        raise DatasetError(f"dataset {NAME!r}: {at}: EncodedPixels {text[:40]!r} is neither -1 nor a run-length "
                           "mask (pairs of start and length)")
    return True


def load(request: DataRequest) -> SampleTable:
    """Rows of the SIIM-ACR training set (see the module docstring and ``SPEC.layout``)."""
    opts: SiimOptions = request.options  # type: ignore[assignment]
    root = request.root
    assert root is not None  # SPEC.default_folder is set
    base = root.parent if root.is_file() else root
    name = opts.csv or (str(root) if root.is_file() else None)
    if name is not None:
        csv: Path | None = Path(name).expanduser()
        csv = csv if csv.is_absolute() else base / csv
        csv = csv if csv.is_file() else None
    else:
        csv = next((base / c for c in CSV_NAMES if (base / c).is_file()), None)
    if csv is None:
        raise missing_data_error(SPEC, f"no {' or '.join(CSV_NAMES)} in {base}", [base], request.options)
    df = read_csv(NAME, csv, COLUMNS)
    order, positive, first = [], {}, {}
    for i, (image, cell) in enumerate(zip(df["ImageId"], df["EncodedPixels"])):
        image = image.strip()
        at = where(csv, i, image)
        if not image:
            raise DatasetError(f"dataset {NAME!r}: {at}: empty ImageId")
        mask = parse_rle(cell, at)
        if image in positive and positive[image] != mask:
            raise DatasetError(f"dataset {NAME!r}: {at}: -1 and a mask for the same image (row "
                               f"{first[image] + 2} too)")
        if image not in positive:
            order.append(image)
            first[image] = i
        positive[image] = mask

    images = index_files(base, (".dcm",))
    if not images:
        raise missing_data_error(SPEC, f"no .dcm files under {base}", [base], request.options)
    keep = [p for p in order if p in images]
    skipped = [(p, f"{where(csv, first[p], p)}: no {p}.dcm under {base}") for p in order if p not in images]
    if skipped and not opts.allow_missing:
        raise unusable(NAME, csv, skipped, "option allow_missing: true skips and lists them")
    if not keep:
        raise DatasetError(f"dataset {NAME!r}: no row of {csv} has a DICOM file under {base}")
    files = [images[p] for p in keep]
    t = np.array([positive[p] for p in keep], dtype=np.int64)
    mask = None
    notes: list[str] = []
    if request.task == "multilabel":
        classes, labels, mask, notes = multilabel(NAME, {"Pneumothorax": t}, request.classes, ("Pneumothorax",))
    else:
        classes, index = single_label(NAME, request.classes, BINARY, ALIASES)
        labels = np.where(t == 1, index["pneumothorax"], index["normal"])
        notes.append("'normal' = no pneumothorax mask (other findings may be present)")
    extras: dict[str, list[str]] = {"source": [NAME] * len(keep)}
    patients = list(keep)
    if opts.read_headers:
        heads = dicom_headers(NAME, files, [where(csv, first[p], p) for p in keep])
        extras["view"] = [h.view_position or "" for h in heads]
        patients = [h.patient_id or p for h, p in zip(heads, keep)]
    else:
        notes.append("read_headers: false: each image is its own patient")
    table = file_table(NAME, base, files, labels, classes, patient_ids=patients, extras=extras, label_file=csv,
                       skipped=skipped)
    table.label_mask = mask
    table.notes = notes
    return table


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("binary", "multilabel"),
    description=("SIIM-ACR Pneumothorax Segmentation: 10,675 frontal DICOMs (stage 1; 12,047 in stage 2; images "
                 "from ChestX-ray14), positive when train-rle.csv holds a mask (not -1) for the image. binary "
                 "[normal, pneumothorax] or multilabel Pneumothorax (other vocabulary labels masked). Patient "
                 "and view from the DICOM headers; no official split. Options: csv, read_headers, allow_missing."),
    source=("https://www.kaggle.com/c/siim-acr-pneumothorax-segmentation (Kaggle account; competition rules: "
            "non-commercial research use)"),
    layout=("<root>/train-rle.csv   (ImageId, ' EncodedPixels': -1 or run-length mask; several rows per image)\n"
            "<root>/dicom-images-train/<StudyUID>/<SeriesUID>/<ImageId>.dcm   (found by name at any depth)"),
    options_schema=SiimOptions,
    default_folder="siim_pneumothorax",
)
