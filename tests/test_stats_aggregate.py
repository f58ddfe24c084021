"""Aggregation over folds and seeds: pooled out-of-fold estimates and the two-level bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score, roc_auc_score

from cxrbench.metrics import classification as C
from cxrbench.metrics.aggregate import FoldPredictions, aggregate, describe_method, pool_by_seed
from cxrbench.metrics.bootstrap import cluster_bootstrap
from cxrbench.specs import Predictions


def _binary(n: int, seed: int, signal: float = 0.4) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(signal * y + (1 - signal) * rng.random(n), 0, 1)
    return Predictions(y, np.stack([1 - p, p], 1), (p > 0.5).astype(int), "binary", ("neg", "pos"))


def _kfold(pred: Predictions, patients: list[str] | None, k: int, seed: int = 0) -> list[FoldPredictions]:
    """Split rows into k disjoint test folds (by patient when given), returned in shuffled order."""
    n = len(pred.y_true)
    rng = np.random.default_rng(100 + seed)
    units = sorted(set(patients)) if patients else list(range(n))
    fold_of = dict(zip(units, rng.permutation(len(units)) % k))
    fold = np.array([fold_of[patients[i] if patients else i] for i in range(n)])
    out = []
    for f in rng.permutation(k):
        idx = np.flatnonzero(fold == f)
        out.append(FoldPredictions(pred.subset(idx), [f"r{i}" for i in idx],
                                   [patients[i] for i in idx] if patients else None, int(f), seed))
    return out


def test_pooled_kfold_point_equals_sklearn_on_concatenated_predictions():
    pred = _binary(200, 0)
    tables = _kfold(pred, None, 5)
    cat = np.concatenate([t.pred.y_true for t in tables]), np.concatenate([t.pred.y_prob[:, 1] for t in tables])
    agg = aggregate(tables, C.roc_auc, n_resamples=200)
    assert agg.point == pytest.approx(roc_auc_score(*cat), abs=1e-12)
    per_fold = [f1_score(t.pred.y_true, t.pred.y_pred) for t in tables]
    f1agg = aggregate(tables, C.f1, n_resamples=50)
    assert f1agg.fold_mean == pytest.approx(np.mean(per_fold))
    assert f1agg.fold_sd == pytest.approx(np.std(per_fold, ddof=1))
    assert (agg.n_folds, agg.n_seeds, agg.unit, agg.n_units) == (5, 1, "image", 200)


@pytest.mark.parametrize("with_patients", [False, True])
def test_one_seed_equals_the_cluster_bootstrap_of_the_pooled_table(with_patients):
    pred = _binary(180, 1)
    patients = [f"p{i // 3}" for i in range(180)] if with_patients else None
    tables = _kfold(pred, patients, 4)
    pooled = pool_by_seed(tables)[0]
    ref = cluster_bootstrap(C.roc_auc, pooled.pred, pooled.patient_ids if with_patients else None, 300, seed=5)
    agg = aggregate(tables, C.roc_auc, 300, seed=5)
    assert (agg.low, agg.high, agg.unit, agg.n_units) == (ref.low, ref.high, ref.unit, ref.n_units)
    assert pooled.row_ids == [r for t in sorted(tables, key=lambda t: t.fold) for r in t.row_ids]


def test_two_level_bootstrap_equals_slow_reference():
    n, patients = 90, [f"p{i // 2}" for i in range(90)]
    base = _binary(n, 2)
    tables, preds = [], []
    for s in range(3):  # same test rows, a different model per seed
        p = _binary(n, 10 + s, signal=0.2 + 0.15 * s)
        p = Predictions(base.y_true, p.y_prob, p.y_pred, "binary", base.class_names)
        preds.append(p)
        tables += _kfold(p, patients, 3, seed=s)
    agg = aggregate(tables, C.roc_auc, 50, seed=7)
    # Reference: resample by resample; patients drawn once, shared by the drawn seeds.
    pooled = pool_by_seed(tables)
    members: dict[str, list[int]] = {}
    for i, pid in enumerate(pooled[0].patient_ids):
        members.setdefault(pid, []).append(i)
    order = list(members)
    rng_u, rng_s = np.random.default_rng(7), np.random.default_rng([7, 1])
    where = [{pid: [j for j, q in enumerate(ps.patient_ids) if q == pid] for pid in order} for ps in pooled]
    vals = []
    for _ in range(50):
        drawn = [order[u] for u in rng_u.integers(0, len(order), len(order))]
        counts = rng_s.multinomial(3, [1 / 3] * 3)
        per_seed = []
        for ps, rows_of in zip(pooled, where):
            rows = np.concatenate([rows_of[d] for d in drawn])
            per_seed.append(roc_auc_score(ps.pred.y_true[rows], ps.pred.y_prob[rows, 1]))
        vals.append(np.dot(counts, per_seed) / 3)
    lo, hi = np.percentile(vals, [2.5, 97.5])
    assert (agg.low, agg.high) == pytest.approx((lo, hi), abs=1e-12)
    assert agg.point == pytest.approx(np.mean([roc_auc_score(p.y_true, p.y_prob[:, 1]) for p in preds]))
    assert (agg.n_seeds, agg.unit, agg.n_units) == (3, "patient", 45)
    assert agg.method == "pooled out-of-fold predictions of 3 folds; mean over 3 seeds; two-level bootstrap " \
                         "(seeds, then 45 patients; 50 resamples)"


def test_seed_spread_widens_the_interval():
    base = _binary(300, 3)
    tables = []
    for s, signal in enumerate([0.1, 0.3, 0.5]):
        score = np.clip(signal * base.y_true + (1 - signal) * np.random.default_rng(20 + s).random(300), 0, 1)
        pred = Predictions(base.y_true, np.stack([1 - score, score], 1), (score > 0.5).astype(int), "binary",
                           base.class_names)
        tables.append(FoldPredictions(pred, [f"r{i}" for i in range(300)], seed=s))
    both = aggregate(tables, C.roc_auc, 400)
    singles = [aggregate([t], C.roc_auc, 400) for t in tables]
    assert both.point == pytest.approx(np.mean([s.point for s in singles]))
    assert singles[0].point < 0.7 < singles[2].point  # seeds disagree far more than one test set's noise
    assert both.high - both.low > 1.5 * max(s.high - s.low for s in singles)
    assert both.method == "mean over 3 seeds; two-level bootstrap (seeds, then 300 images; 400 resamples)"


def test_degenerate_folds_get_a_real_interval_not_a_point():
    """Issue 14's lrnet case: per-fold recall 0 or 1; the old mean of CI bounds was a point."""
    rng = np.random.default_rng(4)
    tables = []
    for f in range(5):
        y = rng.integers(0, 2, 40)
        yp = np.full(40, 1 if f == 0 else 0)  # fold 0 predicts all positive, the others all negative
        prob = np.stack([1.0 - yp, yp.astype(float)], 1)
        tables.append(FoldPredictions(Predictions(y, prob, yp, "binary", ("n", "p")),
                                      [f"f{f}-{i}" for i in range(40)], fold=f))
    agg = aggregate(tables, C.recall, 500)
    y_all = np.concatenate([t.pred.y_true for t in tables])
    yp_all = np.concatenate([t.pred.y_pred for t in tables])
    assert agg.point == pytest.approx(recall_score(y_all, yp_all))
    assert agg.low < agg.point < agg.high and agg.high - agg.low > 0.05
    assert (agg.fold_mean, agg.fold_sd) == pytest.approx((0.2, math.sqrt(0.2)))


