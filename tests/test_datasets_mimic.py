"""mimic_cxr on a miniature MIMIC-CXR-JPG 2.x (the four CSVs, .csv.gz as shipped, files/pXX/pSUBJECT/sSTUDY/):
per-study labels joined to every image, the shared uncertainty policy, views, the official split,
describe counts, and bad input naming file and row."""

from __future__ import annotations

import numpy as np
import pytest

from cxrbench.data.datasets import mimic_cxr
from cxrbench.data.datasets.miniature_chexpert import MIMIC_IMAGES, make_mimic_cxr, mimic_path
from cxrbench.data.describe import describe_dataset
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.testing import check_dataset_spec

CLASSES = ("Atelectasis", "Cardiomegaly", "Effusion", "Pneumonia", "Nodule")
KEPT = [0, 2, 3, 4]  # MIMIC_IMAGES rows left by views [PA, AP] and a label row for the study
# raw cells of the kept images' studies for (Atelectasis, Cardiomegaly, Pleural Effusion, Pneumonia)
RAW = [("b", "b", "b", "b"),  # s50414267: only No Finding = 1.0
       ("1", "u", "1", "u"),  # s53189527
       ("b", "1", "u", "0"),  # s57375967
       ("0", "b", "b", "1")]  # s51000001


def hand(policy: str) -> tuple[np.ndarray, np.ndarray]:
    value = {"1": (1, True), "0": (0, True), "b": (0, False),
             "u": {"ones": (1, True), "zeros": (0, True), "ignore": (0, False)}[policy]}
    return (np.array([[value[c][0] for c in row] + [0] for row in RAW]),
            np.array([[value[c][1] for c in row] + [False] for row in RAW]))


def load(root, classes=CLASSES, **options):
    return load_dataset(mimic_cxr.SPEC, "multilabel", classes, root, options)


@pytest.mark.parametrize("policy", ["ones", "zeros", "ignore"])
def test_policies_labels_per_study_and_masks(tmp_path, policy):
    t = load(make_mimic_cxr(tmp_path), uncertain=policy)
    labels, mask = hand(policy)
    np.testing.assert_array_equal(t.labels, labels)
    np.testing.assert_array_equal(t.label_mask, mask)
    np.testing.assert_array_equal(t.label_uncertain, [[c == "u" for c in row] + [False] for row in RAW])


def test_ids_patients_split_views_and_skipped(tmp_path):
    root = make_mimic_cxr(tmp_path)
    t = load(root)
    assert t.ids == [mimic_path(*MIMIC_IMAGES[i][:3]) for i in KEPT]
    assert t.ids[0] == "files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg"
    assert t.patient_ids == ["10000032", "10000032", "10000764", "11000011"]
    assert t.official_split == ["train", "train", "val", "test"]
    assert t.extras["view"] == ["PA", "AP", "AP", "PA"] and set(t.extras["source"]) == {"mimic_cxr"}
    assert t.extras["study_id"] == ["50414267", "53189527", "57375967", "51000001"]
    (row, reason), = t.skipped  # study s52000002 ships no label row
    assert row.endswith("cccccccc-11111111-22222222-33333333-44444444.jpg")
    assert "metadata.csv.gz line 8" in reason and "s52000002" in reason
    assert len(load(root, views=None)) == 6  # the LATERAL image and the one without a ViewPosition too
    lateral = load(root, views=["lateral"])
    assert lateral.ids == [mimic_path(*MIMIC_IMAGES[1][:3])]


def test_negbio_labeler(tmp_path):
    t = load(make_mimic_cxr(tmp_path), labeler="negbio")
    np.testing.assert_array_equal(t.labels[1], [1, 0, 1, 1, 0])  # s53189527 in -negbio.csv: 1.0, blank, 1.0, 1.0
    np.testing.assert_array_equal(t.label_mask[1], [True, False, True, True, False])


def test_describe_counts_equal_hand_counts(tmp_path):
    d = describe_dataset("mimic_cxr", str(make_mimic_cxr(tmp_path)), options={"uncertain": "ignore"})
    assert d["n_images"] == 4
    c = d["counts"]
    assert [c[p]["total"] for p in ("train", "val", "test")] == [2, 1, 1]
    assert c["train"]["Cardiomegaly"] == 0 and c["val"]["Cardiomegaly"] == 1  # the train one is uncertain
    assert d["uncertain"]["train"]["Cardiomegaly"] == 1 and d["uncertain"]["val"]["Effusion"] == 1
    assert d["not_annotated"]["train"]["Cardiomegaly"] == 2 and d["not_annotated"]["test"]["Effusion"] == 1
    assert d["metadata"] == {"view": {"PA": 2, "AP": 2}, "source": {"mimic_cxr": 4}}
    assert d["patients"]["n_patients"] == 3 and d["patients"]["per_split"] == {"train": 1, "val": 1, "test": 1}
    assert d["patients"]["images_per_patient"]["max"] == 2
    assert len(d["skipped_rows"]) == 1


