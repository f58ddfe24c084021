"""DeLong's test for two correlated ROC AUCs (same cases, two scores), the fast midrank version.

DeLong, DeLong & Clarke-Pearson (1988) estimate the covariance of AUCs on the same cases from
structural components: for each positive ``x_i``, ``V10_i`` = the fraction of negatives it outranks
(ties count 1/2); for each negative ``y_j``, ``V01_j`` = the fraction of positives that outrank it.
``S = cov(V10) / m + cov(V01) / n`` (``m`` positives, ``n`` negatives, sample covariances) and
``z = (AUC_a - AUC_b) / sqrt(S_aa + S_bb - 2 S_ab)``. Sun & Xu (2014) compute the components from
midranks in O(N log N) instead of the O(m n) comparisons.

It treats images as independent (no patient clustering): a cross-check for the paired bootstrap
of ``roc_auc`` on binary tasks, not a replacement for it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from cxrbench.specs import Predictions


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties getting the mean of their ranks (``scipy.stats.rankdata`` 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    s = x[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], s.size]
    ranks_sorted = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    out = np.empty(s.size)
    out[order] = ranks_sorted
    return out


def structural_components(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs ``(k,)``, ``V10`` ``(k, m)`` (positives) and ``V01`` ``(k, n)`` (negatives) of ``k`` score rows.

    ``y_true`` is 0/1 ``(N,)``; ``scores`` ``(k, N)`` (or ``(N,)``), higher = more positive.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong needs both positive and negative cases")
    pos, neg = s[:, y], s[:, ~y]
    tx = np.stack([midranks(r) for r in pos])
    ty = np.stack([midranks(r) for r in neg])
    tz = np.stack([midranks(r) for r in np.concatenate([pos, neg], axis=1)])
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v10, v01


def delong_covariance(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs ``(k,)`` and their DeLong covariance matrix ``(k, k)``."""
    aucs, v10, v01 = structural_components(y_true, scores)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(aucs), len(aucs)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(aucs), len(aucs)))
    return aucs, s10 / m + s01 / n


@dataclass(frozen=True)
class DeLongResult:
    """Two correlated AUCs, their difference ``auc_a - auc_b``, its standard error, z and p."""

    auc_a: float
    auc_b: float
    diff: float
    se: float
    z: float
    p_value: float
    """Two-sided normal p-value; 1.0 when the difference and its variance are both 0."""

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def delong_test(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> DeLongResult:
    """DeLong's two-sided test that two scores of the same cases have the same ROC AUC."""
    aucs, cov = delong_covariance(y_true, np.stack([np.asarray(score_a), np.asarray(score_b)]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = math.sqrt(max(var, 0.0))
    if se == 0.0:
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        z = diff / se
    return DeLongResult(float(aucs[0]), float(aucs[1]), diff, se, z, float(2 * norm.sf(abs(z))))


def delong_predictions(pred_a: Predictions, pred_b: Predictions) -> DeLongResult:
    """:func:`delong_test` on the positive-class probabilities of two binary predictions (same rows)."""
    if pred_a.task != "binary" or pred_b.task != "binary":
        raise ValueError("DeLong's test applies to binary tasks")
    if not np.array_equal(pred_a.y_true, pred_b.y_true):
        raise ValueError("the two predictions are not on the same rows")
    y = np.asarray(pred_a.y_true) == pred_a.positive
    return delong_test(y, pred_a.y_prob[:, pred_a.positive], pred_b.y_prob[:, pred_b.positive])
