"""medmnist: npz files in the real key format, read with numpy; errors when the file is missing."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from cxrbench.data.datasets import medmnist_npz
from cxrbench.data.datasets.miniature import make_medmnist, tiny_suite
from cxrbench.data.loading import load_dataset
from cxrbench.engine.runner import run_suite
from cxrbench.errors import DatasetError

CXR14 = medmnist_npz.FINDINGS


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CXRBENCH_DATA", raising=False)


def load(root, task="binary", classes=("normal", "pneumonia"), **options):
    return load_dataset(medmnist_npz.SPEC, task, classes, root, options)


def test_pneumoniamnist_labels_split_and_pixels(tmp_path):
    path = make_medmnist(tmp_path, "pneumoniamnist", 28, counts=(12, 4, 6))
    t = load(tmp_path)
    npz = np.load(path)
    assert len(t) == 22 and t.official_split == ["train"] * 12 + ["val"] * 4 + ["test"] * 6
    expected = np.concatenate([npz[f"{s}_labels"][:, 0] for s in ("train", "val", "test")])
    np.testing.assert_array_equal(t.labels, expected)
    np.testing.assert_array_equal(t.load_image(13, 28), npz["val_images"][1])
    np.testing.assert_array_equal(t.load_image(21, 28), npz["test_images"][5])
    assert t.patient_ids is None and t.ids[12] == "pneumoniamnist/val/000000"
    # reversed class order flips the labels
    flipped = load(tmp_path, classes=("Pneumonia", "NORMAL"))
    np.testing.assert_array_equal(flipped.labels, 1 - t.labels)


def test_sizes_flags_and_multilabel_subset(tmp_path):
    make_medmnist(tmp_path, "pneumoniamnist", 64, counts=(4, 2, 2))
    t = load(tmp_path, size=64)
    assert t.load_image(0, 64).shape == (64, 64) and t.archive.endswith("pneumoniamnist_64.npz")
    path = make_medmnist(tmp_path, "chestmnist", 28, counts=(6, 2, 3), n_labels=14)
    npz = np.load(path)
    full = np.concatenate([npz[f"{s}_labels"] for s in ("train", "val", "test")])
    t = load(tmp_path, "multilabel", ("hernia", "Effusion", "pleural"))  # flag defaults to chestmnist
    np.testing.assert_array_equal(t.labels, full[:, [13, 2, 12]])
    with pytest.raises(DatasetError, match="single-label, but the suite's task is 'multilabel'"):
        load(tmp_path, "multilabel", ("normal", "pneumonia"), flag="pneumoniamnist", size=64)


def test_missing_file_says_which_and_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError) as err:
        load(tmp_path, size=128)
    msg = str(err.value)
    assert str(tmp_path / "pneumoniamnist_128.npz") in msg and "download: true" in msg and "medmnist.com" in msg
    assert "--set dataset.name=synthetic_cxr" in msg


@pytest.mark.skipif(importlib.util.find_spec("medmnist") is not None, reason="medmnist is installed")
def test_download_without_the_package_names_the_extra(tmp_path):
    with pytest.raises(DatasetError, match=r"pip install 'cxrbench\[medmnist\]'"):
        load(tmp_path, download=True)


def test_default_root_and_bad_options(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_DATA", str(tmp_path))
    make_medmnist(tmp_path / "medmnist", "pneumoniamnist", counts=(4, 2, 2))
    assert len(load(None)) == 8
    with pytest.raises(DatasetError, match="size"):
        load(None, size=32)
    with pytest.raises(DatasetError, match="known options: flag, size, download"):
        load(None, flags="x")


def test_suite_end_to_end(tmp_path):
    make_medmnist(tmp_path / "mm", "pneumoniamnist", counts=(24, 8, 10))
    suite = tiny_suite(tmp_path / "m.yaml", {"name": "medmnist", "root": str(tmp_path / "mm"),
                                             "options": {"flag": "pneumoniamnist", "size": 28}},
                       {"type": "binary", "classes": ["normal", "pneumonia"]})
    out = run_suite(suite, results_root=tmp_path / "res", device="cpu")
    (record,) = out.records
    assert record.status == "ok" and record.n_test == 10
