"""All-pairs model comparison: paired, clustered, on shared rows, Holm-adjusted, lettered."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from cxrbench.metrics import classification as C
from cxrbench.metrics.aggregate import FoldPredictions
from cxrbench.metrics.bootstrap import paired_bootstrap
from cxrbench.metrics.compare import compare_models
from cxrbench.specs import Predictions

N = 240
Y = np.random.default_rng(0).integers(0, 2, N)
PATIENTS = [f"p{i // 3}" for i in range(N)]
ROWS = [f"r{i}" for i in range(N)]


def _model(signal: float, seed: int) -> Predictions:
    s = np.clip(signal * Y + (1 - signal) * np.random.default_rng(seed).random(N), 0, 1)
    return Predictions(Y, np.stack([1 - s, s], 1), (s > 0.5).astype(int), "binary", ("n", "p"))


def _table(pred: Predictions, idx=None, seed: int = 0) -> FoldPredictions:
    idx = np.arange(N) if idx is None else np.asarray(idx)
    return FoldPredictions(pred.subset(idx), [ROWS[i] for i in idx], [PATIENTS[i] for i in idx], seed=seed)


def test_two_models_equal_the_paired_cluster_bootstrap():
    a, b = _model(0.5, 1), _model(0.3, 2)
    rev = np.arange(N)[::-1]  # b's CSV in another row order: aligned by row id
    res = compare_models({"A": [_table(a)], "B": [_table(b, rev)]}, C.roc_auc, n_resamples=300, seed=3)
    ref = paired_bootstrap(C.roc_auc, a, b, PATIENTS, 300, seed=3)
    p = res.pair("A", "B")
    assert (p.diff, p.low, p.high, p.p_value) == pytest.approx((ref.diff, ref.low, ref.high, ref.p_value), abs=1e-12)
    assert (p.unit, p.n_units, p.n_rows, p.n_seeds) == ("patient", 80, N, 1)
    assert p.p_adjusted == p.p_value  # a family of one
    flipped = res.pair("B", "A")
    assert (flipped.diff, flipped.low, flipped.high) == pytest.approx((-p.diff, -p.high, -p.low))


def test_pairs_use_only_shared_rows():
    a, b = _model(0.5, 1), _model(0.3, 2)
    some = np.arange(0, N, 2)[:100]  # B failed on part of the test set
    res = compare_models({"A": [_table(a)], "B": [_table(b, some)]}, C.accuracy, n_resamples=200, seed=1)
    ref = paired_bootstrap(C.accuracy, a.subset(some), b.subset(some), [PATIENTS[i] for i in some], 200, seed=1)
    p = res.pair("A", "B")
    assert (p.diff, p.low, p.high, p.p_value) == pytest.approx((ref.diff, ref.low, ref.high, ref.p_value), abs=1e-12)
    assert p.n_rows == 100 and p.n_units == ref.n_units


def test_family_is_holm_adjusted_and_lettered():
    models = {"weak": [_table(_model(0.05, 5))], "strong": [_table(_model(0.6, 3))],
              "strong2": [_table(_model(0.6, 4))], "mid": [_table(_model(0.3, 6))]}
    res = compare_models(models, C.roc_auc, n_resamples=400)
    assert res.order[0] in ("strong", "strong2") and res.order[-1] == "weak"
    raw = [p.p_value for p in res.pairs]
    np.testing.assert_allclose([p.p_adjusted for p in res.pairs], multipletests(raw, method="holm")[1])
    assert all(p.different == (p.p_adjusted < 0.05) for p in res.pairs)
    assert not res.pair("strong", "strong2").different and res.pair("strong", "weak").different
    assert res.letters[res.order[0]] == "a" and res.letters["weak"] != res.letters["strong"]
    assert set(res.letters["strong"]) & set(res.letters["strong2"])
    assert "Holm over 6 pairs" in res.method
    top = res.p_vs_top()
    assert math.isnan(top[res.order[0]]) and top["weak"] == res.pair(res.order[0], "weak").p_value
    bh = compare_models(models, C.roc_auc, n_resamples=400, adjust="bh")
    np.testing.assert_allclose([p.p_adjusted for p in bh.pairs], multipletests(raw, method="fdr_bh")[1])


def test_seeds_are_paired_and_unshared_seeds_dropped():
    a = [_table(_model(0.5, 10 + s), seed=s) for s in range(3)]
    b = [_table(_model(0.45, 20 + s), seed=s) for s in (0, 1)]
    res = compare_models({"A": a, "B": b}, C.roc_auc, n_resamples=200, seed=2)
    p = res.pair("A", "B")
    assert p.n_seeds == 2
    ours = np.mean([C.roc_auc(t.pred) for t in a[:2]]) - np.mean([C.roc_auc(t.pred) for t in b])
    assert p.diff == pytest.approx(ours)
    assert p.low < p.diff < p.high


def test_lower_is_better_ranks_ascending_and_disjoint_models_get_nan():
    a, b = _model(0.5, 1), _model(0.3, 2)
    res = compare_models({"A": [_table(a)], "B": [_table(b)]}, C.accuracy, higher_is_better=False, n_resamples=50)
    assert res.order == ["B", "A"]
    none = compare_models({"A": [_table(a, range(10))], "B": [_table(b, range(10, 20))]}, C.accuracy,
                          n_resamples=50)
    p = none.pairs[0]
    assert math.isnan(p.p_value) and math.isnan(p.p_adjusted) and not p.different
    assert set(none.letters.values()) == {"a"}


def test_delong_cross_check_is_on_the_shared_rows():
    """The DeLong p beside a binary AUC pair equals DeLong's test on the rows both models scored
    (b's CSV in another row order), whose AUC difference is the pair's."""
    from cxrbench.metrics.delong import delong_test

    a, b = _model(0.5, 1), _model(0.3, 2)
    keep = np.arange(0, N, 2)
    res = compare_models({"A": [_table(a)], "B": [_table(b, keep[::-1])]}, C.roc_auc, n_resamples=50, delong=True)
    ref = delong_test(Y[keep] == 1, a.y_prob[keep, 1], b.y_prob[keep, 1])
    p = res.pair("A", "B")
    assert p.delong_p == pytest.approx(ref.p_value, abs=1e-12)
    assert p.diff == pytest.approx(ref.diff, abs=1e-12)
    assert "DeLong" in res.method
    assert math.isnan(compare_models({"A": [_table(a)], "B": [_table(b)]}, C.roc_auc, n_resamples=10).pairs[0].delong_p)
