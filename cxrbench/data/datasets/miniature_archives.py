"""Miniature copies of PadChest, RSNA Pneumonia, VinDr-CXR, SIIM-ACR and the NLM TB sets.

Real file names, folder layouts, CSV columns and quirks (PadChest's list-literal ``Labels`` and
empty rows, RSNA's one row per box, SIIM's ``" EncodedPixels"`` header and nested UID folders,
VinDr's three readers per image), with tiny images: 16-bit PNGs for PadChest, DICOM files written
with :func:`cxrbench.data.dicom_writer.write_dicom` for the others. The row tables are module
constants so tests can count by hand.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from cxrbench.data.datasets.miniature import write_image
from cxrbench.data.dicom_writer import write_dicom


def pixels(seed: int, size: int = 24, dtype: type = np.uint16, high: int = 4095) -> np.ndarray:
    """A small gradient-plus-noise radiograph of stored values in 0..``high``."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0.2, 0.8, size)[None, :] * high + rng.normal(0, high * 0.05, (size, size))
    return np.clip(base, 0, high).astype(dtype)


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# (ImageDir, ImageID stem, PatientID, Projection, Labels cell); "" Labels = the NaN rows of the real CSV.
PADCHEST_ROWS = [
    (0, "216840111366964012283393834152009033102258826_00-059-087", "P1", "PA", "['normal']"),
    (0, "216840111366964012283393834152009033102258826_00-059-088", "P1", "L", "['normal']"),
    (1, "216840111366964012339356563862009072111404053_00-043-192", "P2", "PA", "['pneumonia', 'infiltrates']"),
    (1, "216840111366964012373310883942009117084022290_00-064-025", "P3", "AP",
     "['pleural effusion', 'cardiomegaly']"),
    (2, "216840111366964012373310883942009170084120009_00-097-074", "P3", "AP_horizontal",
     "['interstitial pattern', 'air bronchogram']"),
    (2, "216840111366964012558082906712009327122220177_00-102-064", "P4", "PA", ""),
    (3, "216840111366964012819207061112010306085429121_04-020-102", "P5", "PA",
     "['apical pleural thickening', 'laminar atelectasis']"),
    (3, "216840111366964012819207061112010307142602253_04-014-084", "P6", "PA",
     "['pseudonodule', 'multiple nodules', 'tuberculosis']"),
    (4, "216840111366964012819207061112010315104455352_04-024-184", "P7", "PA",
     "['callus rib fracture', 'hiatal hernia', 'pulmonary mass']"),
    (4, "216840111366964012959786098432011033083840143_00-176-115", "P7", "COSTAL", "['normal']"),
    (0, "216840111366964012989926673512011074122523403_00-163-058", "P8", "PA",
     "['unchanged', 'COPD signs', 'emphysema']"),
    (5, "216840111366964013076187734852011291090445391_00-196-188", "P9", "PA",
     "['pneumothorax', 'pulmonary fibrosis', 'pulmonary edema']"),
]
PADCHEST_FLAT = 6
"""Row index whose PNG lies directly in the root (its ImageDir folder is not there)."""
PADCHEST_CSV = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"


def make_padchest(root: Path, rows: list[tuple] | None = None) -> Path:
    """``root/PADCHEST_..._01.02.19.csv`` and ``root/<ImageDir>/<ImageID>`` 16-bit PNGs; returns root."""
    rows = PADCHEST_ROWS if rows is None else rows
    header = ["", "ImageID", "ImageDir", "StudyDate_DICOM", "StudyID", "PatientID", "PatientBirth",
              "PatientSex_DICOM", "ViewPosition_DICOM", "Projection", "MethodProjection", "Manufacturer_DICOM",
              "Labels", "Localizations", "LabelsLocalizationsBySentence", "labelCUIS", "LocalizationsCUIS"]
    out = []
    for k, (folder, stem, patient, projection, labels) in enumerate(rows):
        name = f"{stem}.png"
        where = root / name if k == PADCHEST_FLAT else root / str(folder) / name
        where.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels(k, 20 + k % 3 * 4, np.uint16, 65535)).save(where)
        out.append([k, name, folder, "20090312", f"S{k}", patient, 1950 + k, "M" if k % 2 else "F",
                    "POSTEROANTERIOR" if projection == "PA" else projection, projection,
                    "Manual review of DICOM fields", "PhilipsMedicalSystems" if k % 2 else "Imaging Dynamics",
                    labels, "['loc left']" if labels else "", "[]", "[]", "[]"])
    _write_csv(root / PADCHEST_CSV, header, out)
    return root


