"""lung_xray (Talukder's Lung X-ray Image Dataset) on a miniature copy: folders, names, errors, a suite."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from cxrbench.data.datasets import lung_xray
from cxrbench.data.datasets.miniature import make_lung_xray, tiny_suite
from cxrbench.data.loading import load_dataset
from cxrbench.engine.runner import run_suite
from cxrbench.errors import DatasetError

CLASSES = ("normal", "lung_opacity", "viral_pneumonia")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))


def load(root, classes=CLASSES):
    return load_dataset(lung_xray.SPEC, "multiclass", classes, root)


@pytest.mark.parametrize("nested", ["Lung X-Ray Image", None])
def test_counts_and_labels_nested_or_flat(tmp_path, nested):
    make_lung_xray(tmp_path / "d", per_class=5, nested=nested)
    t = load(tmp_path / "d")
    assert len(t) == 15 and Counter(t.labels.tolist()) == {0: 5, 1: 5, 2: 5}
    folder_of = {0: "Normal/", 1: "Lung_Opacity/", 2: "Viral Pneumonia/"}
    assert all(i.startswith(folder_of[k]) for i, k in zip(t.ids, t.labels))
    assert t.patient_ids is None and t.official_split is None
    assert not any("__MACOSX" in i or "DS_Store" in i for i in t.ids)


def test_class_names_are_case_space_and_order_insensitive(tmp_path):
    make_lung_xray(tmp_path / "d", per_class=3)
    base = load(tmp_path / "d")
    t = load(tmp_path / "d", ("Viral Pneumonia", "NORMAL", "Lung Opacity"))
    assert t.ids == base.ids  # rows do not depend on the suite's class order
    assert [("viral_pneumonia", "normal", "lung_opacity")[k] for k in t.labels] == [CLASSES[k] for k in base.labels]
    with pytest.raises(DatasetError, match="unknown classes"):
        load(tmp_path / "d", ("normal", "covid", "viral pneumonia"))
    with pytest.raises(DatasetError, match="has classes"):
        load(tmp_path / "d", ("normal", "lung opacity"))


def test_missing_or_empty_class_folders(tmp_path):
    base = make_lung_xray(tmp_path / "d", per_class=2)
    for f in (base / "Normal").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="Normal holds no images"):
        load(tmp_path / "d")
    shutil.rmtree(base / "Normal")
    with pytest.raises(DatasetError, match=r"Lung X-Ray Image is incomplete: missing .*Lung X-Ray Image/Normal/") as err:
        load(tmp_path / "d")  # a partial folder: the run names what is missing (describe shows the rest)
    assert "Lung Opacity" in str(err.value) and "4 images in what is there" in str(err.value)
    shutil.rmtree(tmp_path / "d")
    (tmp_path / "d").mkdir()
    with pytest.raises(DatasetError, match="holds the class folders") as err:
        load(tmp_path / "d")
    assert "synthetic_cxr" in str(err.value)


def test_suite_end_to_end(tmp_path):
    make_lung_xray(tmp_path / "d", per_class=8)
    suite = tiny_suite(tmp_path / "l.yaml", {"name": "lung_xray", "root": str(tmp_path / "d")},
                       {"type": "multiclass", "classes": ["Normal", "Lung Opacity", "Viral Pneumonia"]},
                       split={"strategy": "ratio", "ratios": {"train": 0.5, "val": 0.25, "test": 0.25}})
    out = run_suite(suite, results_root=tmp_path / "res", device="cpu")
    (record,) = out.records
    assert record.status == "ok" and record.n_test == 6  # 24 images, 25% per class for test (stratified)