def _rewrite(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_bad_input_names_file_and_row(tmp_path):
    root = make_mimic_cxr(tmp_path, gz=False)
    labels = root / "mimic-cxr-2.0.0-chexpert.csv"
    text = labels.read_text()
    _rewrite(labels, "1.0,-1.0,,0.0", "1.0,2.0,,0.0")  # s53189527 = data row 2 = line 3
    with pytest.raises(DatasetError, match=r"chexpert.csv line 3, column 'Cardiomegaly': unknown label value '2.0'"):
        load(root)
    labels.write_text(text.replace(",Edema,", ",Oedema,"))
    with pytest.raises(DatasetError, match=r"chexpert.csv lacks column\(s\) \['Edema'\]"):
        load(root)
    labels.write_text(text)
    meta = root / "mimic-cxr-2.0.0-metadata.csv"
    meta_text = meta.read_text()
    meta.write_text(meta_text.replace("ViewPosition", "View", 1))
    with pytest.raises(DatasetError, match=r"metadata.csv lacks column\(s\) \['ViewPosition'\]"):
        load(root)
    meta.write_text(meta_text)
    split = root / "mimic-cxr-2.0.0-split.csv"
    split_text = split.read_text()
    _rewrite(split, ",validate", ",valid")
    with pytest.raises(DatasetError, match=r"split.csv line 5: split 'valid' is not one of"):
        load(root)
    split.write_text("\n".join(line for line in split_text.splitlines() if "096052b7" not in line) + "\n")
    with pytest.raises(DatasetError, match=r"metadata.csv line 5: dicom_id 096052b7.* is not in .*split.csv"):
        load(root)
    split.write_text(split_text)
    (root / mimic_path(*MIMIC_IMAGES[2][:3])).unlink()
    with pytest.raises(DatasetError, match=r"metadata.csv line 4: image file .*2a2277a9.*not found[\s\S]*allow_missing"):
        load(root)
    t = load(root, allow_missing=True)
    assert len(t) == 3 and any("line 4" in r for _, r in t.skipped)
    (root / "mimic-cxr-2.0.0-split.csv").unlink()
    with pytest.raises(DatasetError, match=r"no mimic-cxr-2.0.0-split.csv"):
        load(root)


def test_contract(tmp_path):
    t = check_dataset_spec(mimic_cxr.SPEC, make_mimic_cxr(tmp_path), {"uncertain": "zeros"}, classes=list(CLASSES))
    assert t.label_mask is not None and not t.label_mask[:, -1].any()


def test_chestxray14_to_chexpert_and_mimic_external_labels_they_lack_are_not_evaluated(tmp_path, monkeypatch):
    """The cross-dataset shape: train on ChestX-ray14, test on CheXpert valid and MIMIC-CXR; a suite label
    an external archive lacks (Infiltration) is masked there, never scored as negative."""
    import math

    from cxrbench.data.datasets.miniature import make_chestxray14, tiny_suite
    from cxrbench.data.datasets.miniature_chexpert import make_chexpert
    from cxrbench.engine.runner import run_suite
    from cxrbench.results.predictions import read_predictions

    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    classes = ["Cardiomegaly", "Effusion", "Atelectasis", "Infiltration"]
    same = {c: c for c in classes}
    external = [
        {"name": "chexpert", "dataset": {"name": "chexpert", "root": str(make_chexpert(tmp_path)),
                                         "options": {"uncertain": "ignore"}}, "classes": classes, "label_map": same},
        {"name": "mimic", "dataset": {"name": "mimic_cxr", "root": str(make_mimic_cxr(tmp_path / "mimic")),
                                      "options": {"uncertain": "zeros"}}, "classes": classes, "split": "all",
         "label_map": same},
    ]
    suite = tiny_suite(tmp_path / "s.yaml", {"name": "chestxray14", "root": str(make_chestxray14(tmp_path / "nih"))},
                       {"type": "multilabel", "classes": classes},
                       split={"strategy": "official", "val_fraction": 0.25}, external_test=external,
                       metrics={"primary": "mean_auc", "report": ["mean_auc"], "bootstrap": 10})
    out = run_suite(suite, results_root=tmp_path / "res", device="cpu")
    record = next(r for r in out.records if r.model == "lenet")
    assert out.status == "complete" and record.status == "ok"
    chex = record.external["chexpert"]
    assert chex["n"] == 3 and math.isfinite(chex["metrics"]["mean_auc"])  # Cardiomegaly, Effusion: both classes
    stored = read_predictions(out.store.dir / chex["predictions_path"], classes, "multilabel").pred
    assert not stored.mask[:, 3].any() and stored.mask[:, :2].all()  # Infiltration: not evaluated
    mimic = read_predictions(out.store.dir / record.external["mimic"]["predictions_path"], classes, "multilabel").pred
    np.testing.assert_array_equal(mimic.mask[:, :3], np.array(hand("zeros")[1])[:, [1, 2, 0]])
    np.testing.assert_array_equal(mimic.y_true[:, :3], np.array(hand("zeros")[0])[:, [1, 2, 0]])
