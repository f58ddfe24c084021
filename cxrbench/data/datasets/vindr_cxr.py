"""``vindr_cxr``: VinDr-CXR (Nguyen et al., Sci Data 2022), 18,000 DICOMs from two Hanoi hospitals.

Reads either release. PhysioNet 1.0.0: ``annotations/image_labels_train.csv`` (``image_id,
rad_ID`` then one 0/1 column per label, local findings and global diagnoses, one row per
radiologist: three per training image) and ``image_labels_test.csv`` (the consensus of five, one
row per image), images ``train/<image_id>.dicom`` and ``test/<image_id>.dicom``. Without those, the
box files: ``annotations/annotations_{train,test}.csv`` or Kaggle's ``train.csv`` (``image_id,
class_name, rad_id, x_min .. y_max``, one row per box per radiologist, "No finding" for a reader
who saw nothing). A training label is positive by ``label: majority`` (more than half of the
image's readers) or ``label: any`` (at least one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from cxrbench.data.datasets.archive import (binary_column, index_files, multilabel, read_csv, to_vocabulary,
                                            unusable, where)
from cxrbench.data.datasets.common import file_table, norm
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

NAME = "vindr_cxr"
LOCAL = ("Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Clavicle fracture", "Consolidation",
         "Edema", "Emphysema", "Enlarged PA", "ILD", "Infiltration", "Lung cavity", "Lung cyst", "Lung Opacity",
         "Mediastinal shift", "Nodule/Mass", "Other lesion", "Pleural effusion", "Pleural thickening",
         "Pneumothorax", "Pulmonary fibrosis", "Rib fracture")
KAGGLE = ("Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
          "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion", "Pleural thickening",
          "Pneumothorax", "Pulmonary fibrosis")
"""The 14 findings of the Kaggle VinBigData ``train.csv``."""
NO_FINDING = "No finding"
TO_VOCABULARY = {"Pulmonary fibrosis": "Fibrosis", "Rib fracture": "Fracture", "Clavicle fracture": "Fracture"}
"""VinDr names the shared vocabulary spells differently (Pleural effusion/thickening are synonyms there).
Nodule/Mass stays its own label: a positive is not known to be a nodule rather than a mass."""
IMAGE_EXT = (".dicom", ".dcm")


class VindrOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Literal["majority", "any"] = "majority"
    """How the three training radiologists' labels combine (the test labels are already a consensus)."""
    allow_missing: bool = False
    """Skip (and list) rows whose DICOM file is missing instead of failing."""


def _files(base: Path) -> dict[str, Path]:
    """The label files present: image_labels_{train,test} or boxes_{train,test}."""
    ann = base / "annotations"
    out = {}
    for part in ("train", "test"):
        for kind, cands in (("image_labels", [ann / f"image_labels_{part}.csv", base / f"image_labels_{part}.csv"]),
                            ("boxes", [ann / f"annotations_{part}.csv", base / f"annotations_{part}.csv",
                                       *([base / "train.csv"] if part == "train" else [])])):
            found = next((c for c in cands if c.is_file()), None)
            if found is not None:
                out.setdefault(part, (kind, found))
    return out


def _reader_column(df) -> str | None:
    return next((c for c in df.columns if norm(c) == "radid"), None)


def _votes_image_labels(path: Path) -> tuple[list[str], dict[str, list[int]], list[str], dict[str, np.ndarray]]:
    """(image order, image -> CSV rows, label names, label -> 0/1 per CSV row) of an image_labels file."""
    df = read_csv(NAME, path, ("image_id",))
    rad = _reader_column(df)
    names = [c for c in df.columns if c not in ("image_id", rad) and norm(c) != norm(NO_FINDING)]
    if not names:
        raise DatasetError(f"dataset {NAME!r}: {path} has no label columns")
    values = {c: binary_column(NAME, df[c].tolist(), f"column {c!r}", path) for c in names}
    order, rows = [], {}
    for i, image in enumerate(df["image_id"]):
        image = image.strip()
        if image not in rows:
            order.append(image)
            rows[image] = []
        rows[image].append(i)
    return order, rows, names, values


