"""``rsna_pneumonia``: the RSNA Pneumonia Detection Challenge (Shih et al., Radiol AI 2019), 26,684 DICOMs.

``stage_2_train_labels.csv`` has one row per opacity box (``patientId, x, y, width, height,
Target``; a negative image has one row with empty box columns); an image is positive when any of
its rows has Target 1. ``patientId`` names one image (one image per patient). The optional
``stage_2_detailed_class_info.csv`` gives each image's class: Lung Opacity / No Lung Opacity / Not
Normal / Normal. Variants: ``binary`` [normal, pneumonia] (Target; the class names of ``kermany``,
so a ChestX-ray2017 model tests here as is: note "normal" then includes the abnormal-but-no-opacity
images), ``detailed`` [normal, not_normal, lung_opacity] (needs the class file; an external test
can drop not_normal), ``findings`` (multilabel: Pneumonia and Lung Opacity, both Target, as
TorchXRayVision labels it; other vocabulary labels masked).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from cxrbench.data.datasets.archive import (dicom_headers, index_files, multilabel, read_csv, single_label,
                                            unusable, where)
from cxrbench.data.datasets.common import file_table, norm
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DatasetVariant, DataRequest, SampleTable

NAME = "rsna_pneumonia"
LABELS_CSV = "stage_2_train_labels.csv"
CLASS_CSV = "stage_2_detailed_class_info.csv"
IMAGES = "stage_2_train_images"
COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
BINARY = ("normal", "pneumonia")
DETAILED = ("normal", "not_normal", "lung_opacity")
ARCHIVE_CLASSES = {"normal": "normal", "nolungopacitynotnormal": "not_normal", "lungopacity": "lung_opacity"}
ALIASES = {"No Lung Opacity / Not Normal": "not_normal", "abnormal": "not_normal", "opacity": "lung_opacity",
           "negative": "normal", "positive": "pneumonia"}
FINDINGS = ("Pneumonia", "Lung Opacity")


class RsnaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csv: str | None = None
    """The label file (default: stage_2_train_labels.csv, else stage_1_train_labels.csv, in the root)."""
    read_headers: bool = True
    """Read each DICOM's header (view position, patient id; a broken file fails here, naming its row)."""
    allow_missing: bool = False
    """Skip (and list) images without a DICOM file instead of failing."""


def _find(base: Path, name: str | None, defaults: tuple[str, ...]) -> Path | None:
    if name is not None:
        path = Path(name).expanduser()
        path = path if path.is_absolute() else base / path
        return path if path.is_file() else None
    return next((base / d for d in defaults if (base / d).is_file()), None)


def _targets(df, csv: Path) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """Image ids in first-seen order, id -> max Target, id -> first CSV row."""
    order, target, first = [], {}, {}
    for i, (pid, t) in enumerate(zip(df["patientId"], df["Target"])):
        pid = pid.strip()
        if not pid:
            raise DatasetError(f"dataset {NAME!r}: {where(csv, i)}: empty patientId")
        if t.strip() not in ("0", "1"):
            raise DatasetError(f"dataset {NAME!r}: {where(csv, i, pid)}: Target must be 0 or 1, got {t!r}")
        if pid not in target:
            order.append(pid)
            first[pid] = i
        target[pid] = max(target.get(pid, 0), int(t))
    return order, target, first


def _classes(path: Path, target: dict[str, int]) -> dict[str, str]:
    """id -> detailed class (normal / not_normal / lung_opacity), checked against Target."""
    df = read_csv(NAME, path, ("patientId", "class"))
    out: dict[str, str] = {}
    for i, (pid, cls) in enumerate(zip(df["patientId"], df["class"])):
        pid, at = pid.strip(), where(path, i, pid.strip())
        value = ARCHIVE_CLASSES.get(norm(cls))
        if value is None:
            raise DatasetError(f"dataset {NAME!r}: {at}: unknown class {cls!r}; expected 'Lung Opacity', "
                               "'No Lung Opacity / Not Normal' or 'Normal'")
        if pid in out and out[pid] != value:
            raise DatasetError(f"dataset {NAME!r}: {at}: class {cls!r} contradicts an earlier row of the same image")
        if pid in target and (value == "lung_opacity") != bool(target[pid]):
            raise DatasetError(f"dataset {NAME!r}: {at}: class {cls!r} but Target {target[pid]} in {LABELS_CSV}")
        out[pid] = value
    return out


