"""rsna_pneumonia on a miniature copy: one row per box, the three variants, DICOM headers and
pixels, describe counts and bad input naming file and row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrbench.data.datasets import rsna_pneumonia as rsna
from cxrbench.data.datasets.miniature_archives import RSNA_COMPRESSED, RSNA_IMAGES, make_rsna, pixels
from cxrbench.data.describe import describe_dataset
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.testing import check_dataset_spec

IDS = list(RSNA_IMAGES)
TARGET = [int(boxes > 0) for boxes, _, _ in RSNA_IMAGES.values()]  # [0, 0, 0, 0, 1, 0, 0, 1, 0, 1]
DETAILED = {"Normal": 0, "No Lung Opacity / Not Normal": 1, "Lung Opacity": 2}


def load(root, task="binary", classes=(), variant=None, **options):
    return load_dataset(rsna.SPEC, task, classes, root, options, variant)


def test_binary_one_image_per_patient_with_header_views(tmp_path):
    root = make_rsna(tmp_path / "rsna")
    t = load(root)
    assert t.class_names == ["normal", "pneumonia"] and t.labels.tolist() == TARGET
    assert [i.split("/")[-1] for i in t.ids] == [f"{p}.dcm" for p in IDS] and t.patient_ids == IDS
    assert t.extras["view"] == [v for _, _, v in RSNA_IMAGES.values()]
    assert t.official_split is None and t.label_mask is None
    # a ChestX-ray2017 (kermany) model names its classes NORMAL / PNEUMONIA: same labels, any order
    assert load(root, classes=("PNEUMONIA", "NORMAL")).labels.tolist() == [1 - y for y in TARGET]


def test_detailed_and_findings_variants(tmp_path):
    root = make_rsna(tmp_path / "rsna")
    t = load(root, "multiclass")
    assert t.class_names == ["normal", "not_normal", "lung_opacity"]
    assert t.labels.tolist() == [DETAILED[c] for _, c, _ in RSNA_IMAGES.values()]
    m = load(root, "multilabel", ("Lung Opacity", "Effusion", "pneumonia"))
    np.testing.assert_array_equal(m.labels, np.array([[y, 0, y] for y in TARGET]))
    np.testing.assert_array_equal(m.label_mask, np.array([[True, False, True]] * len(IDS)))
    make_rsna(tmp_path / "bare", class_info=False)
    with pytest.raises(DatasetError, match="variant 'detailed' needs stage_2_detailed_class_info.csv"):
        load(tmp_path / "bare", "multiclass")
    assert load(tmp_path / "bare").labels.tolist() == TARGET  # binary needs only the labels file


def test_dicom_pixels_decode_as_stored(tmp_path):
    t = load(make_rsna(tmp_path / "rsna"))
    np.testing.assert_array_equal(t.load_image(3, 16), pixels(3, 16, np.uint8, 255))  # 8-bit MONOCHROME2, no window
    k = RSNA_COMPRESSED  # RLE Lossless: the same values after decompression
    np.testing.assert_array_equal(t.load_image(k, 16), pixels(k, 16, np.uint8, 255))


def test_describe_counts_equal_hand_counts(tmp_path):
    d = describe_dataset("rsna_pneumonia", str(make_rsna(tmp_path / "rsna")))
    assert d["counts"] == {"all": {"normal": 7, "pneumonia": 3, "total": 10}}
    assert d["patients"]["n_patients"] == 10 and d["patients"]["images_per_patient"]["max"] == 1
    assert d["metadata"] == {"view": {"PA": 5, "AP": 5}, "source": {"rsna_pneumonia": 10}}
    assert d["image_size"]["modes"] == {"MONOCHROME2 8-bit": 10} and d["image_size"]["width"]["min"] == 16


@pytest.mark.parametrize("task,variant", [("binary", None), ("multiclass", "detailed"), ("multilabel", "findings")])
def test_check_dataset_spec_passes(tmp_path, task, variant):
    check_dataset_spec(rsna.SPEC, make_rsna(tmp_path / "rsna"), {}, task=task, variant=variant)


def test_bad_input_names_file_and_row(tmp_path):
    root = make_rsna(tmp_path / "rsna")
    csv = root / "stage_2_train_labels.csv"
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    df.drop(columns=["Target"]).to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['Target'\]"):
        load(root)
    bad = df.copy()
    bad.loc[3, "Target"] = "2"
    bad.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=rf"stage_2_train_labels.csv line 5 \({IDS[3]}\): Target must be 0 or 1"):
        load(root)
    df.to_csv(csv, index=False)
    info = root / "stage_2_detailed_class_info.csv"
    classes = pd.read_csv(info, dtype=str)
    wrong = classes.copy()
    wrong.loc[0, "class"] = "Lung Opacity"
    wrong.to_csv(info, index=False)
    with pytest.raises(DatasetError, match=rf"line 2 \({IDS[0]}\): class 'Lung Opacity' but Target 0"):
        load(root)
    wrong.loc[0, "class"] = "Pneumonia?"
    wrong.to_csv(info, index=False)
    with pytest.raises(DatasetError, match=r"unknown class 'Pneumonia\?'"):
        load(root)
    classes.to_csv(info, index=False)
    (root / "stage_2_train_images" / f"{IDS[5]}.dcm").write_bytes(b"\x00" * 200)  # undecodable DICOM
    with pytest.raises(DatasetError, match=rf"line 8 \({IDS[5]}\):.*{IDS[5]}.dcm"):
        load(root)
    t = load(root, read_headers=False)  # found when decoding instead, naming the file
    with pytest.raises(DatasetError, match=rf"{IDS[5]}.dcm"):
        t.load_image(5, 16)
    (root / "stage_2_train_images" / f"{IDS[5]}.dcm").unlink()
    with pytest.raises(DatasetError, match=rf"(?s)1 row\(s\).*line 8 \({IDS[5]}\): no stage_2_train_images"):
        load(root)
    assert len(load(root, allow_missing=True)) == 9
