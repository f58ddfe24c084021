"""The built-in ``synthetic_cxr`` dataset: determinism, labels, patients, options, shortcut, learnability."""

from __future__ import annotations

import pickle
from collections import defaultdict

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cxrbench.builtins.datasets import load_synthetic, register_datasets
from cxrbench.data import synthetic as syn
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.specs import SampleTable

BINARY = ("normal", "pneumonia")
MULTI = ("normal", "lobar", "diffuse")


def load(task: str = "binary", classes: tuple[str, ...] = BINARY, **options) -> SampleTable:
    spec = next(s for s in register_datasets() if s.name == "synthetic_cxr")
    return load_dataset(spec, task, classes, None, options)


def marker_patch(img: np.ndarray) -> np.ndarray:
    """Where the shortcut tag goes: top-right corner, 3%..10% of the side in from the edges."""
    s = img.shape[0]
    lo, hi = max(1, round(0.03 * s)), max(1, round(0.03 * s)) + max(2, round(0.07 * s))
    return img[lo:hi, s - hi:s - lo]


def test_registered_spec():
    (spec,) = [s for s in register_datasets() if s.name == "synthetic_cxr"]
    assert spec.synthetic
    assert set(spec.tasks) == {"binary", "multiclass", "multilabel"}
    assert spec.load is load_synthetic


def test_table_shape_ids_and_images():
    t = load(n_samples=50)
    assert len(t) == 50 and t.synthetic and t.class_names == list(BINARY)
    assert t.ids[0] == "synth-000000" and t.ids[49] == "synth-000049" and len(set(t.ids)) == 50
    assert t.labels.shape == (50,) and set(np.unique(t.labels)) <= {0, 1}
    for size in (32, 57, 96):
        img = t.load_image(3, size)
        assert img.shape == (size, size) and img.dtype == np.uint8
        assert img.std() > 20  # real contrast, not a flat frame
    # lungs are darker than the mediastinum: mean of the lung fields vs the central column
    img = t.load_image(0, 64).astype(float)
    lungs = np.r_[img[22:36, 12:20].ravel(), img[22:36, 44:52].ravel()].mean()
    assert img[10:30, 30:34].mean() > lungs + 30
    with pytest.raises(IndexError):
        t.load_image(50, 32)
    # picklable, so data-loader workers can render images
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(t.load_image))(7, 32), t.load_image(7, 32))


def test_determinism_same_seed_and_different_seed():
    a, b, c = load(n_samples=30, seed=7), load(n_samples=30, seed=7), load(n_samples=30, seed=8)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.patient_ids == b.patient_ids and a.fingerprint == b.fingerprint
    for i in (0, 11, 29):
        np.testing.assert_array_equal(a.load_image(i, 48), b.load_image(i, 48))
        assert np.abs(a.load_image(i, 48).astype(int) - c.load_image(i, 48).astype(int)).mean() > 1
    # an image does not depend on what was rendered before it
    np.testing.assert_array_equal(a.load_image(11, 48), load(n_samples=30, seed=7).load_image(11, 48))
    assert a.fingerprint != c.fingerprint
    assert a.fingerprint != load(n_samples=30, seed=7, difficulty=0.3).fingerprint
    assert a.fingerprint != load(n_samples=30, seed=7, shortcut=True).fingerprint


def test_binary_prevalence_counts():
    t = load(n_samples=500, prevalence=0.3)
    assert abs(int(t.labels.sum()) - 150) <= 2
    t = load(n_samples=600)  # default prevalence 0.4
    assert abs(int(t.labels.sum()) - 240) <= 2


def test_multiclass_counts_and_names():
    names = ("NORMAL", "LOBAR", "DIFFUSE")
    t = load("multiclass", names, n_samples=600)
    assert t.class_names == list(names)
    np.testing.assert_allclose(np.bincount(t.labels, minlength=3), [200, 200, 200], atol=2)
    t = load("multiclass", MULTI, n_samples=1000, prevalence=[0.5, 0.3, 0.2])
    np.testing.assert_allclose(np.bincount(t.labels, minlength=3), [500, 300, 200], atol=2)


def test_multilabel_prevalence_and_custom_labels():
    t = load("multilabel", syn.CHESTXRAY14_LABELS, n_samples=2000, prevalence=0.15)
    assert t.labels.shape == (2000, 14) and set(np.unique(t.labels)) == {0, 1}
    np.testing.assert_allclose(t.labels.mean(axis=0), 0.15, atol=0.05)
    t = load("multilabel", syn.CHESTXRAY14_LABELS, n_samples=2000)  # default: 0.20 down to 0.10
    assert abs(t.labels[:, 0].mean() - 0.20) < 0.05 and abs(t.labels[:, 13].mean() - 0.10) < 0.04
    custom = ("a", "b", "c", "d", "e")
    t = load("multilabel", custom, n_samples=40, prevalence=[0.5, 0.1, 0.1, 0.1, 0.9])
    assert t.labels.shape == (40, 5) and t.class_names == list(custom)
    assert t.labels[:, 4].mean() > t.labels[:, 1].mean()
    assert t.load_image(0, 32).shape == (32, 32)


def test_label_signatures_match_names_then_fill():
    assert syn.label_signatures(["effusion", "Pleural Thickening", "foo"]) == \
        ["Effusion", "Pleural_Thickening", "Atelectasis"]
    sigs = syn.label_signatures([f"x{k}" for k in range(16)])
    assert sigs[:14] == list(syn.CHESTXRAY14_LABELS) and sigs[14:] == ["generic14", "generic15"]


