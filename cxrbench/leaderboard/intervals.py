"""A board's intervals and groups, from the jobs' predictions CSVs (never a mean of CI bounds).

* :func:`board_tables`: each model's ok jobs -> :class:`~cxrbench.metrics.aggregate.FoldPredictions`
  (None when a job has no readable predictions CSV); on an external set when named.
* :func:`metric_interval`: a model's CI of one metric: :func:`~cxrbench.metrics.aggregate.aggregate`
  (pooled out-of-fold, cluster bootstrap; two-level over seeds). Without CSVs only a single job's own
  record CI can stand in; several jobs without CSVs get no CI. On an external set every job scored
  the same rows: the mean over jobs, two-level bootstrap (jobs, then patients).
* :func:`board_comparison`: :func:`~cxrbench.metrics.compare.compare_models` over a board's models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cxrbench.errors import UnknownNameError
from cxrbench.metrics.aggregate import FoldPredictions, aggregate, aggregate_replicates
from cxrbench.metrics.compare import ModelComparison, compare_models
from cxrbench.plugins import Registry
from cxrbench.results.records import JobRecord
from cxrbench.results.view import RunView

N_RESAMPLES = 1000
CONFIDENCE = 0.95


def board_tables(recs: Sequence[JobRecord], where: dict[int, RunView],
                 external: str | None = None) -> list[FoldPredictions] | None:
    """One model's jobs' test predictions (on external set ``external`` when given), each read from
    its own run, or None if any is missing."""
    out = []
    for rec in recs:
        try:
            stored = where[id(rec)].predictions(rec, external)
        except (OSError, KeyError, ValueError):
            return None
        out.append(FoldPredictions(stored.pred, stored.sample_ids, stored.patient_ids, rec.fold, rec.seed))
    return out or None


@dataclass(frozen=True)
class Interval:
    """A model's CI of one metric and how it was made."""

    low: float
    high: float
    point: float
    """The pooled out-of-fold estimate (mean over seeds); nan without predictions CSVs."""
    unit: str
    n_units: int
    method: str


NO_CI = Interval(math.nan, math.nan, math.nan, "", 0, "no CI")


def metric_interval(metric: str, recs: Sequence[JobRecord], tables: list[FoldPredictions] | None,
                    registry: Registry, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                    seed: int = 0, external: str | None = None) -> Interval:
    """The CI of ``metric`` for one model (module doc); :data:`NO_CI` where there is none.

    ``external``: the tables are every job's predictions on that external set (the same rows for
    every job), aggregated by :func:`~cxrbench.metrics.aggregate.aggregate_replicates`."""
    try:
        spec = registry.metric(metric)
    except UnknownNameError:
        spec = None
    if tables is not None and spec is not None and spec.bootstrappable and n_resamples > 0:
        how = aggregate_replicates if external else aggregate
        try:
            agg = how(tables, spec.fn, n_resamples=n_resamples, confidence=confidence, seed=seed)
        except ValueError:  # e.g. folds that overlap: not out-of-fold
            agg = None
        if agg is not None:
            return Interval(agg.low, agg.high, agg.point, agg.unit, agg.n_units, agg.method)
    entry = recs[0].external.get(external, {}) if external and recs else None
    ci, ci_unit, n_rows = ((entry.get("ci", {}), entry.get("ci_unit"), entry.get("n")) if entry is not None
                           else (recs[0].ci if recs else {}, recs[0].ci_unit if recs else None,
                                 recs[0].n_test if recs else None))
    if len(recs) == 1 and metric in ci:  # one job: its own record's CI is that job's interval
        lo, hi = ci[metric]
        unit = ci_unit or {}
        u, n = unit.get("unit", "image"), int(unit.get("n_units") or n_rows or 0)
        what = f"{n:,} {u}s" if n else f"{u}s"
        return Interval(float(lo), float(hi), math.nan, u, n,
                        f"{u} bootstrap of the one job's test set ({what}; from its record)")
    return NO_CI


def board_comparison(tables: dict[str, list[FoldPredictions] | None], metric: str, higher: bool,
                     registry: Registry, adjust: str = "holm", alpha: float = 0.05,
                     n_resamples: int = N_RESAMPLES, seed: int = 0) -> ModelComparison | None:
    """All pairs of the models that have predictions CSVs (at least two), or None."""
    usable = {m: t for m, t in tables.items() if t}
    try:
        spec = registry.metric(metric)
    except UnknownNameError:
        return None
    if len(usable) < 2 or not spec.bootstrappable or n_resamples <= 0:
        return None
    try:
        return compare_models(usable, spec.fn, higher_is_better=higher, adjust=adjust, alpha=alpha,
                              n_resamples=family_resamples(n_resamples, len(usable), alpha, adjust),
                              seed=seed, delong=metric == "roc_auc")
    except ValueError:
        return None


MAX_FAMILY_RESAMPLES = 20_000


def family_resamples(n_resamples: int, n_models: int, alpha: float, adjust: str) -> int:
    """Resamples for comparing ``n_models`` pairwise: enough that the smallest bootstrap p-value,
    2 / (B + 1), can pass Holm's strictest threshold alpha / m for m = all pairs (with a factor 2 of
    resolution to spare); at least ``n_resamples``, at most :data:`MAX_FAMILY_RESAMPLES`."""
    m = n_models * (n_models - 1) // 2
    if adjust == "none" or m <= 1:
        return n_resamples
    return int(min(max(n_resamples, 2 * math.ceil(2 * m / alpha)), MAX_FAMILY_RESAMPLES))


def method_note(methods: dict[str, str]) -> str:
    """One footer phrase for the per-model CI methods: the method, or each with its models."""
    by: dict[str, list[str]] = {}
    for model, m in methods.items():
        by.setdefault(m, []).append(model)
    if len(by) == 1:
        return next(iter(by))
    return "; ".join(f"{', '.join(ms)}: {m}" for m, ms in by.items())


def row_fields(iv: Interval) -> dict[str, Any]:
    """The board-row columns of one interval (primary metric)."""
    return {"ci_unit": iv.unit, "ci_n_units": iv.n_units, "ci_method": iv.method}
