"""chexpert on a miniature CheXpert-v1.0-small: uncertainty policies give the hand-computed label
matrices and masks, describe counts equal hand counts, bad input names file and row, and a
multilabel suite with ``uncertain: ignore`` trains end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cxrbench.data.datasets import chexpert
from cxrbench.data.datasets.miniature import tiny_suite
from cxrbench.data.datasets.miniature_chexpert import make_chexpert
from cxrbench.data.describe import describe_dataset
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.testing import check_dataset_spec

CLASSES = ("Cardiomegaly", "Lung Opacity", "Effusion", "Nodule")
# Frontal rows in order (train p1s1v1, p1s2v1, p2s1v1, p3s1v1, p3s1v2; valid p64541, p64542, p64543) and their
# raw (Cardiomegaly, Lung Opacity, Pleural Effusion) cells: u = -1.0, b = blank
RAW = [("1", "u", "u"), ("0", "b", "0"), ("u", "1", "1"), ("0", "1", "0"), ("b", "b", "b"),
       ("1", "1", "1"), ("0", "0", "0"), ("1", "1", "1")]


def hand(policy: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels and mask of CLASSES under ``policy``, from RAW by the rules (Nodule: not in CheXpert)."""
    value = {"1": (1, True), "0": (0, True), "b": (0, False),
             "u": {"ones": (1, True), "zeros": (0, True), "ignore": (0, False)}[policy]}
    labels = np.array([[value[c][0] for c in row] + [0] for row in RAW])
    mask = np.array([[value[c][1] for c in row] + [False] for row in RAW])
    return labels, mask


def load(root, classes=CLASSES, **options):
    return load_dataset(chexpert.SPEC, "multilabel", classes, root, options)


@pytest.fixture()
def root(tmp_path):
    return make_chexpert(tmp_path)


@pytest.mark.parametrize("policy", ["ones", "zeros", "ignore"])
def test_uncertainty_policies_give_the_hand_computed_labels_and_masks(root, policy):
    t = load(root, uncertain=policy)
    labels, mask = hand(policy)
    np.testing.assert_array_equal(t.labels, labels)
    np.testing.assert_array_equal(t.label_mask, mask)
    np.testing.assert_array_equal(t.label_uncertain, [[c == "u" for c in row] + [False] for row in RAW])
    assert t.class_names == list(CLASSES)
    assert any("does not annotate Nodule" in n for n in t.notes)


def test_patients_split_views_and_ids(root):
    t = load(root)
    assert t.ids[0] == "train/patient00001/study1/view1_frontal.jpg" and t.ids[-1].startswith("valid/patient64543/")
    assert t.patient_ids == ["patient00001"] * 2 + ["patient00002"] + ["patient00003"] * 2 + \
        ["patient64541", "patient64542", "patient64543"]
    assert t.official_split == ["train"] * 5 + ["test"] * 3
    assert t.extras["view"] == ["AP", "PA", "AP", "PA", "AP", "AP", "PA", "AP"]
    assert set(t.extras["source"]) == {"chexpert"} and t.extras["sex"][:3] == ["Female", "Female", "Male"]
    every = load(root, frontal_only=False)
    assert len(every) == 10 and every.extras["view"].count("Lateral") == 2
    assert every.ids[1] == "train/patient00001/study1/view2_lateral.jpg"


def test_blank_zeros_and_default_classes(root):
    t = load(root, (), uncertain="ones", blank="zeros")
    assert t.class_names[:3] == ["Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity"]
    assert "Effusion" in t.class_names and "No Finding" not in t.class_names and len(t.class_names) == 13
    assert t.label_mask is None  # nothing masked: blanks are 0, uncertain are 1
    card = t.class_names.index("Cardiomegaly")
    assert t.labels[:, card].tolist() == [1, 0, 1, 0, 0, 1, 0, 1]


def test_paths_relative_to_the_root_and_the_full_archive_name(tmp_path):
    ref = load(make_chexpert(tmp_path / "a"))
    for root in (make_chexpert(tmp_path / "b", root_relative=True), make_chexpert(tmp_path / "c", "CheXpert-v1.0")):
        t = load(root)
        assert t.ids == ref.ids
        np.testing.assert_array_equal(t.labels, ref.labels)
    t = load(tmp_path / "a")  # the parent folder holding CheXpert-v1.0-small/
    assert t.ids == ref.ids


def test_describe_counts_equal_hand_counts(root):
    d = describe_dataset("chexpert", str(root), options={"uncertain": "ignore"})
    assert d["n_images"] == 8
    card = {part: d["counts"][part]["Cardiomegaly"] for part in ("train", "test")}
    assert card == {"train": 1, "test": 2}  # known positives only: the uncertain one is masked
    assert d["uncertain"]["train"]["Cardiomegaly"] == 1 and d["uncertain"]["train"]["Effusion"] == 1
    assert d["not_annotated"]["train"]["Cardiomegaly"] == 2  # one uncertain + one blank
    assert d["not_annotated"]["train"]["Effusion"] == 2 and d["not_annotated"]["test"]["Effusion"] == 0
    assert d["counts"]["train"]["total"] == 5 and d["counts"]["test"]["total"] == 3
    assert d["metadata"] == {"view": {"AP": 5, "PA": 3}, "source": {"chexpert": 8}}
    p = d["patients"]
    assert p["n_patients"] == 6 and p["per_split"] == {"train": 3, "test": 3}
    assert p["images_per_patient_histogram"] == {"1": 4, "2": 2, "3-5": 0, "6+": 0}
    assert d["leakage"]["patients_in_several_splits"] == 0
    ones = describe_dataset("chexpert", str(root), options={"uncertain": "ones"})
    assert ones["counts"]["train"]["Cardiomegaly"] == 2 and ones["uncertain"]["train"]["Cardiomegaly"] == 1