def test_each_label_has_a_distinct_visible_signature():
    anat = syn._sample_anatomy(np.random.default_rng(1))
    def draw(findings):
        return syn.render(anat, findings, 64, np.random.default_rng(3), 0.0, False).astype(float)
    base = draw([])
    diffs = []
    for kind in list(syn.CHESTXRAY14_LABELS) + ["generic14", "generic21"]:
        d = draw(syn._sample_findings(kind, np.random.default_rng(5), 0.0)) - base
        assert np.abs(d).sum() > 64 * 64 * 0.15, kind  # it changes the picture
        diffs.append(d.ravel() / np.linalg.norm(d))
    corr = np.array(diffs) @ np.array(diffs).T
    np.fill_diagonal(corr, 0)
    assert corr.max() < 0.9  # no two labels draw the same thing


def test_patients_share_label_and_anatomy():
    t = load(n_samples=300, max_images_per_patient=3)
    groups = defaultdict(list)
    for i, p in enumerate(t.patient_ids):
        groups[p].append(i)
    sizes = np.array([len(g) for g in groups.values()])
    assert sizes.min() >= 1 and sizes.max() == 3 and 1.6 < sizes.mean() < 2.4
    assert all(len(set(t.labels[g])) == 1 for g in groups.values())
    # two images of one patient are closer than images of different patients
    pairs = [g[:2] for g in groups.values() if len(g) >= 2][:20]
    imgs = {i: t.load_image(i, 32).astype(float) for pair in pairs for i in pair}
    same = np.mean([np.abs(imgs[a] - imgs[b]).mean() for a, b in pairs])
    other = np.mean([np.abs(imgs[pairs[k][0]] - imgs[pairs[k + 1][1]]).mean() for k in range(len(pairs) - 1)])
    assert same < other
    single = load(n_samples=50, max_images_per_patient=1)
    assert len(set(single.patient_ids)) == 50


def test_official_split_by_patient():
    assert load(n_samples=50).official_split is None
    t = load(n_samples=1000, official_split=True)
    assert set(t.official_split) == {"train", "val", "test"}
    per_patient = defaultdict(set)
    for p, s in zip(t.patient_ids, t.official_split):
        per_patient[p].add(s)
    assert all(len(s) == 1 for s in per_patient.values())
    fractions = {s: np.mean([v == {s} for v in per_patient.values()]) for s in ("train", "val", "test")}
    assert abs(fractions["train"] - 0.7) < 0.03 and abs(fractions["val"] - 0.1) < 0.03
    assert abs(fractions["test"] - 0.2) < 0.03
    assert t.official_split == load(n_samples=1000, official_split=True).official_split


def test_unknown_and_invalid_options_are_named():
    with pytest.raises(DatasetError, match="n_sample"):
        load(n_sample=10)
    with pytest.raises(DatasetError, match="difficulty"):
        load(difficulty=1.5)
    with pytest.raises(DatasetError, match="shortcut"):
        load(shortcut="yes")
    with pytest.raises(DatasetError, match="prevalence"):
        load("multiclass", MULTI, prevalence=[0.5, 0.5])
    with pytest.raises(DatasetError, match="prevalence"):
        load("multilabel", ("a", "b"), prevalence=[0.1, 0.2, 0.3])


def test_class_count_mismatch():
    with pytest.raises(DatasetError, match="normal, pneumonia"):
        load("binary", ("a", "b", "c"))
    with pytest.raises(DatasetError, match="normal, lobar, diffuse"):
        load("multiclass", ("a", "b", "c", "d"))


def test_shortcut_marker_on_positives_only():
    t = load(n_samples=60, shortcut=True, shortcut_strength=1.0)
    for i in range(60):
        patch = marker_patch(t.load_image(i, 64))
        assert (patch.min() == 255) == bool(t.labels[i]), i
    np.testing.assert_array_equal(t.extras["shortcut_marker"], t.labels == 1)
    half = load(n_samples=400, shortcut=True, shortcut_strength=0.5)
    tagged = np.array([marker_patch(half.load_image(i, 32)).min() == 255 for i in range(400)])
    pos = half.labels == 1
    assert not tagged[~pos].any() and 0.35 < tagged[pos].mean() < 0.65
    off = load(n_samples=60)
    assert not any(marker_patch(off.load_image(i, 64)).min() == 255 for i in range(60))


def _features(t: SampleTable) -> np.ndarray:
    """32 px pixels, 4x4 max- and mean-pooled (a little translation tolerance)."""
    x = np.stack([t.load_image(i, 32) for i in range(len(t))]).astype(np.float32) / 255
    b = x.reshape(len(t), 8, 4, 8, 4)
    return np.concatenate([b.max((2, 4)).reshape(len(t), -1), b.mean((2, 4)).reshape(len(t), -1)], 1)


def _accuracy(difficulty: float, n_train: int, n_test: int) -> tuple[float, float]:
    """Test accuracy of a logistic regression trained on another seed, and the majority-class rate."""
    train = load(n_samples=n_train, seed=0, difficulty=difficulty)
    test = load(n_samples=n_test, seed=1, difficulty=difficulty)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    clf.fit(_features(train), train.labels)
    majority = np.bincount(test.labels).max() / len(test)
    return clf.score(_features(test), test.labels), majority


def test_learnable_but_not_trivial_at_default_difficulty():
    acc, majority = _accuracy(0.5, 800, 400)
    assert acc > majority + 0.10
    assert acc < 0.99


def test_easier_difficulty_is_more_learnable():
    easy, _ = _accuracy(0.1, 500, 300)
    hard, majority = _accuracy(0.9, 500, 300)
    assert easy > hard + 0.1
    assert easy > majority + 0.15
