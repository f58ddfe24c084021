"""One model's metric over folds and seeds: a point estimate and a CI that describe the model.

Method (named by :attr:`Aggregate.method` for table footers):

* **k-fold** (one seed): the out-of-fold predictions of all folds are pooled (each sample is
  predicted once) and the metric is computed on the pooled table; its CI is the cluster bootstrap
  (:mod:`cxrbench.metrics.bootstrap`) of the pooled table. A single split is the k = 1 case.
* **several seeds**: per seed as above, the point estimate is the mean over seeds; the CI is a
  two-level bootstrap: each resample draws the seeds with replacement, then the patients (images
  without ids), and averages the drawn seeds' metrics. Every seed was tested on the same patients,
  so one patient draw is applied to all drawn seeds (drawing patients afresh per seed would average
  the test-set noise away).
* the mean and sd (ddof=1) of the per-(fold, seed) values are reported beside it, never a mean of
  interval bounds.

Resampling units are patients keyed by patient id over all tables (a row without one is its own
unit, keyed by its row id). With one table the numbers equal
:func:`~cxrbench.metrics.bootstrap.cluster_bootstrap` for the same seed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cxrbench.metrics.bootstrap import (
    MetricFn,
    is_missing_id,
    metric_or_nan,
    metric_on_weights,
    percentile_interval,
    unit_count_blocks,
)
from cxrbench.specs import Predictions


@dataclass(frozen=True)
class FoldPredictions:
    """One job's test predictions: the table of one (fold, seed), with its row and patient ids."""

    pred: Predictions
    row_ids: Sequence[str]
    patient_ids: Sequence[Hashable] | None = None
    fold: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        n = len(self.pred.y_true)
        if len(self.row_ids) != n or (self.patient_ids is not None and len(self.patient_ids) != n):
            raise ValueError(f"fold {self.fold} seed {self.seed}: ids do not match the {n} prediction rows")


@dataclass(frozen=True)
class PooledSeed:
    """The out-of-fold predictions of one seed, every fold's rows concatenated (fold order)."""

    seed: int
    pred: Predictions
    row_ids: list[str]
    patient_ids: list[Any]
    n_folds: int

    def restrict(self, keep: set[str]) -> "PooledSeed":
        """The same seed on the rows whose id is in ``keep`` (order kept)."""
        idx = np.array([i for i, r in enumerate(self.row_ids) if r in keep], dtype=np.int64)
        return PooledSeed(self.seed, self.pred.subset(idx), [self.row_ids[i] for i in idx],
                          [self.patient_ids[i] for i in idx], self.n_folds)


def _concat(preds: list[Predictions]) -> Predictions:
    first = preds[0]
    for p in preds[1:]:
        if (p.task, tuple(p.class_names), p.positive) != (first.task, tuple(first.class_names), first.positive):
            raise ValueError("prediction tables of one model differ in task, classes or positive class")
    if len(preds) == 1:
        return first
    cat = [np.concatenate([getattr(p, a) for p in preds]) for a in ("y_true", "y_prob", "y_pred")]
    mask = None
    if any(p.mask is not None for p in preds):
        mask = np.concatenate([np.ones(np.shape(p.y_true), dtype=bool) if p.mask is None else p.mask for p in preds])
    return Predictions(*cat, first.task, first.class_names, first.positive, None, mask)


def pool_by_seed(tables: Sequence[FoldPredictions]) -> list[PooledSeed]:
    """Pool each seed's folds (sorted by seed, then fold); a row id twice in one seed is an error
    (folds must be disjoint test sets for pooled out-of-fold estimates)."""
    if not tables:
        raise ValueError("no prediction tables")
    out = []
    for s in sorted({t.seed for t in tables}):
        folds = sorted((t for t in tables if t.seed == s), key=lambda t: t.fold)
        rows = [str(r) for t in folds for r in t.row_ids]
        if len(set(rows)) != len(rows):
            dup = next(r for r, c in Counter(rows).items() if c > 1)
            raise ValueError(f"seed {s}: row {dup!r} is in more than one test fold; cannot pool out-of-fold")
        patients = [p for t in folds for p in (t.patient_ids if t.patient_ids is not None else [None] * len(t.row_ids))]
        out.append(PooledSeed(s, _concat([t.pred for t in folds]), rows, patients, len(folds)))
    return out


def patient_map(seeds: Sequence[PooledSeed]) -> dict[str, Any]:
    """Row id -> its first non-missing patient id over all tables (rows without one are left out)."""
    out: dict[str, Any] = {}
    for s in seeds:
        for r, p in zip(s.row_ids, s.patient_ids):
            if r not in out and not is_missing_id(p):
                out[r] = str(p)
    return out


def unit_key(row_id: str, patients: dict[str, Any]) -> tuple[int, str]:
    """The resampling unit of a row: its patient, else the row itself."""
    p = patients.get(row_id)
    return (1, row_id) if p is None else (0, p)


def unit_codes(seeds: Sequence[PooledSeed], patients: dict[str, Any],
               order: dict[tuple[int, str], int] | None = None) -> tuple[list[np.ndarray], int, str]:
    """Per seed, each row's unit index; the number of units; ``"patient"`` or ``"image"``.

    Units are numbered by first appearance over ``seeds`` or, given ``order`` (unit key -> rank),
    by that rank (so two models on the same rows get the same numbering).
    """
    keys = [[unit_key(r, patients) for r in s.row_ids] for s in seeds]
    if order is None:
        index: dict[tuple[int, str], int] = {}
        for ks in keys:
            for k in ks:
                index.setdefault(k, len(index))
    else:
        present = sorted({k for ks in keys for k in ks}, key=order.__getitem__)
        index = {k: i for i, k in enumerate(present)}
    codes = [np.array([index[k] for k in ks], dtype=np.int64) for ks in keys]
    unit = "patient" if any(k[0] == 0 for k in index) else "image"
    return codes, len(index), unit


