"""Validation-fitted decision thresholds on hand-made cases and against sklearn's ROC curve."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from cxrbench.metrics.thresholds import apply_threshold, fit_threshold, fit_thresholds_per_label

# high to low: 0.9(+) 0.6(+) 0.5(-) 0.45(+) 0.3(-) 0.2(-) 0.1(-); P=3, N=4
# Youden J = sens - fpr: 1/3, 2/3, 2/3-1/4, 1-1/4, 1-2/4, 1-3/4, 0 -> unique max 3/4 at 0.45
Y = np.array([0, 0, 0, 1, 0, 1, 1])
P = np.array([0.1, 0.2, 0.3, 0.45, 0.5, 0.6, 0.9])


def _rates(y, prob, t) -> tuple[float, float]:
    pred = apply_threshold(prob, t)
    return (pred[y == 1] == 1).mean(), (pred[y == 0] == 0).mean()


def test_fixed_threshold():
    assert fit_threshold("fixed", Y, P) == 0.5
    assert fit_threshold("fixed", Y, P, level=0.3) == 0.3
    with pytest.raises(ValueError):
        fit_threshold("fixed", Y, P, level=1.5)


def test_youden_hand_computed():
    t = fit_threshold("youden", Y, P)
    assert t == 0.45
    assert _rates(Y, P, t) == (1.0, 0.75)


def test_youden_ties_go_to_the_threshold_closest_to_half():
    # high to low: 0.9(+) 0.8(-) 0.7(+) 0.4(-) 0.35(+) 0.1(-); J = 1/3, 0, 1/3, 0, 1/3, 0
    y = np.array([1, 0, 1, 0, 1, 0])
    prob = np.array([0.9, 0.8, 0.7, 0.4, 0.35, 0.1])
    assert fit_threshold("youden", y, prob) == 0.35
    # 0.6(+) 0.55(-) 0.4(+) 0.3(-): J = 1/2 at 0.6 and at 0.4, equally far from 0.5 -> the higher
    assert fit_threshold("youden", np.array([1, 0, 1, 0]), np.array([0.6, 0.55, 0.4, 0.3])) == 0.6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_youden_reaches_the_sklearn_roc_maximum(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 150)
    prob = 1 / (1 + np.exp(-(rng.normal(size=150) + 1.2 * (2 * y - 1))))
    fpr, tpr, thr = skm.roc_curve(y, prob)
    t = fit_threshold("youden", y, prob)
    sens, spec = _rates(y, prob, t)
    assert sens + spec - 1 == pytest.approx((tpr - fpr).max(), abs=1e-12)
    assert t in thr  # an observed score, as roc_curve reports


def test_sensitivity_rule_hand_computed():
    # sensitivities at 0.9, 0.6, 0.5, 0.45: 1/3, 2/3, 2/3, 1
    assert fit_threshold("sensitivity", Y, P, level=1 / 3) == 0.9
    assert fit_threshold("sensitivity", Y, P, level=2 / 3) == 0.6  # the highest of 0.6 and 0.5
    assert fit_threshold("sensitivity", Y, P, level=0.7) == 0.45
    assert fit_threshold("sensitivity", Y, P, level=1.0) == 0.45


@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95])
def test_sensitivity_rule_reaches_the_level_with_the_highest_threshold(level):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    prob = np.round(1 / (1 + np.exp(-(rng.normal(size=200) + (2 * y - 1)))), 2)  # with ties
    t = fit_threshold("sensitivity", y, prob, level=level)
    assert _rates(y, prob, t)[0] >= level
    higher = np.unique(prob[prob > t])
    if higher.size:  # the next observed score up misses the level
        assert _rates(y, prob, higher.min())[0] < level


def test_apply_threshold_is_inclusive_and_broadcasts_per_label():
    np.testing.assert_array_equal(apply_threshold(np.array([0.2, 0.5, 0.7]), 0.5), [0, 1, 1])
    prob = np.array([[0.2, 0.6], [0.4, 0.3]])
    got = apply_threshold(prob, np.array([0.3, 0.6]))
    assert got.dtype.kind == "i"
    np.testing.assert_array_equal(got, [[0, 1], [1, 0]])


def test_per_label_fitting_applies_the_rule_to_each_column():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, (80, 3))
    y[:, 1] = 0  # no positives: neither youden nor sensitivity can be fitted
    y[:, 2] = 1  # positives only: sensitivity can, youden cannot
    prob = rng.random((80, 3))
    got = fit_thresholds_per_label("youden", y, prob)
    assert got.shape == (3,)
    assert got[0] == fit_threshold("youden", y[:, 0], prob[:, 0]) and got[1] == got[2] == 0.5
    got = fit_thresholds_per_label("sensitivity", y, prob, level=0.9, fallback=0.7)
    assert got[0] == fit_threshold("sensitivity", y[:, 0], prob[:, 0], level=0.9)
    assert got[1] == 0.7 and got[2] == fit_threshold("sensitivity", y[:, 2], prob[:, 2], level=0.9)
    np.testing.assert_array_equal(fit_thresholds_per_label("fixed", y, prob, level=0.4), [0.4] * 3)
    with pytest.raises(ValueError, match="both classes"):
        fit_thresholds_per_label("youden", y, prob, fallback=None)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown threshold rule"):
        fit_threshold("f1", Y, P)
    with pytest.raises(ValueError, match="level"):
        fit_threshold("sensitivity", Y, P)
    with pytest.raises(ValueError, match="level"):
        fit_threshold("sensitivity", Y, P, level=0.0)
    with pytest.raises(ValueError, match="same length"):
        fit_threshold("youden", Y, P[:-1])
    with pytest.raises(ValueError, match="0/1"):
        fit_threshold("youden", Y + 1, P)
    with pytest.raises(ValueError, match="both classes"):
        fit_threshold("youden", np.ones(7, dtype=int), P)
    with pytest.raises(ValueError, match="positive"):
        fit_threshold("sensitivity", np.zeros(7, dtype=int), P, level=0.9)
    with pytest.raises(ValueError, match="same shape"):
        fit_thresholds_per_label("youden", Y, P)


def test_specificity_rule_hand_computed():
    # specificities at 0.9, 0.6, 0.5, 0.45, 0.3, 0.2, 0.1: 1, 1, 3/4, 3/4, 2/4, 1/4, 0
    assert fit_threshold("specificity", Y, P, level=1.0) == 0.6  # the lowest of 0.9 and 0.6
    assert fit_threshold("specificity", Y, P, level=0.75) == 0.45
    assert fit_threshold("specificity", Y, P, level=0.6) == 0.45
    assert fit_threshold("specificity", Y, P, level=0.5) == 0.3
    assert fit_threshold("specificity", Y, P, level=0.1) == 0.2
    # a negative holds the highest score: no observed score reaches specificity 1
    t = fit_threshold("specificity", np.array([0, 1]), np.array([0.9, 0.4]), level=1.0)
    assert 0.9 < t < 0.9 + 1e-12
    np.testing.assert_array_equal(apply_threshold(np.array([0.9, 0.4]), t), [0, 0])


@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95])
def test_specificity_rule_reaches_the_level_with_the_lowest_threshold(level):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 200)
    prob = np.round(1 / (1 + np.exp(-(rng.normal(size=200) + (2 * y - 1)))), 2)  # with ties
    t = fit_threshold("specificity", y, prob, level=level)
    assert _rates(y, prob, t)[1] >= level
    lower = np.unique(prob[prob < t])
    if lower.size:  # the next observed score down misses the level
        assert _rates(y, prob, lower.max())[1] < level
    fpr, _, thr = skm.roc_curve(y, prob, drop_intermediate=False)
    assert t == thr[np.flatnonzero(1 - fpr >= level)[-1]]  # sklearn's ROC points give the same threshold


def test_specificity_rule_needs_negatives_and_a_level():
    with pytest.raises(ValueError, match="negative"):
        fit_threshold("specificity", np.ones(7, dtype=int), P, level=0.9)
    with pytest.raises(ValueError, match="level"):
        fit_threshold("specificity", Y, P)
    y = np.array([[1, 0], [1, 1], [1, 0]])
    prob = np.array([[0.9, 0.2], [0.8, 0.7], [0.1, 0.3]])
    got = fit_thresholds_per_label("specificity", y, prob, level=1.0, fallback=0.4)
    assert got[0] == 0.4 and got[1] == 0.7  # label 0 has no negatives: fallback
