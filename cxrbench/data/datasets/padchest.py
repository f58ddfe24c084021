"""``padchest``: PadChest (Bustos et al., Med Image Anal 2020), 160,868 16-bit PNGs of 67,625 patients.

Labels come from the ``Labels`` column, a Python list literal of report terms ("['pneumonia',
'infiltrates']"), parsed with :func:`ast.literal_eval`. Terms map to the shared vocabulary by
TorchXRayVision's ``PC_Dataset`` rules (a term counts for a label when it contains the label's
lower-case name or one of its synonyms), so e.g. 'pleural effusion' is Effusion and 'interstitial
pattern' is Infiltration; like xrv, this also counts 'subcutaneous emphysema' as Emphysema and
'pericardial effusion' as Effusion. Any PadChest term (e.g. 'tuberculosis') can be a label too.
"""

from __future__ import annotations

import ast
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from cxrbench.data.datasets.archive import multilabel, read_csv, unusable, where
from cxrbench.data.datasets.common import file_table, is_debris
from cxrbench.data.label_space import key
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

NAME = "padchest"
COLUMNS = ("ImageID", "ImageDir", "PatientID", "Projection", "Labels")
DEFAULT_VIEWS = ("PA", "AP", "AP_horizontal")
# TorchXRayVision's PC_Dataset: vocabulary label -> extra terms (besides its own lower-case name).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "Infiltration": ("infiltrates", "interstitial pattern", "ground glass pattern", "reticular interstitial pattern",
                     "reticulonodular interstitial pattern", "alveolar pattern", "consolidation", "air bronchogram"),
    "Pleural_Thickening": ("pleural thickening",),
    "Consolidation": ("air bronchogram",),
}
LABELS = ("Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
          "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia", "Fracture")
"""The vocabulary labels PadChest annotates (xrv's PC_Dataset list within the vocabulary)."""


class PadChestOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csv: str | None = None
    """The label file (default: the PADCHEST*.csv in the root)."""
    views: list[str] | None = list(DEFAULT_VIEWS)
    """Projections kept (``Projection`` column); null or [] keeps every projection (lateral L too)."""
    allow_missing: bool = False
    """Skip (and list) rows whose PNG is missing instead of failing (the public archive lacks a few)."""


@lru_cache(maxsize=4096)
def vocabulary_labels(term: str) -> tuple[str, ...]:
    """The vocabulary labels a PadChest term counts for (xrv's substring rules)."""
    t = term.lower()
    return tuple(lab for lab in LABELS if lab.lower() in t or any(s in t for s in SYNONYMS.get(lab, ())))


def parse_labels(cell: str, at: str) -> list[str] | None:
    """The terms of a ``Labels`` cell; None for an empty/NaN cell; a DatasetError for anything else."""
    text = str(cell).strip()
    if text.lower() in ("", "nan", "none"):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise DatasetError(f"dataset {NAME!r}: {at}: Labels {text[:80]!r} is not a list of terms "
                           "(expected e.g. \"['pneumonia', 'infiltrates']\")")
    return [v.strip() for v in value if v.strip()]


def find_csv(root: Path, name: str | None) -> Path | None:
    if name is not None:
        path = Path(os.path.expanduser(name))
        path = path if path.is_absolute() else root / path
        return path if path.is_file() else None
    found = sorted(p for p in root.glob("PADCHEST*.csv") if not is_debris(p.name))
    return found[0] if found else None


