"""All pairs of models on their shared test rows: paired, clustered, adjusted, and lettered.

For each pair ``(a, b)`` (``a`` ranked above ``b``) the comparison uses only the (seed, row) cells
both models have, pooled out-of-fold per seed (:mod:`cxrbench.metrics.aggregate`). Both models get
the same resamples: the same patients and the same seeds are drawn for both (two-level when there
are several shared seeds), and the difference ``metric(a) - metric(b)`` is taken resample by
resample. Its two-sided bootstrap p-values are adjusted over the family of all pairs (Holm by
default, or Benjamini-Hochberg) and the pairs with an adjusted p below ``alpha`` feed a compact
letter display. Models are ranked by their own :func:`~cxrbench.metrics.aggregate.aggregate` point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cxrbench.metrics.aggregate import (
    FoldPredictions,
    PooledSeed,
    patient_map,
    pool_by_seed,
    resampled_values,
    unit_codes,
    unit_key,
)
from cxrbench.metrics.bootstrap import MetricFn, bootstrap_p_value, metric_or_nan, percentile_interval
from cxrbench.metrics.delong import delong_predictions
from cxrbench.metrics.multiple import adjust_pvalues, compact_letter_display


@dataclass(frozen=True)
class PairResult:
    """``metric(a) - metric(b)`` on the cells both models share."""

    a: str
    b: str
    diff: float
    low: float
    high: float
    p_value: float
    p_adjusted: float
    different: bool
    """``p_adjusted < alpha``."""
    n_seeds: int
    n_rows: int
    """Shared rows per seed (the largest, when seeds differ)."""
    unit: str
    n_units: int
    delong_p: float = math.nan
    """DeLong's p-value (image level, unadjusted) on the same shared rows: a cross-check of binary
    ROC AUC comparisons with one shared seed (``compare_models(delong=True)``); nan elsewhere."""


@dataclass(frozen=True)
class ModelComparison:
    """Every pair of a family of models, best-ranked first."""

    order: list[str]
    points: dict[str, float]
    pairs: list[PairResult]
    letters: dict[str, str]
    adjust: str
    alpha: float
    method: str

    def pair(self, a: str, b: str) -> PairResult | None:
        """The ``(a, b)`` comparison, ``diff``/``low``/``high`` as ``a - b`` whichever way it was run."""
        for p in self.pairs:
            if (p.a, p.b) == (a, b):
                return p
            if (p.a, p.b) == (b, a):
                return PairResult(a, b, -p.diff, -p.high, -p.low, p.p_value, p.p_adjusted, p.different,
                                  p.n_seeds, p.n_rows, p.unit, p.n_units, p.delong_p)
        return None

    def p_vs_top(self) -> dict[str, float]:
        """Unadjusted p-value of each model against the top-ranked one (nan for the top itself)."""
        top = self.order[0]
        return {m: math.nan if m == top else getattr(self.pair(top, m), "p_value", math.nan) for m in self.order}

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _shared(a: list[PooledSeed], b: list[PooledSeed]) -> tuple[list[PooledSeed], list[PooledSeed]]:
    by_seed = {s.seed: s for s in b}
    out_a, out_b = [], []
    for sa in a:
        sb = by_seed.get(sa.seed)
        if sb is None:
            continue
        keep = set(sa.row_ids) & set(sb.row_ids)
        if keep:  # both restricted to the shared rows, b in a's row order
            ra = sa.restrict(keep)
            pos = {r: i for i, r in enumerate(sb.row_ids)}
            idx = np.array([pos[r] for r in ra.row_ids], dtype=np.int64)
            out_a.append(ra)
            out_b.append(PooledSeed(sb.seed, sb.pred.subset(idx), list(ra.row_ids),
                                    [sb.patient_ids[i] for i in idx], sb.n_folds))
    return out_a, out_b


def compare_models(models: Mapping[str, Sequence[FoldPredictions]], fn: MetricFn, higher_is_better: bool = True,
                   adjust: str = "holm", alpha: float = 0.05, n_resamples: int = 1000, confidence: float = 0.95,
                   seed: int = 0, delong: bool = False) -> ModelComparison:
    """Paired cluster-bootstrap comparison of every pair of ``models`` (name -> its prediction tables).

    Returns the ranking, each pair's difference, CI, raw and adjusted p-value, and the letters.
    Pairs without a shared cell get nan and are left out of the adjustment. ``delong`` (for binary
    ROC AUC): each pair with one shared seed also gets DeLong's p-value as a cross-check.
    """
    pooled = {m: pool_by_seed(t) for m, t in models.items()}
    points = {m: float(np.mean([metric_or_nan(fn, s.pred) for s in seeds])) for m, seeds in pooled.items()}
    sign = -1.0 if higher_is_better else 1.0
    order = sorted(points, key=lambda m: (math.isnan(points[m]), sign * points[m] if not math.isnan(points[m]) else 0))
    everything = [s for seeds in pooled.values() for s in seeds]
    patients = patient_map(everything)
    rank: dict[tuple[int, str], int] = {}
    for s in everything:
        for r in s.row_ids:
            rank.setdefault(unit_key(r, patients), len(rank))
    cache: dict[tuple[str, frozenset], np.ndarray] = {}

    def values(model: str, seeds: list[PooledSeed], codes: list[np.ndarray], n_units: int) -> np.ndarray:
        key = (model, frozenset((s.seed, r) for s in seeds for r in s.row_ids))
        if key not in cache:
            cache[key] = resampled_values(fn, seeds, codes, n_units, n_resamples, seed)
        return cache[key]

    raw = []
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            sa, sb = _shared(pooled[a], pooled[b])
            if not sa:
                raw.append((a, b, math.nan, math.nan, math.nan, math.nan, 0, 0, "image", 0, math.nan))
                continue
            codes, n_units, unit = unit_codes(sa, patients, rank)
            d = values(a, sa, codes, n_units) - values(b, sb, codes, n_units)
            low, high = percentile_interval(d, confidence)
            diff = float(np.mean([metric_or_nan(fn, s.pred) for s in sa])
                         - np.mean([metric_or_nan(fn, s.pred) for s in sb]))
            raw.append((a, b, diff, low, high, bootstrap_p_value(d), len(sa), max(len(s.row_ids) for s in sa),
                        unit, n_units, _delong_p(sa, sb) if delong else math.nan))
    adjusted = adjust_pvalues([r[5] for r in raw], adjust) if raw else np.array([])
    pairs = [PairResult(a, b, diff, low, high, p, float(q), bool(q < alpha), ns, nr, unit, nu, dp)
             for (a, b, diff, low, high, p, ns, nr, unit, nu, dp), q in zip(raw, adjusted)]
    letters = compact_letter_display(order, [(p.a, p.b) for p in pairs if p.different])
    units = {p.unit for p in pairs} or {"image"}
    method = (f"paired {'/'.join(sorted(units))} bootstrap on shared test rows ({n_resamples} resamples); "
              f"{'Holm' if adjust == 'holm' else 'Benjamini-Hochberg' if adjust == 'bh' else 'unadjusted'} "
              f"over {sum(math.isfinite(p.p_value) for p in pairs)} pairs; letters: adjusted p >= {alpha:g}"
              + ("; DeLong p (image level) beside each binary AUC pair as a cross-check" if delong else ""))
    return ModelComparison(order, points, pairs, letters, adjust, alpha, method)


def _delong_p(sa: list[PooledSeed], sb: list[PooledSeed]) -> float:
    """DeLong's p on one shared seed's rows (binary, both classes present), else nan."""
    if len(sa) != 1 or sa[0].pred.task != "binary":
        return math.nan
    y = np.asarray(sa[0].pred.y_true) == sa[0].pred.positive
    if y.all() or not y.any():
        return math.nan
    return delong_predictions(sa[0].pred, sb[0].pred).p_value
