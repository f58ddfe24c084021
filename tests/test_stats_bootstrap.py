"""Cluster (patient) bootstrap and the paired bootstrap, against slow loop references and sklearn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from cxrbench.metrics import classification as C
from cxrbench.metrics.bootstrap import (
    bootstrap_ci,
    bootstrap_p_value,
    bootstrap_values,
    cluster_bootstrap,
    cluster_codes,
    paired_bootstrap,
    percentile_interval,
)
from cxrbench.specs import Predictions


def _binary(n: int, seed: int, signal: float = 0.4) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(signal * y + (1 - signal) * rng.random(n), 0, 1)
    return Predictions(y, np.stack([1 - p, p], 1), (p > 0.5).astype(int), "binary", ("neg", "pos"))


def _sk_auc(pred: Predictions) -> float:
    return float(roc_auc_score(pred.y_true, pred.y_prob[:, 1]))


def _slow_cluster_values(fn, pred: Predictions, groups: list[str], n_resamples: int, seed: int) -> np.ndarray:
    """Reference: one resample at a time, patients drawn with ``rng.integers``, their rows concatenated."""
    order: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        order.setdefault(g, []).append(i)
    members = list(order.values())
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_resamples):
        drawn = rng.integers(0, len(members), len(members))
        rows = np.concatenate([members[u] for u in drawn])
        try:
            out.append(fn(pred.subset(rows)))
        except ValueError:
            out.append(math.nan)
    return np.array(out)


def test_image_bootstrap_equals_the_row_loop_reference():
    pred = _binary(150, 0)
    rng = np.random.default_rng(7)
    ref = [accuracy_score(pred.y_true[i], pred.y_pred[i]) for i in rng.integers(0, 150, size=(300, 150))]
    np.testing.assert_allclose(bootstrap_values(C.accuracy, pred, 300, seed=7), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fn, ref", [(C.roc_auc, _sk_auc),
                                     (C.f1, lambda p: f1_score(p.y_true, p.y_pred, zero_division=0))])
def test_cluster_bootstrap_equals_slow_reference(fn, ref):
    pred = _binary(120, 1)
    rng = np.random.default_rng(2)
    groups = [f"p{g}" for g in rng.integers(0, 40, 120)]
    fast = bootstrap_values(fn, pred, 60, seed=11, groups=groups)
    slow = _slow_cluster_values(ref, pred, groups, 60, seed=11)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    # A plain (non-batched) function takes the same draws.
    np.testing.assert_allclose(bootstrap_values(ref, pred, 60, seed=11, groups=groups), slow, atol=1e-12)


def test_one_image_per_patient_is_the_image_bootstrap():
    pred = _binary(200, 3)
    ids = [f"patient-{i * 7919 % 1000}" for i in range(200)]  # unique, not sorted
    img = bootstrap_ci(C.roc_auc, pred, 500, seed=4)
    res = cluster_bootstrap(C.roc_auc, pred, ids, 500, seed=4)
    assert (res.low, res.high) == img
    assert (res.unit, res.n_units, res.n_valid) == ("patient", 200, 500)
    none = cluster_bootstrap(C.roc_auc, pred, None, 500, seed=4)
    assert (none.low, none.high, none.unit, none.n_units) == (*img, "image", 200)


def test_duplicated_images_widen_the_interval_to_the_patient_level():
    base = _binary(150, 5)
    reps = np.repeat(np.arange(150), 4)  # each patient has 4 identical images
    dup = base.subset(reps)
    groups = [f"p{i}" for i in reps]
    image = cluster_bootstrap(C.accuracy, dup, None, 1000, seed=0)
    patient = cluster_bootstrap(C.accuracy, dup, groups, 1000, seed=0)
    dedup = cluster_bootstrap(C.accuracy, base, None, 1000, seed=0)
    w_img, w_pat, w_dedup = image.high - image.low, patient.high - patient.low, dedup.high - dedup.low
    assert w_pat > 1.6 * w_img  # ~2x: sqrt(4) more variance per independent unit
    assert w_pat == pytest.approx(w_dedup, rel=0.2)  # the honest width: 150 independent patients
    assert (image.unit, image.n_units, patient.unit, patient.n_units) == ("image", 600, "patient", 150)


def test_cluster_codes_missing_ids():
    codes, n, unit = cluster_codes(["b", "", "a", "b", None, float("nan")], 6)
    assert unit == "patient" and n == 5 and codes.tolist() == [0, 1, 2, 0, 3, 4]
    codes, n, unit = cluster_codes(["", None, ""], 3)
    assert (codes.tolist(), n, unit) == ([0, 1, 2], 3, "image")
    with pytest.raises(ValueError):
        cluster_codes(["a"], 2)


def test_paired_bootstrap_uses_the_same_draws_for_both_models():
    a, b = _binary(180, 6, 0.5), _binary(180, 6, 0.2)
    b = Predictions(a.y_true, b.y_prob, b.y_pred, "binary", a.class_names)
    groups = [f"p{i // 3}" for i in range(180)]
    res = paired_bootstrap(C.roc_auc, a, b, groups, 60, seed=9)
    d = bootstrap_values(C.roc_auc, a, 60, 9, groups) - bootstrap_values(C.roc_auc, b, 60, 9, groups)
    slow = (_slow_cluster_values(_sk_auc, a, groups, 60, 9) - _slow_cluster_values(_sk_auc, b, groups, 60, 9))
    np.testing.assert_allclose(d, slow, atol=1e-12)
    assert (res.low, res.high) == percentile_interval(d)
    assert res.diff == pytest.approx(_sk_auc(a) - _sk_auc(b))
    assert res.p_value == bootstrap_p_value(d)
    assert (res.unit, res.n_units) == ("patient", 60)
    same = paired_bootstrap(C.roc_auc, a, a, groups, 200)
    assert (same.diff, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        paired_bootstrap(C.roc_auc, a, a.subset(np.arange(10)))


def test_bootstrap_p_value_hand_counts():
    assert bootstrap_p_value(np.array([1.0, 2, 3, -1])) == pytest.approx(0.8)  # k = 1: 2 * 2 / 5
    assert bootstrap_p_value(np.array([1.0, 2, 3, 4])) == pytest.approx(0.4)  # k = 0: 2 * 1 / 5, never 0
    assert bootstrap_p_value(np.array([0.0, 1, -1, np.nan])) == 1.0  # k = 2 of 3: 2 * 3 / 4, capped
    assert math.isnan(bootstrap_p_value(np.array([np.nan])))