def load(request: DataRequest) -> SampleTable:
    """Rows of PadChest (see the module docstring and ``SPEC.layout``)."""
    opts: PadChestOptions = request.options  # type: ignore[assignment]
    root = request.root
    assert root is not None  # SPEC.default_folder is set
    base = root.parent if root.is_file() else root
    csv = find_csv(base, opts.csv or (str(root) if root.is_file() else None))
    if csv is None:
        raise missing_data_error(SPEC, f"no PADCHEST*.csv in {base}", [base], request.options)
    df = read_csv(NAME, csv, COLUMNS)
    views = {v.strip().lower() for v in opts.views or []}

    @lru_cache(maxsize=None)
    def listing(sub: str) -> frozenset[str]:  # one directory listing per ImageDir, not one stat per row
        try:
            return frozenset(os.listdir(base / sub))
        except OSError:
            return frozenset()

    files, terms, rows, skipped, no_labels, other_view = [], [], [], [], 0, 0
    for i, (image, folder, projection, cell) in enumerate(zip(df["ImageID"], df["ImageDir"], df["Projection"],
                                                               df["Labels"])):
        at = where(csv, i, image)
        if views and projection.strip().lower() not in views:
            other_view += 1
            continue
        found = parse_labels(cell, at)
        if found is None:
            no_labels += 1
            skipped.append((image, f"{at}: no Labels"))
            continue
        sub = folder.strip()
        sub = str(int(float(sub))) if sub.replace(".", "", 1).isdigit() else sub  # "7.0" -> "7"
        found_in = next((d for d in ([sub, ""] if sub else [""]) if image in listing(d)), None)
        if found_in is None:
            skipped.append((image, f"{at}: image file not found at {base / sub / image}"))
            continue
        files.append(base / found_in / image if found_in else base / image)
        terms.append(found)
        rows.append(i)
    missing = [s for s in skipped if "not found" in s[1]]
    if missing and not opts.allow_missing:
        raise unusable(NAME, csv, missing, "option allow_missing: true skips and lists them")
    if not files:
        raise DatasetError(f"dataset {NAME!r}: no usable row in {csv} (projections kept: {sorted(views) or 'all'})")

    n = len(files)
    columns: dict[str, np.ndarray] = {}
    for r, found in enumerate(terms):  # every term seen is a label of its own (uint8: ~190 terms x 160k rows)
        for t in found:
            columns.setdefault(t, np.zeros(n, dtype=np.uint8))[r] = 1
            for lab in vocabulary_labels(t):
                columns.setdefault(lab, np.zeros(n, dtype=np.uint8))[r] = 1
    for lab in LABELS:
        columns.setdefault(lab, np.zeros(n, dtype=np.uint8))
    vocab = {key(lab) for lab in LABELS}
    columns = {c: v for c, v in columns.items() if c in LABELS or key(c) not in vocab}
    classes, labels, mask, notes = multilabel(NAME, columns, request.classes, LABELS)
    def pick(col: str) -> list[str] | None:
        if col not in df.columns:
            return None
        values = df[col].tolist()
        return [values[i].strip() for i in rows]

    extras = {"source": [NAME] * n, "view": pick("Projection"), "study": pick("StudyID")}
    for col, name in (("PatientSex_DICOM", "sex"), ("MethodProjection", "method_projection"),
                      ("Manufacturer_DICOM", "manufacturer")):
        if col in df.columns:
            extras[name] = pick(col)
    table = file_table(NAME, base, files, labels, classes, patient_ids=pick("PatientID"),
                       extras={k: v for k, v in extras.items() if v is not None}, label_file=csv, skipped=skipped)
    table.label_mask = mask
    if no_labels:
        notes.append(f"{no_labels} row(s) of {csv.name} without Labels skipped")
    if other_view:
        notes.append(f"{other_view} row(s) of other projections left out (option views: {sorted(views)})")
    table.notes = notes
    return table


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("multilabel",),
    description=("PadChest: 160,868 chest X-rays (16-bit PNG) of 67,625 patients, Hospital San Juan, Alicante; "
                 "report-derived labels mapped to the shared vocabulary (15 of its 18 labels; Lung Lesion, "
                 "Lung Opacity, Enlarged Cardiomediastinum masked) or any PadChest term. Patient ids from "
                 "PatientID, view from Projection; no official split. Options: views (default PA, AP, "
                 "AP_horizontal), csv, allow_missing."),
    source=("https://bimcv.cipf.es/bimcv-projects/padchest/ (Bustos et al., Med Image Anal 2020; registration "
            "and the BIMCV PadChest licence, research use)"),
    layout=("<root>/PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv   (ImageID, ImageDir, PatientID, "
            "Projection, Labels, ...)\n"
            "<root>/<ImageDir>/<ImageID>   (ImageDir 0..54, as unpacked from the zip parts), or <root>/<ImageID>"),
    options_schema=PadChestOptions,
    default_folder="padchest",
)