def _votes_boxes(path: Path) -> tuple[list[str], dict[str, list[int]], list[str], dict[str, np.ndarray]]:
    """The same from a box file: one pseudo-row per (image, reader) holding that reader's labels.

    Kaggle's ``train.csv`` (it has ``class_id``) annotates the 14 findings of :data:`KAGGLE`, the
    PhysioNet box files the 22 of :data:`LOCAL`: the others are unknown there, not negative.
    """
    df = read_csv(NAME, path, ("image_id", "class_name"))
    rad = _reader_column(df)
    names = list(KAGGLE if "class_id" in df.columns else LOCAL)
    known = {norm(n): n for n in names}
    sets: dict[tuple[str, str], set[str]] = {}
    for i, (image, cls) in enumerate(zip(df["image_id"], df["class_name"])):
        image, k = image.strip(), norm(cls)
        if k != norm(NO_FINDING) and k not in known:
            raise DatasetError(f"dataset {NAME!r}: {where(path, i, image)}: unknown class_name {cls!r}; expected "
                               f"one of {[*names, NO_FINDING]}")
        labels = sets.setdefault((image, df[rad].iat[i].strip() if rad else ""), set())
        if k != norm(NO_FINDING):
            labels.add(known[k])
    pairs = list(sets)
    values = {n: np.array([n in sets[p] for p in pairs], dtype=np.int64) for n in names}
    order, rows = [], {}
    for j, (image, _) in enumerate(pairs):
        if image not in rows:
            order.append(image)
            rows[image] = []
        rows[image].append(j)
    return order, rows, names, values


def load(request: DataRequest) -> SampleTable:
    """Rows of VinDr-CXR (see the module docstring and ``SPEC.layout``)."""
    opts: VindrOptions = request.options  # type: ignore[assignment]
    base = request.root
    assert base is not None  # SPEC.default_folder is set
    found = _files(base)
    if "train" not in found:
        raise missing_data_error(SPEC, f"no annotations/image_labels_train.csv, annotations/annotations_train.csv "
                                 f"or train.csv in {base}", [base], request.options)
    files, split, skipped, readers = [], [], [], []
    per_row: list[dict[str, int]] = []  # the labels that row's file annotates -> 0/1
    names_seen: dict[str, None] = {}
    for part, (kind, path) in found.items():
        order, rows, names, values = (_votes_image_labels if kind == "image_labels" else _votes_boxes)(path)
        names_seen |= dict.fromkeys(names)
        images = index_files(base / part, IMAGE_EXT) if (base / part).is_dir() else {}
        for image in order:
            r = rows[image]
            if image not in images:
                skipped.append((image, f"{where(path, r[0], image)}: no {part}/{image}.dicom under {base}"))
                continue
            need = 1 if opts.label == "any" or part == "test" else len(r) // 2 + 1  # more than half
            per_row.append({n: int(values[n][r].sum() >= need) for n in names})
            files.append(images[image])
            split.append(part)
            readers.append(len(r))
    if skipped and not opts.allow_missing:
        raise unusable(NAME, found["train"][1], skipped, "option allow_missing: true skips and lists them")
    if not files:
        raise DatasetError(f"dataset {NAME!r}: no labelled image has a DICOM file under {base}/train or test")
    raw = {n: np.array([row.get(n, 0) for row in per_row], dtype=np.int64) for n in names_seen}
    annotated = {n: np.array([n in row for row in per_row], dtype=np.int64) for n in names_seen}
    columns = to_vocabulary(raw, TO_VOCABULARY)
    known = {k: v.astype(bool) for k, v in to_vocabulary(annotated, TO_VOCABULARY).items()}
    classes, labels, mask, notes = multilabel(NAME, columns, request.classes, list(columns), known)
    n = len(files)
    table = file_table(NAME, base, files, labels, classes, official_split=split if "test" in split else None,
                       extras={"source": [NAME] * n, "readers": readers}, label_file=found["train"][1],
                       extra_files=[p for part, (_, p) in found.items() if part != "train"], skipped=skipped)
    table.label_mask = mask
    table.notes = notes + [f"training labels: {opts.label} of each image's radiologists; no patient ids "
                           "(de-identified)"]
    return table


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("multilabel",),
    description=("VinDr-CXR: 18,000 adult frontal DICOMs (15,000 train, three radiologists each; 3,000 test, "
                 "consensus of five), 22 local findings and 6 global labels, mapped to the shared vocabulary "
                 "where one exists (Pleural effusion -> Effusion, Pulmonary fibrosis -> Fibrosis, rib/clavicle "
                 "fracture -> Fracture; Nodule/Mass, ILD, Aortic enlargement, ... keep their names). Official "
                 "train/test split; no patient ids. Options: label (majority | any), allow_missing."),
    source=("https://physionet.org/content/vindr-cxr/1.0.0/ (credentialed PhysioNet account + the PhysioNet "
            "Credentialed Health Data Use Agreement); also the Kaggle VinBigData competition"),
    layout=("<root>/annotations/image_labels_train.csv   (image_id, rad_ID, one 0/1 column per label)\n"
            "<root>/annotations/image_labels_test.csv    (optional: consensus, one row per image)\n"
            "<root>/train/<image_id>.dicom, <root>/test/<image_id>.dicom\n"
            "or the box files annotations/annotations_train.csv / Kaggle train.csv (image_id, class_name, "
            "rad_id, ...)"),
    options_schema=VindrOptions,
    default_folder="vindr_cxr",
)