# patientId -> (boxes with Target 1 (0 = one negative row), detailed class, ViewPosition)
RSNA_IMAGES = {
    "0004cfab-14fd-4e49-80ba-63a80b6bddd6": (0, "No Lung Opacity / Not Normal", "PA"),
    "00313ee0-9eaa-42f4-b0ab-c148ed3241cd": (0, "No Lung Opacity / Not Normal", "PA"),
    "00322d4d-1c29-4943-afc9-b6754be640eb": (0, "No Lung Opacity / Not Normal", "AP"),
    "003d8fa0-6bf1-40ed-b54c-ac657f8495c5": (0, "Normal", "PA"),
    "00436515-870c-4b36-a041-de91049b9ab4": (2, "Lung Opacity", "AP"),
    "00569f44-917d-4c86-a842-81832af98c30": (0, "Normal", "PA"),
    "006cec2e-6ce2-4549-bffa-eadfcd1e9970": (0, "Normal", "AP"),
    "00704310-78a8-4b38-8475-49f4573b2dbb": (3, "Lung Opacity", "AP"),
    "008c19e8-a820-403a-930a-bc74a4053664": (0, "Normal", "PA"),
    "00a85be6-6eb0-421d-8acf-ff2dc0007e8a": (1, "Lung Opacity", "AP"),
}
RSNA_COMPRESSED = 9
"""Row whose DICOM is RLE Lossless compressed (the others are uncompressed)."""
RLE_LOSSLESS = "1.2.840.10008.1.2.5"


def make_rsna(root: Path, images: dict | None = None, class_info: bool = True) -> Path:
    """``root/stage_2_train_labels.csv`` (+ detailed class info) and ``stage_2_train_images/*.dcm``."""
    images = RSNA_IMAGES if images is None else images
    labels, classes = [], []
    for k, (pid, (boxes, cls, view)) in enumerate(images.items()):
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", pixels(k, 16, np.uint8, 255), patient_id=pid,
                    view_position=view, transfer_syntax=RLE_LOSSLESS if k == RSNA_COMPRESSED else None)
        for b in range(max(boxes, 1)):
            labels.append([pid, 264 + b, 152, 213, 379, 1] if boxes else [pid, "", "", "", "", 0])
            classes.append([pid, cls])
    _write_csv(root / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], labels)
    if class_info:
        _write_csv(root / "stage_2_detailed_class_info.csv", ["patientId", "class"], classes)
    return root


# ImageId -> number of masks (0 = one "-1" row), PatientID in the header
SIIM_IMAGES = {
    "1.2.276.0.7230010.3.1.4.8323329.5597.1517875188.959090": (0, "17d405a3-a0d2-4901-b33a-63906aa48d9f"),
    "1.2.276.0.7230010.3.1.4.8323329.12515.1517875239.501137": (0, "8ab1ffda-8b65-4914-95d6-2e549e328666"),
    "1.2.276.0.7230010.3.1.4.8323329.4904.1517875185.355709": (1, "bfef51d3-6541-4792-bac1-d21d41ee60fd"),
    "1.2.276.0.7230010.3.1.4.8323329.32579.1517875161.299312": (2, "d19d956f-4ddd-4688-81ff-909c85e0e2d9"),
    "1.2.276.0.7230010.3.1.4.8323329.32579.1517875161.299313": (0, "d19d956f-4ddd-4688-81ff-909c85e0e2d9"),
    "1.2.276.0.7230010.3.1.4.8323329.1314.1517875167.222290": (1, "cf71a760-f693-4ccf-acd4-a41ff4845a5f"),
}