def load(request: DataRequest) -> SampleTable:
    """Rows of the RSNA training set (see the module docstring and ``SPEC.layout``)."""
    opts: RsnaOptions = request.options  # type: ignore[assignment]
    variant = request.variant or "binary"
    root = request.root
    assert root is not None  # SPEC.default_folder is set
    base = root.parent if root.is_file() else root
    csv = _find(base, opts.csv or (str(root) if root.is_file() else None), (LABELS_CSV, "stage_1_train_labels.csv"))
    if csv is None:
        raise missing_data_error(SPEC, f"no {LABELS_CSV} in {base}", [base], request.options, request.variant)
    df = read_csv(NAME, csv, COLUMNS)
    order, target, first = _targets(df, csv)
    class_csv = _find(base, None, (CLASS_CSV, "stage_1_detailed_class_info.csv"))
    detailed = _classes(class_csv, target) if class_csv is not None else None
    if variant == "detailed" and detailed is None:
        raise missing_data_error(SPEC, f"variant 'detailed' needs {CLASS_CSV} next to {csv.name}", [base],
                                 request.options, request.variant)

    images = index_files(base, (".dcm",))
    if not images:
        raise missing_data_error(SPEC, f"no .dcm files under {base} (expected {IMAGES}/<patientId>.dcm)", [base],
                                 request.options, request.variant)
    keep, files, skipped = [], [], []
    for pid in order:
        if pid not in images:
            skipped.append((pid, f"{where(csv, first[pid], pid)}: no {IMAGES}/{pid}.dcm under {base}"))
        elif detailed is not None and pid not in detailed:
            info = class_csv.name if class_csv is not None else CLASS_CSV
            skipped.append((pid, f"{where(csv, first[pid], pid)}: no row in {info}"))
        else:
            keep.append(pid)
            files.append(images[pid])
    if skipped and not opts.allow_missing:
        raise unusable(NAME, csv, skipped, "option allow_missing: true skips and lists them")
    if not files:
        raise DatasetError(f"dataset {NAME!r}: no row of {csv} has a DICOM file under {base}")

    t = np.array([target[p] for p in keep], dtype=np.int64)
    notes: list[str] = []
    mask = None
    if variant == "binary":
        classes, index = single_label(NAME, request.classes, BINARY, ALIASES)
        labels = np.where(t == 1, index["pneumonia"], index["normal"])
        if detailed is not None:
            n_abn = sum(detailed[p] == "not_normal" for p in keep)
            notes.append(f"{n_abn} 'No Lung Opacity / Not Normal' image(s) count as normal (variant detailed "
                         "tells them apart)")
    elif variant == "detailed":
        classes, index = single_label(NAME, request.classes, DETAILED, ALIASES)
        labels = np.array([index[detailed[p]] for p in keep], dtype=np.int64)  # type: ignore[index]
    else:
        classes, labels, mask, notes = multilabel(NAME, {c: t for c in FINDINGS}, request.classes, FINDINGS)
    extras: dict[str, list[str]] = {"source": [NAME] * len(keep)}
    if detailed is not None:
        extras["detailed_class"] = [detailed[p] for p in keep]
    if opts.read_headers:
        heads = dicom_headers(NAME, files, [where(csv, first[p], p) for p in keep])
        extras["view"] = [h.view_position or "" for h in heads]
    table = file_table(NAME, base, files, labels, classes, patient_ids=keep, extras=extras, label_file=csv,
                       extra_files=[class_csv] if class_csv is not None else [], skipped=skipped)
    table.label_mask = mask
    table.notes = notes + ["patientId names one image: one image per patient"]
    return table


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("binary", "multiclass", "multilabel"),
    description=("RSNA Pneumonia Detection Challenge: 26,684 adult frontal DICOMs (from ChestX-ray14), an image "
                 "positive when any box row has Target 1. Variants: binary [normal, pneumonia] (kermany's names), "
                 "detailed [normal, not_normal, lung_opacity] (from stage_2_detailed_class_info.csv), findings "
                 "(multilabel Pneumonia, Lung Opacity). patientId = image = patient; view from the DICOM header; "
                 "no official split (the stage 2 test labels are not public). Options: csv, read_headers, "
                 "allow_missing."),
    source=("https://www.kaggle.com/c/rsna-pneumonia-detection-challenge (Kaggle account; competition rules: "
            "non-commercial research use)"),
    layout=(f"<root>/{LABELS_CSV}   (patientId, x, y, width, height, Target; one row per box)\n"
            f"<root>/{CLASS_CSV}   (optional: patientId, class)\n"
            f"<root>/{IMAGES}/<patientId>.dcm"),
    variants=(DatasetVariant("binary", ("binary",), "normal vs pneumonia (Target)"),
              DatasetVariant("detailed", ("multiclass",), "normal / not normal without opacity / lung opacity"),
              DatasetVariant("findings", ("multilabel",), "Pneumonia and Lung Opacity in the shared vocabulary")),
    options_schema=RsnaOptions,
    default_folder="rsna_pneumonia",
)
