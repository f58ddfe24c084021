"""kermany (ChestX-ray2017) on a miniature copy of the real layout: counts, subtypes, patients, roots,
errors, grouped folds and a suite end to end."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from cxrbench.data.datasets import kermany
from cxrbench.data.datasets.miniature import make_kermany, tiny_suite
from cxrbench.data.loading import load_dataset
from cxrbench.data.splits import leaked_patients, plan_folds
from cxrbench.engine.runner import run_suite
from cxrbench.errors import DatasetError
from cxrbench.suite.schema import SplitConfig

BINARY = ("normal", "pneumonia")
SUBTYPE = ("normal", "bacterial", "viral")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CXRBENCH_DATA", raising=False)


@pytest.fixture
def root(tmp_path):
    make_kermany(tmp_path / "data")
    return tmp_path / "data"


def load(root, task="binary", classes=BINARY, variant=None, options=None):
    return load_dataset(kermany.SPEC, task, classes, root, options, variant)


def test_binary_counts_labels_and_official_split(root):
    t = load(root)
    assert len(t) == 31 and t.class_names == ["normal", "pneumonia"]
    assert not any("__MACOSX" in i or ".DS_Store" in i or "/._" in i for i in t.ids)
    rows = Counter(zip(t.official_split, (t.class_names[k] for k in t.labels)))
    assert rows == {("train", "normal"): 8, ("train", "pneumonia"): 10, ("val", "normal"): 2,
                    ("val", "pneumonia"): 2, ("test", "normal"): 4, ("test", "pneumonia"): 5}
    label = dict(zip(t.ids, t.labels))
    assert label["train/NORMAL/IM-0115-0001.jpeg"] == 0 and label["test/PNEUMONIA/person82_virus_154.jpeg"] == 1
    assert not t.synthetic and t.fingerprint.startswith("kermany-")


def test_subtype_variant_parses_file_names(root):
    t = load(root, "multiclass", SUBTYPE, variant="subtype")
    assert Counter(t.labels.tolist()) == {0: 14, 1: 10, 2: 7}
    label = dict(zip(t.ids, t.labels))
    assert label["train/PNEUMONIA/person1946_bacteria_4874.jpeg"] == 1
    assert label["train/PNEUMONIA/person1_virus_6.jpeg"] == 2
    assert label["val/NORMAL/NORMAL2-IM-1436-0001.jpeg"] == 0
    # the default variant of a multiclass task is subtype; names are case-insensitive, any order, aliases ok
    t2 = load(root, "multiclass", ("Viral", "NORMAL", "bacteria"))
    assert (np.asarray([("viral", "normal", "bacterial")[k] for k in t2.labels])
            == np.asarray([SUBTYPE[k] for k in t.labels])).all()


def test_patient_ids_from_file_names(root):
    t = load(root)
    patient = dict(zip(t.ids, t.patient_ids))
    assert patient["train/PNEUMONIA/person1946_bacteria_4874.jpeg"] == "1946"
    assert patient["train/PNEUMONIA/person1946_bacteria_4876.jpeg"] == "1946"
    assert patient["train/PNEUMONIA/person1_virus_6.jpeg"] == "1"
    assert patient["train/NORMAL/IM-0115-0001.jpeg"] == patient["train/NORMAL/IM-0115-0002.jpeg"] == "IM-0115"
    assert patient["train/NORMAL/NORMAL2-IM-1427-0001.jpeg"] == "NORMAL2-IM-1427"
    counts = Counter(t.patient_ids)
    assert len(counts) == 26 and counts["1946"] == 3 and counts["NORMAL2-IM-1427"] == 2


def test_grouped_kfold_keeps_patients_on_one_side(root):
    t = load(root)
    folds = plan_folds(t, SplitConfig(strategy="kfold", folds=3, val_fraction=0.2))
    assert len(folds) == 3
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(t)))  # each row is tested exactly once
    pids = np.asarray(t.patient_ids)
    for f in folds:
        assert leaked_patients(t, f) == set()
        sides = [set(pids[idx]) for idx in (f.train, f.val, f.test)]
        assert not (sides[0] & sides[2]) and not (sides[0] & sides[1]) and not (sides[1] & sides[2])
        assert len(f.train) + len(f.val) + len(f.test) == len(t)


def test_root_can_be_chest_xray_the_parent_a_kaggle_double_or_cxrbench_data(root, tmp_path, monkeypatch):
    ids = load(root).ids
    assert load(root / "chest_xray").ids == ids
    # Kaggle's archive holds a second copy in chest_xray/chest_xray: the outer one is used, once
    shutil.copytree(root / "chest_xray" / "train", root / "chest_xray" / "chest_xray" / "train")
    shutil.copytree(root / "chest_xray" / "test", root / "chest_xray" / "chest_xray" / "test")
    assert load(root).ids == ids
    monkeypatch.setenv("CXRBENCH_DATA", str(root))
    assert load(None).ids == ids


def test_mendeley_archive_with_oct_next_to_chest_xray(tmp_path):
    base = make_kermany(tmp_path / "CellData", debris=False)
    for part in ("train", "test"):
        for cls in ("CNV", "NORMAL"):  # OCT sorts before chest_xray
            shutil.copytree(base / "val" / "NORMAL", tmp_path / "CellData" / "OCT" / part / cls)
    t = load(tmp_path / "CellData")
    assert len(t) == 31 and all(not i.startswith("OCT") for i in t.ids)


@pytest.mark.parametrize("stem,folder,expected", [
    ("person1946_bacteria_4874", "pneumonia", ("1946", "bacterial")),
    ("person1_virus_6", "pneumonia", ("1", "viral")),
    ("IM-0115-0001", "normal", ("IM-0115", "normal")),
    ("NORMAL2-IM-1427-0001", "normal", ("NORMAL2-IM-1427", "normal")),
    ("NORMAL2-IM-0374-0001-0002", "normal", ("NORMAL2-IM-0374", "normal")),
    ("scan-7", "normal", ("scan", "normal")),
    ("scan_0042", "pneumonia", ("scan_0042", None)),
])
def test_parse_name(stem, folder, expected):
    assert kermany.parse_name(stem, folder) == expected


def test_missing_root_explains_where_to_get_the_data(tmp_path, monkeypatch):
    where = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as err:
        load(where, variant="binary")
    msg = str(err.value)
    for needle in ("'kermany'", str(where), "data.mendeley.com/datasets/rscbjbr9sj", "chest_xray/{train,val,test}",
                   "--set dataset.name=synthetic_cxr --set dataset.root=null", "CXRBENCH_DATA"):
        assert needle in msg
    with pytest.raises(DatasetError, match=r"dataset.root is not set and \$CXRBENCH_DATA is not set"):
        load(None)
    monkeypatch.setenv("CXRBENCH_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match="chest_xray does not exist"):
        load(None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no folder with train/"):
        load(tmp_path / "empty")


def test_bad_classes_variants_and_folders(root):
    with pytest.raises(DatasetError, match=r"expected names from \['normal', 'pneumonia'\]"):
        load(root, classes=("healthy", "sick"))
    with pytest.raises(DatasetError, match="variant 'subtype' is a multiclass task"):
        load(root, variant="subtype")
    with pytest.raises(DatasetError, match="unknown variant"):
        load(root, variant="severity")
    reversed_ = load(root, classes=("PNEUMONIA", "Normal"))
    assert (reversed_.labels == 1 - load(root).labels).all()
    for f in (root / "chest_xray" / "val" / "NORMAL").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"val/NORMAL holds no images"):
        load(root)


def test_subtype_rejects_unparseable_pneumonia_names(root):
    src = root / "chest_xray" / "train" / "PNEUMONIA" / "person1_virus_6.jpeg"
    shutil.copy(src, src.with_name("scan_0042.jpeg"))
    assert len(load(root)) == 32  # fine for the binary variant
    with pytest.raises(DatasetError, match="scan_0042.jpeg"):
        load(root, "multiclass", SUBTYPE)


def test_suite_end_to_end_with_root_override(root, tmp_path):
    suite = tiny_suite(tmp_path / "k.yaml", {"name": "kermany", "root": None},
                       {"type": "binary", "classes": ["normal", "pneumonia"]})
    out = run_suite(suite, [f"dataset.root={root}"], results_root=tmp_path / "res", device="cpu")
    (record,) = out.records
    assert out.status == "complete" and record.status == "ok" and record.n_test == 9
    splits = pd.read_csv(out.store.dir / "splits.csv")
    assert (splits.split == "test").sum() == 9 and len(splits) == 30
    assert "person14_bacteria_51.jpeg" not in " ".join(splits.sample_id)  # the truncated file was skipped


def test_subtype_suite_end_to_end_with_a_grouped_ratio_split(root, tmp_path):
    suite = tiny_suite(tmp_path / "k.yaml", {"name": "kermany", "root": str(root), "variant": "subtype"},
                       {"type": "multiclass", "classes": list(SUBTYPE)},
                       split={"strategy": "ratio", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 1})
    out = run_suite(suite, results_root=tmp_path / "res", device="cpu")
    (record,) = out.records
    splits = pd.read_csv(out.store.dir / "splits.csv", dtype=str)
    assert record.status == "ok" and record.n_test == (splits.split == "test").sum() > 0
    sides = splits.groupby("patient_id").split.nunique()
    assert (sides == 1).all()  # grouped by patient
