"""vindr_cxr on a miniature copy: three readers per training image (majority / any), the consensus
test set, the Kaggle box file, MONOCHROME1 12-bit DICOMs, describe counts and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrbench.data.datasets import vindr_cxr as vindr
from cxrbench.data.datasets.miniature_archives import VINDR_TEST, VINDR_TRAIN, make_vindr, pixels
from cxrbench.data.describe import describe_dataset
from cxrbench.data.intensity import scale_to_uint8
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.testing import check_dataset_spec

CLASSES = ("Cardiomegaly", "Effusion", "Fracture", "Nodule/Mass", "Fibrosis", "Pneumonia", "Mass")
# rows: 4 training images then 2 test images; worked out by hand from VINDR_TRAIN / VINDR_TEST
MAJORITY = [[1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1, 0],
            [1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]]
ANY = [[1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1, 0],
       [1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]]


def load(root, classes=CLASSES, **options):
    return load_dataset(vindr.SPEC, "multilabel", classes, root, options)


def test_majority_and_any_with_the_official_split(tmp_path):
    root = make_vindr(tmp_path / "vindr")
    t = load(root)
    assert t.ids == [f"train/{i}.dicom" for i in VINDR_TRAIN] + [f"test/{i}.dicom" for i in VINDR_TEST]
    assert t.labels.tolist() == MAJORITY and t.official_split == ["train"] * 4 + ["test"] * 2
    assert t.extras["readers"] == [3, 3, 3, 3, 1, 1] and t.patient_ids is None
    mask = np.ones((6, 7), dtype=bool)
    mask[:, 6] = False  # Mass: VinDr only has Nodule/Mass
    np.testing.assert_array_equal(t.label_mask, mask)
    assert load(root, label="any").labels.tolist() == ANY


def test_kaggle_box_file_masks_what_it_does_not_annotate(tmp_path):
    root = make_vindr(tmp_path / "vindr", test={})
    (root / "annotations" / "image_labels_train.csv").unlink()
    rows = [[img, cls, 0, rad, 1, 2, 3, 4] for img, reads in VINDR_TRAIN.items() for rad, pos in reads
            for cls in (pos or ["No finding"])]
    rows = [r for r in rows if r[1] in (*vindr.KAGGLE, "No finding")]  # Kaggle has no Pneumonia or fractures
    pd.DataFrame(rows, columns=["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max",
                                "y_max"]).to_csv(root / "train.csv", index=False)
    t = load(root)
    assert t.official_split is None and len(t) == 4
    assert t.labels[:, :5].tolist() == [r[:5] for r in MAJORITY[:4]]
    assert t.label_mask.all(axis=0).tolist() == [True, True, False, True, True, False, False]
    (root / "train.csv").write_text("image_id,class_name,class_id,rad_id\nabc,Covid,0,R1\n")
    with pytest.raises(DatasetError, match=r"train.csv line 2 \(abc\): unknown class_name 'Covid'"):
        load(root)


def test_monochrome1_twelve_bit_decodes_inverted(tmp_path):
    t = load(make_vindr(tmp_path / "vindr"))
    np.testing.assert_array_equal(t.load_image(1, 24), scale_to_uint8(pixels(1, 24, np.uint16, 4095), 4095, 0))
    np.testing.assert_array_equal(t.load_image(0, 24), scale_to_uint8(pixels(0, 24, np.uint16, 4095), 0, 4095))


def test_describe_counts_equal_hand_counts(tmp_path):
    d = describe_dataset("vindr_cxr", str(make_vindr(tmp_path / "vindr")))
    assert d["counts"]["train"]["Cardiomegaly"] == 1 and d["counts"]["test"]["Cardiomegaly"] == 1
    assert d["counts"]["test"]["Aortic enlargement"] == 1 and d["counts"]["train"]["(none)"] == 1
    assert d["counts"]["train"]["total"] == 4 and d["counts"]["test"]["total"] == 2
    assert d["image_size"]["modes"] == {"MONOCHROME2 12-bit": 4, "MONOCHROME1 12-bit": 2}
    assert d["patients"] is None


def test_check_dataset_spec_passes(tmp_path):
    check_dataset_spec(vindr.SPEC, make_vindr(tmp_path / "vindr"), {"label": "majority"}, task="multilabel")


def test_bad_input_names_file_and_row(tmp_path):
    root = make_vindr(tmp_path / "vindr")
    csv = root / "annotations" / "image_labels_train.csv"
    df = pd.read_csv(csv, dtype=str)
    df.drop(columns=["image_id"]).to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['image_id'\]"):
        load(root)
    bad = df.copy()
    bad.loc[4, "Cardiomegaly"] = "yes"
    bad.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"image_labels_train.csv line 6: column 'Cardiomegaly' must be 0 or 1"):
        load(root)
    df.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"unknown labels \['Covid'\]"):
        load(root, ("Covid",))
    image = list(VINDR_TRAIN)[2]
    (root / "train" / f"{image}.dicom").unlink()
    with pytest.raises(DatasetError, match=rf"(?s)1 row\(s\).*line 8 \({image}\): no train/{image}.dicom"):
        load(root)
    assert len(load(root, allow_missing=True)) == 5
