"""Percentile bootstrap confidence intervals over test rows, or over patients (cluster bootstrap).

A resample is described by row weights: ``W[b, i]`` is how many times row ``i`` was drawn in
resample ``b``. A metric decorated with :func:`row_weighted` computes itself for a whole block of
resamples at once from ``W`` (counts are ``W @ indicators``), which is what makes 1000 resamples
cheap. Any other ``fn(Predictions) -> float`` works too, one resample at a time.

Cluster bootstrap: when rows carry patient ids (``groups``), a resample draws *patients* with
replacement and every image of a drawn patient comes along, as many times as the patient was drawn:
unit counts ``C[b, g]`` expand to row weights ``W[b, i] = C[b, code[i]]``. Images of one patient
are correlated, so resampling them independently gives intervals that are too narrow. Without
patient ids the unit is the image, and the draws are exactly those of the image bootstrap (same
seed, same numbers), so older records stay comparable; with one image per patient the two coincide.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Hashable, Iterator, Sequence

import numpy as np

from cxrbench.specs import Predictions

BatchedMetric = Callable[[Predictions, np.ndarray], np.ndarray]
MetricFn = Callable[[Predictions], float]
Groups = Sequence[Hashable] | np.ndarray | None

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
    """Draw indices ``(B, M)`` into ``range(n)`` -> draw counts ``(B, n)``."""
    b = idx.shape[0]
    flat = (idx + n * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def metric_or_nan(fn: MetricFn, pred: Predictions) -> float:
    """``fn(pred)`` as a float, ``nan`` where the metric raises ``ValueError``/``ZeroDivisionError``."""
    try:
        return float(fn(pred))
    except (ValueError, ZeroDivisionError):
        # Third-party metrics (e.g. sklearn's AUC) raise where ours return nan: a single-class resample.
        return math.nan


def is_missing_id(x: Any) -> bool:
    """True for an absent patient id: ``None``, nan, ``""`` (a CSV's empty cell) or ``"nan"``/``"None"``
    (such a cell after ``astype(str)``)."""
    return x is None or (isinstance(x, float) and math.isnan(x)) or str(x) in ("", "nan", "None")


def cluster_codes(groups: Groups, n: int) -> tuple[np.ndarray, int, str]:
    """Rows -> resampling units: ``(codes (n,), n_units, unit)``.

    Units are numbered in order of first appearance; a row without an id (``None``, ``""``, nan) is a
    unit of its own. ``unit`` is ``"patient"`` when any row has an id, else ``"image"`` (then the
    codes are ``0..n-1``, the image bootstrap).
    """
    if groups is None:
        return np.arange(n), n, "image"
    g = list(groups)
    if len(g) != n:
        raise ValueError(f"{len(g)} group ids for {n} rows")
    if all(is_missing_id(x) for x in g):
        return np.arange(n), n, "image"
    index: dict[tuple[int, Any], int] = {}
    codes = [index.setdefault((1, i) if is_missing_id(x) else (0, str(x)), len(index)) for i, x in enumerate(g)]
    return np.asarray(codes, dtype=np.int64), len(index), "patient"


def unit_count_blocks(n_units: int, n_resamples: int, rng: np.random.Generator,
                      row_cells: int | None = None) -> Iterator[np.ndarray]:
    """Blocks of unit draw counts ``(b, n_units)``, ``n_resamples`` rows in all.

    Each resample draws ``n_units`` units uniformly with replacement (``rng.integers``: the same stream
    as the image bootstrap). ``row_cells`` (rows the counts will be expanded to, default
    ``n_units``) bounds the block size, and so the memory, to about 2 million cells.
    """
    cells = max(n_units, row_cells or 0, 1)
    block = max(1, min(n_resamples, _BLOCK_CELLS // cells))
    for start in range(0, n_resamples, block):
        idx = rng.integers(0, n_units, size=(min(block, n_resamples - start), n_units))
        yield _weights(idx, n_units)


def metric_on_weights(fn: MetricFn, pred: Predictions, w: np.ndarray) -> np.ndarray:
    """``fn`` on each row-weight vector of ``w`` ``(B, N)`` -> ``(B,)``, ``nan`` where undefined.

    A :func:`row_weighted` metric uses the weights directly; any other repeats each row
    ``w[b, i]`` times (weights must be whole numbers).
    """
    batched: BatchedMetric | None = getattr(fn, "batched", None)
    if batched is not None:
        return np.asarray(batched(pred, w), dtype=np.float64)
    rows = np.arange(w.shape[1])
    return np.array([metric_or_nan(fn, pred.subset(np.repeat(rows, np.rint(wb).astype(np.int64)))) for wb in w],
                    dtype=np.float64)


def bootstrap_values(fn: MetricFn, pred: Predictions, n_resamples: int = 1000, seed: int = 0,
                     groups: Groups = None) -> np.ndarray:
    """The metric on ``n_resamples`` resamples (with replacement), ``nan`` where undefined.

    Resamples rows, or the units of ``groups`` (see :func:`cluster_codes`). Deterministic for a
    seed; a :func:`row_weighted` metric and a plain function computing the same thing give the same
    values.
    """
    n = len(pred.y_true)
    if n == 0 or n_resamples <= 0:
        return np.full(max(n_resamples, 0), np.nan)
    codes, n_units, unit = cluster_codes(groups, n)
    rng = np.random.default_rng(seed)
    if unit == "image" and getattr(fn, "batched", None) is None:
        # The original row-index path: a plain function sees the rows in draw order.
        block = max(1, min(n_resamples, _BLOCK_CELLS // n))
        out = []
        for start in range(0, n_resamples, block):
            idx = rng.integers(0, n, size=(min(block, n_resamples - start), n))
            out.append(np.array([metric_or_nan(fn, pred.subset(i)) for i in idx], dtype=np.float64))
        return np.concatenate(out)
    blocks = unit_count_blocks(n_units, n_resamples, rng, row_cells=n)
    if unit == "image":
        return np.concatenate([metric_on_weights(fn, pred, c) for c in blocks])
    return np.concatenate([metric_on_weights(fn, pred, c[:, codes]) for c in blocks])


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap ``values``, skipping nan; ``(nan, nan)`` when fewer than
    :data:`MIN_VALID_FRACTION` of them are finite (or fewer than 2)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size < max(2, MIN_VALID_FRACTION * values.size):
        return math.nan, math.nan
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_p_value(diffs: np.ndarray) -> float:
    """Two-sided bootstrap p-value that a difference is 0: ``2 (k + 1) / (n + 1)``, capped at 1.

    ``k = min(#{d* <= 0}, #{d* >= 0})`` over the ``n`` finite bootstrap differences (nan skipped);
    nan without any. The add-one form (Davison & Hinkley 1997, section 4.4; North, Curtis & Sham
    2002) counts the observed sample as one of the resamples, so the p-value is never below
    ``2 / (n + 1)``: the earlier ``max(2 k / n, 1 / n)`` floored a two-sided p-value at a
    one-sided resolution and, under a planted null (benchmarks/test_stats_coverage.py), rejected
    too often.
    """
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan
    k = min(int((d <= 0).sum()), int((d >= 0).sum()))
    return float(min(1.0, 2.0 * (k + 1) / (d.size + 1)))


def bootstrap_ci(fn: MetricFn, pred: Predictions, n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0, groups: Groups = None) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` of ``fn`` over resampled rows (or ``groups`` units).

    Resamples where the metric is undefined (nan) are skipped; if fewer than
    :data:`MIN_VALID_FRACTION` of them remain, returns ``(nan, nan)``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return percentile_interval(bootstrap_values(fn, pred, n_resamples, seed, groups), confidence)


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile bootstrap interval and what was resampled."""

    low: float
    high: float
    unit: str
    """``"patient"`` or ``"image"``: what one draw picks."""
    n_units: int
    n_resamples: int
    n_valid: int
    """Resamples where the metric was defined."""
    confidence: float

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict (the record's ``ci`` entry can carry it as is)."""
        return asdict(self)


def cluster_bootstrap(fn: MetricFn, pred: Predictions, groups: Groups = None, n_resamples: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> BootstrapCI:
    """Percentile CI of ``fn``, resampling patients (``groups``) or, without ids, images.

    ``low``/``high`` equal :func:`bootstrap_ci` with the same arguments.
    """
    n = len(pred.y_true)
    _, n_units, unit = cluster_codes(groups, n)
    values = bootstrap_values(fn, pred, n_resamples, seed, groups)
    low, high = percentile_interval(values, confidence)
    return BootstrapCI(low, high, unit, n_units, max(n_resamples, 0), int(np.isfinite(values).sum()), confidence)


@dataclass(frozen=True)
class PairedComparison:
    """``metric(a) - metric(b)`` on the same rows, with a paired bootstrap CI and p-value."""

    diff: float
    low: float
    high: float
    p_value: float
    """Two-sided, :func:`bootstrap_p_value` (unadjusted)."""
    unit: str
    n_units: int
    n_resamples: int
    n_valid: int
    confidence: float

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def paired_bootstrap(fn: MetricFn, pred_a: Predictions, pred_b: Predictions, groups: Groups = None,
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> PairedComparison:
    """Paired (cluster) bootstrap of ``fn(a) - fn(b)``: every resample draws the same patients (or
    images) for both models. ``pred_a`` and ``pred_b`` must hold the same rows in the same order."""
    n = len(pred_a.y_true)
    if len(pred_b.y_true) != n:
        raise ValueError(f"paired predictions differ in length: {n} vs {len(pred_b.y_true)}")
    _, n_units, unit = cluster_codes(groups, n)
    d = (bootstrap_values(fn, pred_a, n_resamples, seed, groups)
         - bootstrap_values(fn, pred_b, n_resamples, seed, groups))  # same seed: same units drawn
    low, high = percentile_interval(d, confidence)
    diff = metric_or_nan(fn, pred_a) - metric_or_nan(fn, pred_b)
    return PairedComparison(diff, low, high, bootstrap_p_value(d), unit, n_units, max(n_resamples, 0),
                            int(np.isfinite(d).sum()), confidence)