def test_a_row_in_two_folds_of_one_seed_is_refused():
    pred = _binary(10, 5)
    t = FoldPredictions(pred, [f"r{i}" for i in range(10)], fold=0)
    with pytest.raises(ValueError, match="more than one test fold"):
        aggregate([t, FoldPredictions(pred, t.row_ids, fold=1)], C.accuracy, 10)
    with pytest.raises(ValueError):
        FoldPredictions(pred, ["a"])


def test_method_names():
    assert describe_method(1, 1, "patient", 2797, 1000) == "patient bootstrap (2,797 patients; 1000 resamples)"
    assert describe_method(5, 1, "image", 624, 1000) == \
        "pooled out-of-fold predictions of 5 folds; image bootstrap (624 images; 1000 resamples)"


def test_external_replicates_equal_slow_reference():
    """Four jobs (2 folds x 2 seeds) scored on the same external rows: mean over jobs, two-level CI."""
    from cxrbench.metrics.aggregate import aggregate_replicates

    n, patients = 60, [f"p{i // 3}" for i in range(60)]
    base = _binary(n, 5)
    ids = [f"x{i}" for i in range(n)]
    preds = [Predictions(base.y_true, _binary(n, 20 + j, 0.1 + 0.1 * j).y_prob,
                         _binary(n, 20 + j, 0.1 + 0.1 * j).y_pred, "binary", base.class_names) for j in range(4)]
    tables = [FoldPredictions(p, ids, patients, fold=j % 2, seed=j // 2) for j, p in enumerate(preds)]
    with pytest.raises(ValueError, match="more than one test fold"):
        aggregate(tables, C.roc_auc, 10)  # not out-of-fold: the internal method refuses
    agg = aggregate_replicates(tables, C.roc_auc, 40, seed=3)
    order = list(dict.fromkeys(patients))
    rows_of = {pid: [i for i, q in enumerate(patients) if q == pid] for pid in order}
    rng_u, rng_s = np.random.default_rng(3), np.random.default_rng([3, 1])
    vals = []
    for _ in range(40):
        rows = np.concatenate([rows_of[order[u]] for u in rng_u.integers(0, len(order), len(order))])
        counts = rng_s.multinomial(4, [0.25] * 4)
        vals.append(np.dot(counts, [roc_auc_score(p.y_true[rows], p.y_prob[rows, 1]) for p in preds]) / 4)
    assert (agg.low, agg.high) == pytest.approx(tuple(np.percentile(vals, [2.5, 97.5])), abs=1e-12)
    assert agg.point == pytest.approx(np.mean([roc_auc_score(p.y_true, p.y_prob[:, 1]) for p in preds]))
    assert (agg.n_seeds, agg.unit, agg.n_units) == (4, "patient", 20)
    assert agg.method.startswith("mean over 4 trained models (folds x seeds) on the same rows")