def _rewrite(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_bad_input_names_file_row_and_column(root):
    csv = root / "train.csv"
    text = csv.read_text()
    _rewrite(csv, ",,-1.0,1.0,,1.0,-1.0,", ",,2.0,1.0,,1.0,-1.0,")  # the 4th data row = line 5
    with pytest.raises(DatasetError, match=r"train.csv line 5, column 'Cardiomegaly': unknown label value '2.0'"):
        load(root)
    csv.write_text(text.replace(",Edema,", ",Oedema,", 1))
    with pytest.raises(DatasetError, match=r"train.csv lacks column\(s\) \['Edema'\]"):
        load(root)
    csv.write_text(text.replace("Frontal/Lateral", "View", 1))
    with pytest.raises(DatasetError, match=r"train.csv lacks column\(s\) \['Frontal/Lateral'\]"):
        load(root)
    csv.write_text(text)
    (root / "train/patient00002/study1/view1_frontal.jpg").unlink()
    with pytest.raises(DatasetError, match=r"train.csv line 5: image file .*patient00002/study1/view1_frontal.jpg "
                                           r"not found[\s\S]*allow_missing"):
        load(root)
    t = load(root, allow_missing=True)
    assert len(t) == 7 and t.skipped[0][0] == "train/patient00002/study1/view1_frontal.jpg"
    with pytest.raises(DatasetError, match=r"unknown labels \['Covid'\]"):
        load(root, ("Effusion", "Covid"))
    (root / "valid.csv").unlink()
    with pytest.raises(DatasetError, match="no valid.csv"):
        load(root)


def test_contract(root):
    t = check_dataset_spec(chexpert.SPEC, root, {"uncertain": "ignore"}, classes=list(CLASSES))
    assert t.label_mask.shape == t.labels.shape


def test_ignore_suite_end_to_end(tmp_path, monkeypatch):
    from cxrbench.engine.runner import run_suite
    from cxrbench.leaderboard.table import build_boards, load_runs
    from cxrbench.results.predictions import read_predictions

    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    root = make_chexpert(tmp_path)
    classes = ["Cardiomegaly", "Lung Opacity", "Effusion", "Support Devices", "Pneumothorax", "Nodule"]
    suite = tiny_suite(tmp_path / "s.yaml", {"name": "chexpert", "root": str(root), "options": {"uncertain": "ignore"}},
                       {"type": "multilabel", "classes": classes},
                       split={"strategy": "official", "seed": 0, "val_fraction": 0.5},
                       metrics={"primary": "mean_auc", "report": ["mean_auc", "auprc", "f1"], "bootstrap": 20})
    out = run_suite(suite, results_root=tmp_path / "res", device="cpu")
    (record,) = out.records
    assert out.status == "complete" and record.status == "ok" and record.n_test == 3
    assert math.isfinite(record.metrics["mean_auc"]) and math.isfinite(record.metrics["auprc"])
    aucs = record.class_report["per_label_auc"]
    # test rows (valid.csv): Cardiomegaly/Lung Opacity/Effusion/Support Devices have both classes; Pneumothorax
    # is negative in all three (undefined) and Nodule is not annotated: both nan = not evaluated
    assert all(math.isfinite(aucs[c]) for c in classes[:4])
    assert math.isnan(aucs["Pneumothorax"]) and math.isnan(aucs["Nodule"])
    assert record.metrics["mean_auc"] == pytest.approx(np.mean([aucs[c] for c in classes[:4]]), abs=1e-9)
    stored = read_predictions(out.store.dir / record.predictions_path, classes, "multilabel").pred
    assert stored.mask is not None and not stored.mask[:, classes.index("Nodule")].any()
    (board,) = build_boards(load_runs(tmp_path / "res"))
    row = board.rows.set_index("model").loc["lenet"]
    assert row["mean_auc_mean"] == pytest.approx(record.metrics["mean_auc"])
    assert all(math.isfinite(row[c]) for c in ("mean_auc_ci_low", "mean_auc_ci_high", "auprc_mean", "f1_mean"))


def test_cli_describe_json_and_a_bad_file_exit_codes(root, capsys):
    import json

    from cxrbench.cli import main

    assert main(["datasets", "describe", "chexpert", "--root", str(root), "--option", "uncertain=ones", "--json"]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["uncertain"]["train"]["Cardiomegaly"] == 1 and desc["counts"]["train"]["Cardiomegaly"] == 2
    _rewrite(root / "valid.csv", "0.0,1.0,1.0,1.0,0.0", "0.0,1.0,x,1.0,0.0")
    assert main(["datasets", "describe", "chexpert", "--root", str(root)]) == 2
    err = capsys.readouterr()
    assert "valid.csv line 2, column 'Cardiomegaly'" in err.out + err.err
