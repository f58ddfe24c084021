"""ROC operating points of a binary score: the curve itself and metrics read off it.

A threshold ``t`` predicts positive when ``score >= t``; the candidate thresholds are the distinct
scores, highest first, as in sklearn's ``roc_curve(drop_intermediate=False)`` (its extra
``inf`` threshold, predicting nothing positive, is the point (0, 0) and is added where it matters).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from cxrbench.metrics.bootstrap import row_weighted
from cxrbench.specs import Predictions

EPS = 1e-12
"""Slack in ``>= level`` comparisons, so a rate equal to the level up to float rounding qualifies."""


def roc_points(scores: np.ndarray, positive: np.ndarray,
               w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds (T,), tps (B, T), fps (B, T))`` at each distinct score, highest first.

    ``tps[b, j]`` / ``fps[b, j]`` are the row-weighted counts of positives / negatives scoring
    ``>= thresholds[j]`` under weights ``w[b]`` (``w=None``: one all-ones row). ``positive`` is a
    0/1 or boolean ``(N,)`` array.
    """
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive).astype(bool)
    w = np.ones((1, len(scores))) if w is None else np.asarray(w, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1] if len(s) else np.empty(0, dtype=np.int64)
    w_sorted = w[:, order]
    tps = np.cumsum(w_sorted * pos[order], axis=1)[:, ends]
    fps = np.cumsum(w_sorted * ~pos[order], axis=1)[:, ends]
    return s[ends], tps, fps


def _binary_rates(pred: Predictions, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensitivity and specificity ``(B, T+1)`` at (0, 0) then every threshold; ``ok`` ``(B,)``:
    both classes present (otherwise the rates are meaningless)."""
    prob = np.asarray(pred.y_prob, dtype=np.float64)[:, pred.positive]
    _, tps, fps = roc_points(prob, np.asarray(pred.y_true) == pred.positive, w)
    zero = np.zeros((w.shape[0], 1))
    tps, fps = np.hstack([zero, tps]), np.hstack([zero, fps])
    p, n = tps[:, -1:], fps[:, -1:]
    ok = (p[:, 0] > 0) & (n[:, 0] > 0)
    safe_p, safe_n = np.where(p > 0, p, 1.0), np.where(n > 0, n, 1.0)
    return tps / safe_p, 1.0 - fps / safe_n, ok


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"the level must lie strictly between 0 and 1, got {level}")
    return level


def _best_rate_at(level: float, name: str, constrained: int) -> Callable[[Predictions], float]:
    """Metric: the best of the two ROC rates among thresholds where the other one (index
    ``constrained``: 0 sensitivity, 1 specificity) is ``>= level``. Some threshold always
    qualifies: (0, 0) for a specificity bound, the lowest threshold for a sensitivity bound."""
    level = _check_level(level)

    @row_weighted
    def fn(pred: Predictions, w: np.ndarray) -> np.ndarray:
        sens, spec, ok = _binary_rates(pred, w)
        held, reported = (sens, spec) if constrained == 0 else (spec, sens)
        best = np.where(held >= level - EPS, reported, -np.inf).max(axis=1)
        return np.where(ok, best, math.nan)

    fn.__name__ = fn.__qualname__ = f"{name}@{level:g}"
    return fn


def sensitivity_at_specificity(level: float) -> Callable[[Predictions], float]:
    """Metric: the best sensitivity among ROC thresholds whose specificity is ``>= level`` (binary).

    nan unless both classes are present. Raises ``ValueError`` unless ``0 < level < 1``.
    """
    return _best_rate_at(level, "sensitivity_at_specificity", constrained=1)


def specificity_at_sensitivity(level: float) -> Callable[[Predictions], float]:
    """Metric: the best specificity among ROC thresholds whose sensitivity is ``>= level`` (binary).

    nan unless both classes are present. Raises ``ValueError`` unless ``0 < level < 1``.
    """
    return _best_rate_at(level, "specificity_at_sensitivity", constrained=0)


def needs_level(name: str) -> Callable[[Predictions], float]:
    """The ``fn`` of a parametric metric named without a level: raises, naming the right form."""

    def fn(pred: Predictions) -> float:
        raise ValueError(f"metric {name!r} needs a level: name it {name}@LEVEL, e.g. {name}@0.9")

    fn.__name__ = name
    return fn