def resampled_values(fn: MetricFn, seeds: Sequence[PooledSeed], codes: Sequence[np.ndarray], n_units: int,
                     n_resamples: int, seed: int = 0) -> np.ndarray:
    """The two-level bootstrap distribution ``(n_resamples,)`` of the mean-over-seeds metric.

    Units are drawn from ``np.random.default_rng(seed)`` (the stream of the one-table bootstrap),
    seeds from ``default_rng([seed, 1])``; with one seed there is no seed draw. Two models given the
    same ``codes`` layout and ``seed`` get the same draws (a paired bootstrap).
    """
    if n_resamples <= 0 or n_units == 0:
        return np.full(max(n_resamples, 0), np.nan)
    rng_units, rng_seeds = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    k = len(seeds)
    out = []
    for counts in unit_count_blocks(n_units, n_resamples, rng_units, row_cells=sum(len(c) for c in codes)):
        m = np.stack([metric_on_weights(fn, s.pred, counts[:, c]) for s, c in zip(seeds, codes)], axis=1)
        if k == 1:
            out.append(m[:, 0])
            continue
        draws = rng_seeds.multinomial(k, np.full(k, 1.0 / k), size=counts.shape[0])
        used = draws > 0
        vals = (draws * np.where(used, m, 0.0)).sum(axis=1) / k
        vals[(used & ~np.isfinite(m)).any(axis=1)] = np.nan
        out.append(vals)
    return np.concatenate(out)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sd (ddof=1; 0.0 for one value) of the finite values; nan, nan for none."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def describe_method(n_folds: int, n_seeds: int, unit: str, n_units: int, n_resamples: int) -> str:
    """The footer sentence for an :class:`Aggregate`."""
    pooled = f"pooled out-of-fold predictions of {n_folds} folds; " if n_folds > 1 else ""
    units = f"{n_units:,} {unit}{'s' if n_units != 1 else ''}"
    if n_seeds > 1:
        return (f"{pooled}mean over {n_seeds} seeds; two-level bootstrap "
                f"(seeds, then {units}; {n_resamples} resamples)")
    return f"{pooled}{unit} bootstrap ({units}; {n_resamples} resamples)"


@dataclass(frozen=True)
class Aggregate:
    """A metric over a model's folds and seeds."""

    point: float
    """Metric of the pooled out-of-fold predictions, mean over seeds."""
    low: float
    high: float
    fold_mean: float
    """Mean of the per-(fold, seed) values."""
    fold_sd: float
    n_folds: int
    n_seeds: int
    unit: str
    n_units: int
    n_resamples: int
    n_valid: int
    confidence: float
    method: str

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _aggregate(seeds: list[PooledSeed], tables: Sequence[FoldPredictions], fn: MetricFn, n_resamples: int,
               confidence: float, seed: int, method: Callable[[int, int, str, int, int], str]) -> Aggregate:
    codes, n_units, unit = unit_codes(seeds, patient_map(seeds))
    values = resampled_values(fn, seeds, codes, n_units, n_resamples, seed)
    low, high = percentile_interval(values, confidence)
    point = float(np.mean([metric_or_nan(fn, s.pred) for s in seeds]))
    fold_mean, fold_sd = mean_sd([metric_or_nan(fn, t.pred) for t in tables])
    n_folds = max(s.n_folds for s in seeds)
    return Aggregate(point, low, high, fold_mean, fold_sd, n_folds, len(seeds), unit, n_units,
                     max(n_resamples, 0), int(np.isfinite(values).sum()), confidence,
                     method(n_folds, len(seeds), unit, n_units, n_resamples))


def aggregate(tables: Sequence[FoldPredictions], fn: MetricFn, n_resamples: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> Aggregate:
    """Point estimate, cluster/two-level bootstrap CI and per-fold mean ± sd of ``fn`` (module doc)."""
    return _aggregate(pool_by_seed(tables), tables, fn, n_resamples, confidence, seed, describe_method)


def describe_replicates(n_folds: int, n_models: int, unit: str, n_units: int, n_resamples: int) -> str:
    """The footer sentence for :func:`aggregate_replicates`."""
    units = f"{n_units:,} {unit}{'s' if n_units != 1 else ''}"
    if n_models > 1:
        return (f"mean over {n_models} trained models (folds x seeds) on the same rows; two-level bootstrap "
                f"(models, then {units}; {n_resamples} resamples)")
    return f"{unit} bootstrap ({units}; {n_resamples} resamples)"


def aggregate_replicates(tables: Sequence[FoldPredictions], fn: MetricFn, n_resamples: int = 1000,
                         confidence: float = 0.95, seed: int = 0) -> Aggregate:
    """``fn`` over several models of one protocol scored on the *same* rows (an external test set).

    Each table is one job (fold, seed): the point estimate is the mean over jobs and the CI the
    two-level bootstrap of the several-seeds case (jobs drawn with replacement, then one patient
    draw applied to all of them). One table: its cluster bootstrap, as :func:`aggregate`.
    """
    reps = [FoldPredictions(t.pred, t.row_ids, t.patient_ids, fold=0, seed=i) for i, t in enumerate(tables)]
    return _aggregate(pool_by_seed(reps), reps, fn, n_resamples, confidence, seed, describe_replicates)
