"""Percentile bootstrap confidence intervals over test rows.

A resample is described by row weights: ``W[b, i]`` is how many times row ``i`` was drawn in
resample ``b``. A metric decorated with :func:`row_weighted` computes itself for a whole block of
resamples at once from ``W`` (counts are ``W @ indicators``), which is what makes 1000 resamples
cheap. Any other ``fn(Predictions) -> float`` works too, one resample at a time.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np

from cxrbench.specs import Predictions

BatchedMetric = Callable[[Predictions, np.ndarray], np.ndarray]
MetricFn = Callable[[Predictions], float]

MIN_VALID_FRACTION = 0.5
"""Below this fraction of resamples with a defined (finite) value the interval is ``(nan, nan)``."""
_BLOCK_CELLS = 2_000_000  # resamples x rows per block: bounds memory on large test sets


def row_weighted(batched: BatchedMetric) -> MetricFn:
    """Turn ``batched(pred, W) -> (B,)`` into ``fn(pred) -> float``, keeping ``fn.batched``.

    ``W`` is a ``(B, N)`` float array of row weights; the point estimate uses all-ones weights.
    """

    @functools.wraps(batched, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
    def fn(pred: Predictions) -> float:
        return float(batched(pred, np.ones((1, len(pred.y_true))))[0])

    del fn.__wrapped__  # the public signature is (pred), not batched's (pred, W)
    fn.batched = batched  # type: ignore[attr-defined]
    return fn


def _weights(idx: np.ndarray, n: int) -> np.ndarray:
    """Row-draw indices ``(B, N)`` -> row weights ``(B, N)`` (draw counts per row)."""
    b = idx.shape[0]
    flat = (idx + n * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def _one(fn: MetricFn, pred: Predictions) -> float:
    try:
        return float(fn(pred))
    except (ValueError, ZeroDivisionError):
        # Third-party metrics (e.g. sklearn's AUC) raise where ours return nan: a single-class resample.
        return math.nan


def bootstrap_values(fn: MetricFn, pred: Predictions, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """The metric on ``n_resamples`` row resamples (with replacement), ``nan`` where undefined.

    Deterministic for a seed; a :func:`row_weighted` metric and a plain function computing the same
    thing give the same values.
    """
    n = len(pred.y_true)
    if n == 0 or n_resamples <= 0:
        return np.full(max(n_resamples, 0), np.nan)
    rng = np.random.default_rng(seed)
    batched: BatchedMetric | None = getattr(fn, "batched", None)
    block = max(1, min(n_resamples, _BLOCK_CELLS // n))
    out = []
    for start in range(0, n_resamples, block):
        idx = rng.integers(0, n, size=(min(block, n_resamples - start), n))
        if batched is not None:
            out.append(np.asarray(batched(pred, _weights(idx, n)), dtype=np.float64))
        else:
            out.append(np.array([_one(fn, pred.subset(i)) for i in idx], dtype=np.float64))
    return np.concatenate(out)


def bootstrap_ci(fn: MetricFn, pred: Predictions, n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` of ``fn`` over resampled test rows.

    Resamples where the metric is undefined (nan) are skipped; if fewer than
    :data:`MIN_VALID_FRACTION` of them remain, returns ``(nan, nan)``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = bootstrap_values(fn, pred, n_resamples, seed)
    values = values[np.isfinite(values)]
    if values.size < max(2, MIN_VALID_FRACTION * n_resamples):
        return math.nan, math.nan
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)
