"""siim_pneumothorax on a miniature copy: the ' EncodedPixels' header, several masks per image,
nested UID folders, patients from the DICOM headers, describe counts and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from cxrbench.data.datasets import siim_pneumothorax as siim
from cxrbench.data.datasets.miniature_archives import SIIM_IMAGES, make_siim
from cxrbench.data.describe import describe_dataset
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.testing import check_dataset_spec

IDS = list(SIIM_IMAGES)
POSITIVE = [int(m > 0) for m, _ in SIIM_IMAGES.values()]  # [0, 0, 1, 1, 0, 1]


def load(root, task="binary", classes=(), **options):
    return load_dataset(siim.SPEC, task, classes, root, options)


def test_labels_and_header_patients(tmp_path):
    root = make_siim(tmp_path / "siim")
    assert (root / "train-rle.csv").read_text().startswith("ImageId, EncodedPixels\n")  # the real header
    t = load(root)
    assert t.class_names == ["normal", "pneumothorax"] and t.labels.tolist() == POSITIVE
    assert t.ids[0] == f"dicom-images-train/1.2.276.0.7230010.3.1.2.8323329.0/1.2.276.0.7230010.3.1.3.0/{IDS[0]}.dcm"
    assert t.patient_ids == [p for _, p in SIIM_IMAGES.values()] and len(set(t.patient_ids)) == 5
    assert t.extras["view"] == ["AP", "PA"] * 3
    assert load(root, read_headers=False).patient_ids == IDS
    m = load(root, "multilabel", ("Pneumothorax", "Effusion"))
    np.testing.assert_array_equal(m.labels, np.array([[y, 0] for y in POSITIVE]))
    np.testing.assert_array_equal(m.label_mask, np.array([[True, False]] * 6))


def test_describe_counts_equal_hand_counts(tmp_path):
    d = describe_dataset("siim_pneumothorax", str(make_siim(tmp_path / "siim")))
    assert d["counts"] == {"all": {"normal": 3, "pneumothorax": 3, "total": 6}}
    assert d["patients"]["n_patients"] == 5 and d["patients"]["images_per_patient_histogram"]["2"] == 1
    assert d["metadata"]["view"] == {"AP": 3, "PA": 3}
    assert d["image_size"]["modes"] == {"MONOCHROME2 8-bit": 6}


@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_check_dataset_spec_passes(tmp_path, task):
    check_dataset_spec(siim.SPEC, make_siim(tmp_path / "siim"), {}, task=task)


def test_bad_input_names_file_and_row(tmp_path):
    root = make_siim(tmp_path / "siim")
    csv = root / "train-rle.csv"
    text = csv.read_text()
    csv.write_text(text.replace("ImageId,", "Image,", 1))
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['ImageId'\]"):
        load(root)
    lines = text.splitlines()
    csv.write_text("\n".join([*lines[:3], f"{IDS[2]}, 12 x", *lines[4:]]) + "\n")
    with pytest.raises(DatasetError, match=rf"train-rle.csv line 4 \({IDS[2]}\): EncodedPixels '12 x'"):
        load(root)
    csv.write_text(text + f"{IDS[3]}, -1\n")  # -1 after two masks of the same image
    with pytest.raises(DatasetError, match=rf"line {len(lines) + 1} \({IDS[3]}\): -1 and a mask"):
        load(root)
    csv.write_text(text)
    dcm = next(root.rglob(f"{IDS[1]}.dcm"))
    dcm.write_bytes(b"DICM" * 10)
    with pytest.raises(DatasetError, match=rf"line 3 \({IDS[1]}\):.*{IDS[1]}.dcm"):
        load(root)
    dcm.unlink()
    with pytest.raises(DatasetError, match=rf"(?s)1 row\(s\).*line 3 \({IDS[1]}\): no {IDS[1]}.dcm"):
        load(root)
    assert load(root, allow_missing=True).labels.tolist() == [0, 1, 1, 0, 1]