def make_siim(root: Path, images: dict | None = None) -> Path:
    """``root/train-rle.csv`` and ``dicom-images-train/<study>/<series>/<ImageId>.dcm``."""
    images = SIIM_IMAGES if images is None else images
    rows = []
    for k, (image, (masks, patient)) in enumerate(images.items()):
        folder = root / "dicom-images-train" / f"1.2.276.0.7230010.3.1.2.8323329.{k}" / f"1.2.276.0.7230010.3.1.3.{k}"
        write_dicom(folder / f"{image}.dcm", pixels(k, 16, np.uint8, 255), patient_id=patient,
                    view_position="PA" if k % 2 else "AP")
        rows += [[image, f" {100 + m} 7 1013 12 1005 18"] for m in range(masks)] or [[image, " -1"]]
    with (root / "train-rle.csv").open("w") as f:
        f.write("ImageId, EncodedPixels\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return root


VINDR_LABELS = ["Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Clavicle fracture",
                "Consolidation", "Edema", "Emphysema", "Enlarged PA", "ILD", "Infiltration", "Lung Opacity",
                "Lung cavity", "Lung cyst", "Mediastinal shift", "Nodule/Mass", "Pleural effusion",
                "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", "Rib fracture", "Other lesion", "COPD",
                "Lung tumor", "Pneumonia", "Tuberculosis", "Other disease", "No finding"]
# image_id -> per reader (rad_ID, positive labels); test images have one consensus row (reader None)
VINDR_TRAIN = {
    "000434271f63a053c4128a0ba6352c7f": [("R2", ["Cardiomegaly"]), ("R3", ["Cardiomegaly", "Pleural effusion"]),
                                         ("R5", [])],
    "00053190460d56c53cc3e57321387478": [("R8", []), ("R9", []), ("R10", [])],
    "0005e8e3701dfb1dd93d53e2ff537b6e": [("R9", ["Nodule/Mass", "Pulmonary fibrosis"]),
                                         ("R10", ["Pulmonary fibrosis", "Rib fracture"]), ("R11", ["Nodule/Mass"])],
    "0006e0a85696f6bb578e84fafa9a5607": [("R2", ["Pneumonia", "Consolidation"]), ("R3", ["Pneumonia"]),
                                         ("R4", ["Consolidation"])],
}
VINDR_TEST = {
    "002a34c58c5b758217ed1f584ccbcfe9": ["Aortic enlargement", "Cardiomegaly"],
    "004f33259ee4aef671c2b95d54e4be68": [],
}


def make_vindr(root: Path, train: dict | None = None, test: dict | None = None) -> Path:
    """PhysioNet layout: ``annotations/image_labels_{train,test}.csv``, ``{train,test}/<image_id>.dicom``."""
    train = VINDR_TRAIN if train is None else train
    test = VINDR_TEST if test is None else test
    rows = []
    for k, (image, reads) in enumerate(train.items()):
        write_dicom(root / "train" / f"{image}.dicom", pixels(k, 24, np.uint16, 4095), bits_stored=12,
                    photometric="MONOCHROME1" if k % 2 else "MONOCHROME2", patient_id=None, view_position=None)
        for rad, pos in reads:
            rows.append([image, rad, *[int(n in pos or (n == "No finding" and not pos)) for n in VINDR_LABELS]])
    _write_csv(root / "annotations" / "image_labels_train.csv", ["image_id", "rad_ID", *VINDR_LABELS], rows)
    if test:
        rows = []
        for k, (image, pos) in enumerate(test.items()):
            write_dicom(root / "test" / f"{image}.dicom", pixels(10 + k, 24, np.uint16, 4095), bits_stored=12,
                        patient_id=None, view_position=None)
            rows.append([image, *[int(n in pos or (n == "No finding" and not pos)) for n in VINDR_LABELS]])
        _write_csv(root / "annotations" / "image_labels_test.csv", ["image_id", *VINDR_LABELS], rows)
    return root


SHENZHEN_FILES = ("CHNCXR_0001_0", "CHNCXR_0002_0", "CHNCXR_0003_0", "CHNCXR_0327_1", "CHNCXR_0328_1")
MONTGOMERY_FILES = ("MCUCXR_0001_0", "MCUCXR_0002_0", "MCUCXR_0104_1", "MCUCXR_0108_1", "MCUCXR_0113_1",
                    "MCUCXR_0117_1")


def make_tb(root: Path, name: str, readings: bool = True) -> Path:
    """``root/ChinaSet_AllFiles`` (``name`` shenzhen) or ``root/MontgomerySet`` with CXR_png and readings."""
    top, stems = (("ChinaSet_AllFiles", SHENZHEN_FILES) if name == "shenzhen" else ("MontgomerySet", MONTGOMERY_FILES))
    for k, stem in enumerate(stems):
        write_image(root / top / "CXR_png" / f"{stem}.png", (28 + k * 2, 24), "L" if k % 2 else "RGB", seed=k)
        if readings:
            sick = stem.endswith("_1")
            reading = "PTB in the left upper field" if sick else "normal"
            text = (f"{'male' if k % 2 else 'female'} {30 + k}yrs\n{reading}"
                    if name == "shenzhen" else
                    f"Patient's Sex: {'M' if k % 2 else 'F'}\nPatient's Age: 0{40 + k}Y\n"
                    f"{'bilateral upper lobe cavitary TB' if sick else 'normal'}\n")
            path = root / top / "ClinicalReadings" / f"{stem}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return root
