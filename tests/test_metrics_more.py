"""MCC, PPV/NPV, average precision, calibration and operating-point metrics against sklearn and hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from cxrbench.builtins.metrics import extra_metrics as register_extra_metrics
from cxrbench.errors import UnknownNameError
from cxrbench.metrics import bootstrap, calibration as cal, classification as cm, operating_point as op
from cxrbench.plugins import get_registry
from cxrbench.specs import Predictions
from tests.test_metrics import (BOOT_CASES, MULTI, SINGLE, _ids, _replace, assert_metrics_match, make_multilabel,
                                 make_single)

TOL = 1e-9
SPECS = {s.name: s for s in register_extra_metrics()}
PARAMETRIC = ("sensitivity_at_specificity", "specificity_at_sensitivity")
LEVELS = (0.5, 0.8, 0.9, 0.95)


def _ece_reference(conf: np.ndarray, hit: np.ndarray, n_bins: int = 15) -> float:
    """Textbook ECE over flat samples, bins (m/M, (m+1)/M] with 0 in the first."""
    total = 0.0
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        inside = (conf > lo) & (conf <= hi) if m else (conf <= hi)
        if inside.any():
            total += inside.sum() / len(conf) * abs(hit[inside].mean() - conf[inside].mean())
    return total


def _ece_of(pred: Predictions) -> float:
    if pred.task == "multilabel":
        return _ece_reference(pred.y_prob.ravel(), pred.y_true.ravel().astype(float))
    return _ece_reference(pred.y_prob.max(axis=1), (pred.y_prob.argmax(axis=1) == pred.y_true).astype(float))


def _npv(tn, fn) -> float:
    return tn / (tn + fn) if tn + fn else 0.0


def _sk_single(pred: Predictions) -> dict[str, float]:
    t, p, prob = pred.y_true, pred.y_pred, pred.y_prob
    k = prob.shape[1]
    out = {"mcc": skm.matthews_corrcoef(t, p), "ece": _ece_of(pred)}
    if pred.task == "binary":
        pos = (t == pred.positive).astype(int)
        (tn, fp), (fn, tp) = skm.confusion_matrix(pos, (p == pred.positive).astype(int), labels=[0, 1])
        out["ppv"] = skm.precision_score(t, p, pos_label=pred.positive, zero_division=0)
        out["npv"] = _npv(tn, fn)
        out["auprc"] = skm.average_precision_score(pos, prob[:, pred.positive]) if 0 < pos.sum() < len(pos) \
            else math.nan
        out["brier"] = skm.brier_score_loss(pos, prob[:, pred.positive])
    else:
        if len(np.unique(t)) == k:
            out["auprc"] = skm.average_precision_score(t, prob, average="macro")
        else:  # a class absent from y_true: sklearn refuses, we return nan (as roc_auc does)
            with pytest.raises(ValueError):
                skm.average_precision_score(t, prob, average="macro")
            out["auprc"] = math.nan
        out["brier"] = skm.brier_score_loss(t, prob, labels=list(range(k)))
    return out


def _sk_multilabel(pred: Predictions) -> dict[str, float]:
    t, p, prob = pred.y_true, pred.y_pred, pred.y_prob
    k = t.shape[1]
    mcm = skm.multilabel_confusion_matrix(t, p)
    defined = [j for j in range(k) if 0 < t[:, j].sum() < len(t)]
    return {
        "mcc": float(np.mean([skm.matthews_corrcoef(t[:, j], p[:, j]) for j in range(k)])),
        "npv": float(np.mean([_npv(c[0, 0], c[1, 0]) for c in mcm])),
        "auprc": float(np.mean([skm.average_precision_score(t[:, j], prob[:, j]) for j in defined])),
        "brier": float(np.mean([skm.brier_score_loss(t[:, j], prob[:, j], pos_label=1, labels=[0, 1])
                                for j in range(k)])),
        "ece": _ece_of(pred),
    }


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", SINGLE, ids=_ids(SINGLE))
def test_single_label_metrics_match_sklearn(case):
    assert_metrics_match(SPECS, case[1], _sk_single(case[1]))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", MULTI, ids=_ids(MULTI))
def test_multilabel_metrics_match_sklearn(case):
    assert_metrics_match(SPECS, case[1], _sk_multilabel(case[1]))


def test_all_labels_defined_auprc_is_sklearn_macro():
    pred = make_multilabel(30)
    assert cm.auprc(pred) == pytest.approx(skm.average_precision_score(pred.y_true, pred.y_prob), abs=TOL)


# --- hand-computed values ---------------------------------------------------------------------------

Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
P1 = np.array([0.9, 0.8, 0.7, 0.4, 0.6, 0.4, 0.3, 0.2, 0.1, 0.1])
HAND = Predictions(Y, np.stack([1 - P1, P1], axis=1), (P1 > 0.5).astype(int), "binary", ("neg", "pos"))


def test_hand_counted_binary_values():
    # TP=3 FN=1 FP=1 TN=5
    assert cm.mcc(HAND) == pytest.approx((3 * 5 - 1 * 1) / math.sqrt(4 * 4 * 6 * 6))
    assert cm.ppv(HAND) == pytest.approx(3 / 4)
    assert cm.npv(HAND) == pytest.approx(5 / 6)
    # ranked: + + + - {+ -} ...; AP = (1/4)(1 + 1 + 1 + 4/6), the tied 0.4 pair counted together
    assert cm.auprc(HAND) == pytest.approx((3 + 4 / 6) / 4)
    assert cal.brier(HAND) == pytest.approx(np.mean((P1 - Y) ** 2))
    constant = _replace(HAND, y_pred=np.zeros(10, dtype=int))
    assert cm.mcc(constant) == 0.0  # undefined: 0.0, as sklearn


def test_multiclass_brier_is_the_unhalved_sum_over_classes():
    prob = np.array([[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]])
    pred = Predictions(np.array([0, 1]), prob, prob.argmax(axis=1), "multiclass", ("a", "b", "c"))
    row0 = 0.3**2 + 0.2**2 + 0.1**2
    row1 = 0.2**2 + 0.8**2 + 0.6**2
    assert cal.brier(pred) == pytest.approx((row0 + row1) / 2)


def test_hand_computed_ece_and_reliability_curve_single_label():
    # confidences 0.9 (right), 0.9 (wrong), 0.65, 0.65 (both right), 0.4 (wrong)
    prob = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.65, 0.15], [0.15, 0.2, 0.65],
                     [0.3, 0.4, 0.3]])
    y = np.array([0, 2, 1, 2, 0])
    pred = Predictions(y, prob, prob.argmax(axis=1), "multiclass", ("a", "b", "c"))
    assert cal.ece(pred) == pytest.approx(2 / 5 * 0.4 + 2 / 5 * 0.35 + 1 / 5 * 0.4)
    curve = cal.reliability_curve(pred)
    np.testing.assert_allclose(curve["bin_edges"], np.arange(16) / 15)
    want_count = np.zeros(15, dtype=int)
    want_count[[5, 9, 13]] = [1, 2, 2]  # 0.4 in (5/15, 6/15], 0.65 in (9/15, 10/15], 0.9 in (13/15, 14/15]
    np.testing.assert_array_equal(curve["count"], want_count)
    np.testing.assert_allclose(curve["confidence"][[5, 9, 13]], [0.4, 0.65, 0.9])
    np.testing.assert_allclose(curve["accuracy"][[5, 9, 13]], [0.0, 1.0, 0.5])
    assert np.isnan(curve["confidence"][0]) and np.isnan(curve["accuracy"][14])


def test_hand_computed_ece_multilabel_uses_every_cell():
    prob = np.array([[0.1, 0.75], [0.1, 0.75], [0.3, 0.75]])
    y = np.array([[0, 1], [1, 1], [0, 0]])
    pred = Predictions(y, prob, (prob > 0.5).astype(int), "multilabel", ("x", "z"))
    # bins: 0.1 x2 (positive rate 1/2), 0.3 x1 (rate 0), 0.75 x3 (rate 2/3); six cells
    assert cal.ece(pred) == pytest.approx((2 * 0.4 + 1 * 0.3 + 3 * (0.75 - 2 / 3)) / 6)
    curve = cal.reliability_curve(pred, n_bins=4)  # (0, .25], (.25, .5], (.5, .75], (.75, 1]
    np.testing.assert_array_equal(curve["count"], [2, 1, 3, 0])
    np.testing.assert_allclose(curve["accuracy"][:3], [0.5, 0.0, 2 / 3])


def test_bin_edges_are_right_closed_and_zero_goes_to_the_first_bin():
    prob = np.array([[0.0, 1.0, 0.5, 0.25]])
    pred = Predictions(np.array([[0, 1, 1, 0]]), prob, prob.astype(int), "multilabel", tuple("abcd"))
    np.testing.assert_array_equal(cal.reliability_curve(pred, n_bins=4)["count"], [2, 1, 0, 1])
    with pytest.raises(ValueError):
        cal.reliability_curve(pred, n_bins=0)


@pytest.mark.parametrize("case", SINGLE[:4] + MULTI[:2], ids=_ids(SINGLE[:4] + MULTI[:2]))
def test_reliability_curve_adds_up_to_ece(case):
    pred = case[1]
    curve = cal.reliability_curve(pred)
    filled = curve["count"] > 0
    gap = np.abs(curve["accuracy"][filled] - curve["confidence"][filled])
    assert curve["count"].sum() == pred.y_prob.size if pred.task == "multilabel" else len(pred.y_true)
    assert (curve["count"][filled] * gap).sum() / curve["count"].sum() == pytest.approx(cal.ece(pred), abs=TOL)


# --- operating points -------------------------------------------------------------------------------

def _sk_operating_points(pred: Predictions, level: float) -> tuple[float, float]:
    pos = pred.y_true == pred.positive
    fpr, tpr, _ = skm.roc_curve(pos, pred.y_prob[:, pred.positive], drop_intermediate=False)
    spec = 1 - fpr
    return float(tpr[spec >= level].max()), float(spec[tpr >= level].max())


BINARY = [c for c in SINGLE if c[1].task == "binary" and 0 < (c[1].y_true == 1).mean() < 1]
BINARY += [("binary-ties", make_single(7, k=2, task="binary", ties=True))]


@pytest.mark.parametrize("case", BINARY, ids=_ids(BINARY))
def test_operating_points_match_the_sklearn_roc_curve(case):
    pred = case[1]
    reg = get_registry()
    for level in LEVELS:
        sens, spec = _sk_operating_points(pred, level)
        assert op.sensitivity_at_specificity(level)(pred) == pytest.approx(sens, abs=TOL), level
        assert op.specificity_at_sensitivity(level)(pred) == pytest.approx(spec, abs=TOL), level
        assert reg.metric(f"sensitivity_at_specificity@{level}").fn(pred) == pytest.approx(sens, abs=TOL)
        assert reg.metric(f"specificity_at_sensitivity@{level}").fn(pred) == pytest.approx(spec, abs=TOL)


def test_hand_computed_operating_points():
    # thresholds high to low: (sens, spec) = (1/4,1) (2/4,1) (3/4,1) (3/4,5/6) (1,4/6) (1,3/6) (1,2/6) (1,0)
    assert op.sensitivity_at_specificity(4 / 6)(HAND) == pytest.approx(1.0)  # the level itself qualifies
    assert op.sensitivity_at_specificity(0.7)(HAND) == pytest.approx(3 / 4)
    assert op.sensitivity_at_specificity(0.6)(HAND) == pytest.approx(1.0)
    assert op.sensitivity_at_specificity(0.99)(HAND) == pytest.approx(3 / 4)
    assert op.specificity_at_sensitivity(0.75)(HAND) == pytest.approx(1.0)  # the level itself qualifies
    assert op.specificity_at_sensitivity(0.76)(HAND) == pytest.approx(4 / 6)
    assert op.specificity_at_sensitivity(0.9)(HAND) == pytest.approx(4 / 6)
    # rates exact in binary floating point: (sens, spec) = (1/2,1) (1/2,3/4) (1,3/4) (1,1/2) (1,1/4) (1,0)
    p1 = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    exact = Predictions(np.array([1, 0, 1, 0, 0, 0]), np.stack([1 - p1, p1], axis=1), (p1 > 0.5).astype(int),
                        "binary", ("neg", "pos"))
    assert op.sensitivity_at_specificity(0.75)(exact) == 1.0  # >= level, not > level
    assert op.specificity_at_sensitivity(0.5)(exact) == 1.0
    one_class = _replace(HAND, y_true=np.zeros(10, dtype=int))
    assert math.isnan(op.sensitivity_at_specificity(0.9)(one_class))
    assert math.isnan(op.specificity_at_sensitivity(0.9)(one_class))


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.2])
def test_operating_point_level_must_lie_strictly_between_0_and_1(level):
    for name in PARAMETRIC:
        with pytest.raises(ValueError, match="between 0 and 1"):
            SPECS[name].with_param(level)


def test_parametric_metric_named_without_a_level_says_how_to_name_it():
    with pytest.raises(ValueError, match="sensitivity_at_specificity@LEVEL"):
        SPECS["sensitivity_at_specificity"].fn(HAND)
    spec = get_registry().metric("specificity_at_sensitivity@0.9")
    assert spec.name == "specificity_at_sensitivity@0.9" and spec.tasks == ("binary",)
    assert spec.fn(HAND) == pytest.approx(4 / 6) and spec.with_param is None
    with pytest.raises(UnknownNameError):
        get_registry().metric("mcc@0.9")


def test_registered_extra_metrics():
    specs = register_extra_metrics()
    assert [s.name for s in specs] == ["mcc", "ppv", "npv", "auprc", "brier", "ece", *PARAMETRIC]
    by = {s.name: s for s in specs}
    assert by["ppv"].fn is cm.precision and by["ppv"].tasks == ("binary",)
    assert by["npv"].tasks == ("binary", "multilabel")
    assert all(by[n].tasks == ("binary",) and by[n].with_param is not None for n in PARAMETRIC)
    assert {s.name for s in specs if not s.higher_is_better} == {"brier", "ece"}
    assert all(s.bootstrappable and s.description for s in specs)
    reg = get_registry()
    assert all(reg.metrics[s.name].plugin == "cxrbench.builtins.metrics" for s in specs)
    assert list(reg.metrics).index("accuracy") < list(reg.metrics).index("mcc")  # core metrics listed first


# --- bootstrap fast path ----------------------------------------------------------------------------

def _bootstrappable(task: str) -> list[tuple[str, object]]:
    out = []
    for name, spec in SPECS.items():
        if task not in spec.tasks:
            continue
        if spec.with_param is None:
            out.append((name, spec.fn))
        else:
            out += [(f"{name}@{lv}", spec.with_param(lv)) for lv in (0.8, 0.95)]
    return out


FAST_CASES = BOOT_CASES + [("binary-ties", make_single(14, n=300, k=2, task="binary", ties=True)),
                           ("multilabel-ties", make_multilabel(15, n=300, ties=True))]


@pytest.mark.parametrize("case", FAST_CASES, ids=_ids(FAST_CASES))
def test_fast_path_equals_per_resample_recomputation(case):
    pred = case[1]
    for name, fn in _bootstrappable(pred.task):
        assert hasattr(fn, "batched"), name
        fast = bootstrap.bootstrap_values(fn, pred, n_resamples=40, seed=3)
        slow = bootstrap.bootstrap_values(lambda p, f=fn: f(p), pred, n_resamples=40, seed=3)
        assert np.isfinite(fast).all(), name
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12, err_msg=name)


def test_fast_path_matches_sklearn_on_explicit_resamples():
    """Independent check of the weighted AP and Brier: sklearn on the same row draws."""
    pred = make_single(16, n=120, k=2, task="binary")
    idx = np.random.default_rng(5).integers(0, 120, size=(30, 120))
    pos, prob = pred.y_true == 1, pred.y_prob[:, 1]
    np.testing.assert_allclose(bootstrap.bootstrap_values(cm.auprc, pred, 30, seed=5),
                               [skm.average_precision_score(pos[i], prob[i]) for i in idx], atol=TOL)
    np.testing.assert_allclose(bootstrap.bootstrap_values(cal.brier, pred, 30, seed=5),
                               [skm.brier_score_loss(pos[i], prob[i]) for i in idx], atol=TOL)
    np.testing.assert_allclose(bootstrap.bootstrap_values(cm.mcc, pred, 30, seed=5),
                               [skm.matthews_corrcoef(pred.y_true[i], pred.y_pred[i]) for i in idx], atol=TOL)


@pytest.mark.parametrize("case", BOOT_CASES, ids=_ids(BOOT_CASES))
def test_bootstrap_ci_contains_the_point_estimate(case):
    pred = case[1]
    for name, fn in _bootstrappable(pred.task):
        low, high = bootstrap.bootstrap_ci(fn, pred, n_resamples=200, seed=7)
        assert low <= fn(pred) <= high, name
        assert low < high, name
