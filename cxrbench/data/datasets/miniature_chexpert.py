"""Miniature CheXpert and MIMIC-CXR-JPG archives in the real layouts (CSV columns, path schemes, quirks).

The label cells are fixed (tests compute the expected label matrices from these rows by hand);
images are tiny JPEGs (:func:`cxrbench.data.datasets.miniature.write_image`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from cxrbench.data.datasets.miniature import write_image

CHEXPERT_OBS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
                "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                "Fracture", "Support Devices")
# (path under train/ or valid/, sex, age, Frontal/Lateral, AP/PA, the 14 cells in CHEXPERT_OBS order)
CHEXPERT_TRAIN = (
    ("patient00001/study1/view1_frontal.jpg", "Female", "68", "Frontal", "AP",
     ",,1.0,-1.0,,0.0,,,1.0,0.0,-1.0,,,1.0"),
    ("patient00001/study1/view2_lateral.jpg", "Female", "68", "Lateral", "",
     ",,1.0,-1.0,,0.0,,,1.0,0.0,-1.0,,,1.0"),
    ("patient00001/study2/view1_frontal.jpg", "Female", "68", "Frontal", "PA",
     "1.0,,0.0,,,,,,,0.0,0.0,,,"),
    ("patient00002/study1/view1_frontal.jpg", "Male", "87", "Frontal", "AP",
     ",,-1.0,1.0,,1.0,-1.0,,,,1.0,,1.0,"),
    ("patient00003/study1/view1_frontal.jpg", "Male", "41", "Frontal", "PA",
     ",0.0,0.0,1.0,1.0,,1.0,1.0,-1.0,,0.0,1.0,,0.0"),
    ("patient00003/study1/view2_frontal.jpg", "Male", "41", "Frontal", "AP",
     ",,,,,-1.0,,-1.0,,1.0,,,,1.0"),
)
CHEXPERT_VALID = (
    ("patient64541/study1/view1_frontal.jpg", "Male", "73", "Frontal", "AP",
     "0.0,1.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0,1.0"),
    ("patient64542/study1/view1_frontal.jpg", "Male", "70", "Frontal", "PA",
     "1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0"),
    ("patient64542/study1/view2_lateral.jpg", "Male", "70", "Lateral", "",
     "1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0"),
    ("patient64543/study1/view1_frontal.jpg", "Female", "55", "Frontal", "AP",
     "0.0,0.0,1.0,1.0,0.0,1.0,1.0,0.0,0.0,0.0,1.0,0.0,0.0,1.0"),
)


def make_chexpert(parent: Path, name: str = "CheXpert-v1.0-small", root_relative: bool = False,
                  train=CHEXPERT_TRAIN, valid=CHEXPERT_VALID) -> Path:  # noqa: ANN001
    """``parent/<name>/{train,valid}.csv`` and the JPEGs they name; returns the root (``parent/<name>``).

    ``Path`` cells start with ``<name>/`` (relative to the root's parent, as shipped), or with
    ``train/`` when ``root_relative`` (a re-packaged copy).
    """
    root = parent / name
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_OBS) + "\n"
    for part, rows in (("train", train), ("valid", valid)):
        lines = []
        for k, (rel, sex, age, fl, appa, cells) in enumerate(rows):
            write_image(root / part / rel, (40 + 4 * (k % 3), 36), "L", k)
            path = f"{part}/{rel}" if root_relative else f"{name}/{part}/{rel}"
            lines.append(f"{path},{sex},{age},{fl},{appa},{cells}\n")
        (root / f"{part}.csv").write_text(header + "".join(lines))
    return root


MIMIC_LABEL_COLUMNS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
                       "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other",
                       "Pneumonia", "Pneumothorax", "Support Devices")
"""The column order of mimic-cxr-2.0.0-chexpert.csv / -negbio.csv (alphabetical, as shipped)."""
# (subject_id, study_id, dicom_id, ViewPosition, split)
MIMIC_IMAGES = (
    ("10000032", "50414267", "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "PA", "train"),
    ("10000032", "50414267", "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "LATERAL", "train"),
    ("10000032", "53189527", "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "AP", "train"),
    ("10000764", "57375967", "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4", "AP", "validate"),
    ("11000011", "51000001", "aaaaaaaa-11111111-22222222-33333333-44444444", "PA", "test"),
    ("11000011", "51000001", "bbbbbbbb-11111111-22222222-33333333-44444444", "", "test"),
    ("12000022", "52000002", "cccccccc-11111111-22222222-33333333-44444444", "PA", "test"),
)
# (subject_id, study_id, cells in MIMIC_LABEL_COLUMNS order); study 52000002 has no label row
MIMIC_LABELS = (
    ("10000032", "50414267", ",,,,,,,,1.0,,,,,"),
    ("10000032", "53189527", "1.0,-1.0,,0.0,,,,1.0,,1.0,,-1.0,0.0,"),
    ("10000764", "57375967", ",1.0,-1.0,,,,,,,-1.0,,0.0,,1.0"),
    ("11000011", "51000001", "0.0,,1.0,1.0,,,1.0,,,,,1.0,,"),
)
MIMIC_NEGBIO = (
    ("10000032", "50414267", ",,,,,,,,1.0,,,,,"),
    ("10000032", "53189527", "1.0,,,,,,,1.0,,1.0,,1.0,0.0,"),
    ("10000764", "57375967", ",1.0,,,,,,,,,,0.0,,1.0"),
    ("11000011", "51000001", "0.0,,1.0,1.0,,,1.0,,,,,-1.0,,"),
)
MIMIC_PREFIX = "mimic-cxr-2.0.0-"


def mimic_path(subject: str, study: str, dicom: str) -> str:
    """``files/p10/p10000032/s50414267/<dicom_id>.jpg``: the layout of MIMIC-CXR-JPG."""
    return f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"


def _write(path: Path, text: str, gz: bool) -> None:
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wt") as f:
            f.write(text)
    else:
        path.write_text(text)


def make_mimic_cxr(root: Path, gz: bool = True, images=MIMIC_IMAGES, labels=MIMIC_LABELS) -> Path:  # noqa: ANN001
    """The four CSVs of MIMIC-CXR-JPG 2.x (``.csv.gz`` as PhysioNet ships them when ``gz``) and the JPEGs."""
    root.mkdir(parents=True, exist_ok=True)
    meta = ["dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
            "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
            "PatientOrientationCodeSequence_CodeMeaning\n"]
    split = ["dicom_id,study_id,subject_id,split\n"]
    for k, (subject, study, dicom, view, part) in enumerate(images):
        write_image(root / mimic_path(subject, study, dicom), (36 + 4 * (k % 3), 40), "L", k)
        desc = "CHEST (PA AND LAT)" if view in ("PA", "LATERAL") else "CHEST (PORTABLE AP)"
        meaning = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral"}.get(view, "")
        meta.append(f"{dicom},{subject},{study},{desc},{view},3056,2544,21800506,213014.531,{desc},{meaning},Erect\n")
        split.append(f"{dicom},{study},{subject},{part}\n")
    _write(root / f"{MIMIC_PREFIX}metadata.csv", "".join(meta), gz)
    _write(root / f"{MIMIC_PREFIX}split.csv", "".join(split), gz)
    header = "subject_id,study_id," + ",".join(MIMIC_LABEL_COLUMNS) + "\n"
    for kind, rows in (("chexpert", labels), ("negbio", MIMIC_NEGBIO)):
        _write(root / f"{MIMIC_PREFIX}{kind}.csv", header + "".join(f"{s},{t},{c}\n" for s, t, c in rows), gz)
    return root
