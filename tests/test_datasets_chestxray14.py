"""chestxray14 (NIH) on a miniature copy: multi-hot labels, patients, official split, missing files, a
14-label multilabel suite end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrbench.data.datasets import chestxray14
from cxrbench.data.datasets.miniature import make_chestxray14, tiny_suite
from cxrbench.data.loading import load_dataset
from cxrbench.engine.runner import run_suite
from cxrbench.errors import DatasetError

FINDINGS = chestxray14.FINDINGS


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))


def load(root, classes=FINDINGS, **options):
    return load_dataset(chestxray14.SPEC, "multilabel", classes, root, options)


def test_multi_hot_labels_patients_and_official_split(tmp_path):
    root = make_chestxray14(tmp_path / "nih")
    t = load(root)
    assert len(t) == 25 and t.labels.shape == (25, 14)
    row = {i.rsplit("/", 1)[1]: (lab, p, s) for i, lab, p, s in zip(t.ids, t.labels, t.patient_ids, t.official_split)}
    lab, patient, split = row["00000001_002.png"]
    assert [FINDINGS[k] for k in np.flatnonzero(lab)] == ["Cardiomegaly", "Effusion"]
    assert patient == "1" and split == "train"
    assert row["00000002_000.png"][0].sum() == 0  # No Finding
    assert [FINDINGS[k] for k in np.flatnonzero(row["00000007_000.png"][0])] == ["Pneumothorax", "Pleural_Thickening"]
    assert row["00000003_001.png"][1:] == ("3", "test")
    assert t.labels.sum(axis=0).tolist() == [2, 4, 4, 3, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2]
    assert sorted(t.official_split.count(s) for s in ("train", "test")) == [8, 17]
    assert len(set(t.patient_ids)) == 20
    assert t.ids[0] == "images_001/images/00000001_000.png"


def test_a_subset_of_labels_in_the_suite_order(tmp_path):
    root = make_chestxray14(tmp_path / "nih")
    full = load(root)
    t = load(root, ("effusion", "CARDIOMEGALY", "pleural thickening"))
    cols = [FINDINGS.index(n) for n in ("Effusion", "Cardiomegaly", "Pleural_Thickening")]
    np.testing.assert_array_equal(t.labels, full.labels[:, cols])
    with pytest.raises(DatasetError, match="unknown labels.*Covid"):
        load(root, ("Effusion", "Covid"))


def test_missing_images_fail_or_are_skipped_and_listed(tmp_path):
    root = make_chestxray14(tmp_path / "nih", missing=2)
    with pytest.raises(DatasetError) as err:
        load(root)
    assert "2 row(s)" in str(err.value) and "00000019_000.png" in str(err.value) and "allow_missing" in str(err.value)
    t = load(root, allow_missing=True)
    assert len(t) == 23
    skipped = t.skipped
    assert [s[0] for s in skipped] == ["00000019_000.png", "00000020_000.png"]
    assert "line 25" in skipped[0][1]  # CSV line of the row (header is line 1)


def test_bad_csv_rows_and_split_lists(tmp_path):
    root = make_chestxray14(tmp_path / "nih")
    csv = root / "Data_Entry_2017_v2020.csv"
    text = csv.read_text()
    csv.write_text(text.replace("00000010_000.png,Fibrosis", "00000010_000.png,Fibrosis|Covid"))
    with pytest.raises(DatasetError, match=r"line 15 \(00000010_000.png\): unknown finding 'Covid'"):
        load(root)
    csv.write_text(text)
    with (root / "test_list.txt").open("a") as f:
        f.write("00009999_000.png\n")
    with pytest.raises(DatasetError, match="00009999_000.png"):
        load(root)
    (root / "test_list.txt").unlink()
    with pytest.raises(DatasetError, match="one official split list"):
        load(root)
    (root / "train_val_list.txt").unlink()
    assert load(root).official_split is None  # no lists: no official split


def test_missing_root_and_csv(tmp_path):
    with pytest.raises(DatasetError, match="nihcc.app.box.com") as err:
        load(tmp_path / "none")
    assert "Data_Entry_2017" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no Data_Entry_2017\*.csv"):
        load(tmp_path / "empty")


def test_fourteen_label_suite_end_to_end(tmp_path):
    root = make_chestxray14(tmp_path / "nih")
    suite = tiny_suite(tmp_path / "c.yaml", {"name": "chestxray14", "root": str(root)},
                       {"type": "multilabel", "classes": list(FINDINGS)},
                       split={"strategy": "official", "val_fraction": 0.25})
    out = run_suite(suite, results_root=tmp_path / "res", device="cpu")
    (record,) = out.records
    assert out.status == "complete" and record.status == "ok" and record.n_test == 8
    bad = json.loads((out.store.dir / "run.json").read_text())["dataset"]["bad_images"]
    assert len(bad) == 1 and bad[0]["id"].endswith("00000020_000.png") and "images_001" in bad[0]["reason"]


def test_vocabulary_classes_it_lacks_are_masked_not_negative(tmp_path):
    root = make_chestxray14(tmp_path / "nih")
    full = load(root)
    t = load(root, ("Effusion", "Lung Opacity", "infiltrate"))
    np.testing.assert_array_equal(t.labels[:, 0], full.labels[:, FINDINGS.index("Effusion")])
    np.testing.assert_array_equal(t.labels[:, 2], full.labels[:, FINDINGS.index("Infiltration")])
    assert t.label_mask[:, [0, 2]].all() and not t.label_mask[:, 1].any() and t.labels[:, 1].sum() == 0
    assert any("does not annotate Lung Opacity" in n for n in t.notes)
    assert full.label_mask is None and set(full.extras["view"]) == {"PA"}
