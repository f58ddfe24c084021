"""padchest on a miniature copy: list-literal Labels mapped to the vocabulary, masks, projections,
16-bit PNG decoding, describe counts and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrbench.data.datasets import padchest
from cxrbench.data.datasets.miniature_archives import PADCHEST_CSV, PADCHEST_ROWS, make_padchest, pixels
from cxrbench.data.describe import describe_dataset
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.testing import check_dataset_spec

# kept rows (PA / AP / AP_horizontal with Labels) and their vocabulary labels, worked out by hand
EXPECTED = {
    0: [], 2: ["Pneumonia", "Infiltration"], 3: ["Effusion", "Cardiomegaly"], 4: ["Infiltration", "Consolidation"],
    6: ["Pleural_Thickening", "Atelectasis"], 7: ["Nodule"], 8: ["Fracture", "Hernia", "Mass"], 10: ["Emphysema"],
    11: ["Pneumothorax", "Fibrosis", "Edema"],
}


def load(root, classes=(), **options):
    return load_dataset(padchest.SPEC, "multilabel", classes, root, options)


def test_labels_patients_views_and_the_flat_file(tmp_path):
    root = make_padchest(tmp_path / "pc")
    t = load(root)
    assert t.class_names == list(padchest.LABELS) and t.label_mask is None
    assert len(t) == len(EXPECTED)
    for r, (row, names) in enumerate(EXPECTED.items()):
        assert t.ids[r].endswith(PADCHEST_ROWS[row][1] + ".png")
        assert sorted(t.class_names[k] for k in np.flatnonzero(t.labels[r])) == sorted(names), row
    assert t.ids[4] == PADCHEST_ROWS[6][1] + ".png"  # the PNG directly in the root
    assert t.ids[0] == f"0/{PADCHEST_ROWS[0][1]}.png"
    assert t.patient_ids == [PADCHEST_ROWS[r][2] for r in EXPECTED]
    assert t.extras["view"] == [PADCHEST_ROWS[r][3] for r in EXPECTED] and set(t.extras["source"]) == {"padchest"}
    assert t.official_split is None
    assert [s[1] for s in t.skipped] == [f"{PADCHEST_CSV} line 7 ({PADCHEST_ROWS[5][1]}.png): no Labels"]


def test_vocabulary_names_own_terms_and_masked_labels(tmp_path):
    root = make_padchest(tmp_path / "pc")
    t = load(root, ("pleural effusion", "Lung Opacity", "tuberculosis", "PNEUMONIA"))
    assert t.class_names == ["pleural effusion", "Lung Opacity", "tuberculosis", "PNEUMONIA"]
    expect = np.zeros((9, 4), dtype=np.int64)
    expect[2, 0] = 1  # row 3: pleural effusion
    expect[5, 2] = 1  # row 7: tuberculosis (a PadChest term of its own)
    expect[1, 3] = 1  # row 2: pneumonia
    np.testing.assert_array_equal(t.labels, expect)
    mask = np.ones((9, 4), dtype=bool)
    mask[:, 1] = False  # PadChest has no Lung Opacity: not evaluated, never negative
    np.testing.assert_array_equal(t.label_mask, mask)
    assert any("Lung Opacity" in n and "masked" in n for n in t.notes)
    with pytest.raises(DatasetError, match=r"unknown labels \['covid'\]"):
        load(root, ("Effusion", "covid"))


def test_projection_option(tmp_path):
    root = make_padchest(tmp_path / "pc")
    assert load(root, views=["L"]).ids == [f"0/{PADCHEST_ROWS[1][1]}.png"]
    assert len(load(root, views=None)) == len(PADCHEST_ROWS) - 1  # every projection, less the NaN row


def test_sixteen_bit_png_maps_over_the_full_range(tmp_path):
    root = make_padchest(tmp_path / "pc")
    t = load(root)
    raw = pixels(0, 20, np.uint16, 65535).astype(np.float64)
    np.testing.assert_array_equal(t.load_image(0, 20), np.floor(raw * 255 / 65535 + 0.5).astype(np.uint8))


def test_describe_counts_equal_hand_counts(tmp_path):
    root = make_padchest(tmp_path / "pc")
    d = describe_dataset("padchest", str(root))
    assert d["n_images"] == 9
    row = d["counts"]["all"]
    assert row["Infiltration"] == 2 and row["Nodule"] == 1 and row["(none)"] == 1 and row["total"] == 9
    assert sum(row[c] for c in padchest.LABELS) == sum(len(v) for v in EXPECTED.values())
    assert d["patients"]["n_patients"] == 8  # P3 twice
    assert d["metadata"]["view"] == {"PA": 7, "AP": 1, "AP_horizontal": 1}
    assert d["image_size"]["modes"] == {"I;16": 9} and d["image_size"]["unreadable_headers"] == 0
    assert d["image_size"]["width"]["max"] == 28


def test_check_dataset_spec_passes(tmp_path):
    check_dataset_spec(padchest.SPEC, make_padchest(tmp_path / "pc"), {}, task="multilabel")


def test_bad_input_names_file_and_row(tmp_path):
    root = make_padchest(tmp_path / "pc")
    csv = root / PADCHEST_CSV
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    df.drop(columns=["Labels"]).to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['Labels'\]"):
        load(root)
    bad = df.copy()
    bad.loc[2, "Labels"] = "pneumonia, infiltrates"
    bad.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=rf"line 4 \({PADCHEST_ROWS[2][1]}.png\): Labels 'pneumonia, infiltrates'"):
        load(root)
    df.to_csv(csv, index=False)
    (root / "1" / f"{PADCHEST_ROWS[3][1]}.png").unlink()
    gone = PADCHEST_ROWS[3][1]
    with pytest.raises(DatasetError, match=rf"(?s)1 row\(s\).*line 5 \({gone}.png\): image file not found"):
        load(root)
    assert len(load(root, allow_missing=True)) == 8
    with pytest.raises(DatasetError, match="bimcv"):
        load(tmp_path / "nowhere")
