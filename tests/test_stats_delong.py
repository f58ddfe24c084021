"""DeLong's test (fast midrank version) against the direct O(m n) definition, sklearn and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score

from cxrbench.metrics import classification as C
from cxrbench.metrics.bootstrap import bootstrap_values
from cxrbench.metrics.delong import delong_covariance, delong_predictions, delong_test, midranks, structural_components
from cxrbench.specs import Predictions


def _slow(y, scores):
    """DeLong 1988 written out: psi over every (positive, negative) pair."""
    pos, neg = [], []
    for s in scores:
        px, ny = [v for v, t in zip(s, y) if t], [v for v, t in zip(s, y) if not t]
        psi = np.array([[1.0 if x > q else 0.5 if x == q else 0.0 for q in ny] for x in px])
        pos.append(psi.mean(axis=1))
        neg.append(psi.mean(axis=0))
    v10, v01 = np.array(pos), np.array(neg)
    m, n = v10.shape[1], v01.shape[1]
    k = len(scores)
    s10 = np.array([[np.sum((v10[a] - v10[a].mean()) * (v10[b] - v10[b].mean())) / (m - 1) for b in range(k)]
                    for a in range(k)])
    s01 = np.array([[np.sum((v01[a] - v01[a].mean()) * (v01[b] - v01[b].mean())) / (n - 1) for b in range(k)]
                    for a in range(k)])
    return v10.mean(axis=1), v10, v01, s10 / m + s01 / n


def _data(n, seed, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = y * 0.8 + rng.normal(size=n)
    b = 0.6 * a + y * 0.3 + rng.normal(size=n)  # correlated with a
    if ties:
        a, b = np.round(a, 0), np.round(b, 1)
    return y, a, b


@pytest.mark.parametrize("ties", [False, True])
def test_components_and_covariance_equal_the_direct_definition(ties):
    y, a, b = _data(80, 1, ties)
    aucs, v10, v01 = structural_components(y, np.stack([a, b]))
    ref_auc, ref10, ref01, ref_cov = _slow(y, [a, b])
    np.testing.assert_allclose(aucs, ref_auc, atol=1e-12)
    np.testing.assert_allclose(aucs, [roc_auc_score(y, a), roc_auc_score(y, b)], atol=1e-12)
    np.testing.assert_allclose(v10, ref10, atol=1e-12)
    np.testing.assert_allclose(v01, ref01, atol=1e-12)
    np.testing.assert_allclose(delong_covariance(y, np.stack([a, b]))[1], ref_cov, atol=1e-14)
    res = delong_test(y, a, b)
    var = ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1]
    assert res.se == pytest.approx(math.sqrt(var))
    assert res.z == pytest.approx((ref_auc[0] - ref_auc[1]) / math.sqrt(var))
    assert res.p_value == pytest.approx(2 * norm.sf(abs(res.z)))


def test_midranks_equal_scipy():
    x = np.random.default_rng(2).integers(0, 6, 50).astype(float)
    np.testing.assert_allclose(midranks(x), rankdata(x))


def test_standard_error_agrees_with_the_paired_image_bootstrap():
    y, a, b = _data(400, 3)
    res = delong_test(y, a, b)

    def pred(s):
        p = 1 / (1 + np.exp(-s))
        return Predictions(y, np.stack([1 - p, p], 1), (p > 0.5).astype(int), "binary", ("n", "p"))

    d = bootstrap_values(C.roc_auc, pred(a), 2000, 0) - bootstrap_values(C.roc_auc, pred(b), 2000, 0)
    assert res.se == pytest.approx(np.std(d), rel=0.12)
    assert delong_predictions(pred(a), pred(b)).p_value == pytest.approx(res.p_value)


def test_identical_scores_and_errors():
    y, a, _ = _data(30, 4)
    res = delong_test(y, a, a)
    assert (res.diff, res.se, res.p_value) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="both"):
        delong_test(np.ones(5), np.arange(5.0), np.arange(5.0))
    multi = Predictions(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), "multilabel", ("a", "b"))
    with pytest.raises(ValueError, match="binary"):
        delong_predictions(multi, multi)
