"""Train / validation / test splits (and folds), owned by the core so every model sees the same ones.

Grouped splits keep every patient on one side; stratified splits keep class shares. The splitting
itself is scikit-learn's (``StratifiedGroupKFold``), seeded by ``split.seed``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from cxrbench.errors import DatasetError
from cxrbench.specs import SampleTable
from cxrbench.suite.schema import SplitConfig


@dataclass(frozen=True)
class Fold:
    """Row indices of one fold's train, validation and test sets."""

    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _strata(labels: np.ndarray) -> np.ndarray:
    if labels.ndim == 2:  # multilabel: stratify on "no finding / one / several"
        return np.minimum(labels.sum(axis=1), 2).astype(int)
    return labels.astype(int)


def _groups(table: SampleTable, cfg: SplitConfig) -> np.ndarray:
    if cfg.group_by == "none" or (cfg.group_by == "auto" and table.patient_ids is None):
        return np.arange(len(table))
    if table.patient_ids is None:
        raise DatasetError("split.group_by is 'patient' but this dataset has no patient ids")
    _, codes = np.unique(np.asarray(table.patient_ids, dtype=str), return_inverse=True)
    return codes


def _kfold(idx: np.ndarray, strata: np.ndarray, groups: np.ndarray, n_splits: int, seed: int,
           stratify: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    n_groups = len(np.unique(groups[idx]))
    if n_groups < n_splits:
        raise DatasetError(f"cannot split {len(idx)} rows ({n_groups} patients/groups) into {n_splits} parts")
    y = strata[idx] if stratify else np.zeros(len(idx), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has fewer members"
        try:
            return [(idx[a], idx[b]) for a, b in splitter.split(idx, y, groups[idx])]
        except ValueError as exc:  # e.g. every class has fewer rows than n_splits
            raise DatasetError(f"cannot split {len(idx)} rows into {n_splits} stratified parts: {exc}; "
                               "use fewer folds or set split.stratify: false") from None


def _holdout(idx: np.ndarray, frac: float, strata: np.ndarray, groups: np.ndarray, seed: int,
             stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, held-out ~frac), grouped and stratified."""
    if frac <= 0 or len(idx) == 0:
        return idx, idx[:0]
    n_splits = max(2, int(round(1 / frac)))
    if stratify and np.bincount(strata[idx]).max() < n_splits:
        stratify = False  # too few rows of every class to stratify a 1/n_splits hold-out: keep the fraction
    rest, held = _kfold(idx, strata, groups, n_splits, seed, stratify)[0]
    return np.sort(rest), np.sort(held)


def plan_folds(table: SampleTable, cfg: SplitConfig) -> list[Fold]:
    """The folds a suite's split strategy gives for this table (deterministic for ``cfg.seed``)."""
    n = len(table)
    if n == 0:
        raise DatasetError("the dataset has no rows to split")
    strata, groups = _strata(table.labels), _groups(table, cfg)
    everything = np.arange(n)
    if cfg.strategy == "official":
        if table.official_split is None:
            raise DatasetError("split.strategy is 'official' but this dataset ships no official split; "
                               "use strategy: ratio or kfold")
        part = np.asarray(table.official_split)
        train, val, test = (everything[part == s] for s in ("train", "val", "test"))
        if len(test) == 0 or len(train) == 0:
            lacking = " and ".join(s for s, rows in (("train", train), ("test", test)) if len(rows) == 0)
            where = f" in {table.root}" if table.root else ""
            raise DatasetError(f"the official split has no {lacking} rows{where} (split.strategy: official needs "
                               f"train and test; use strategy: ratio or kfold to split what is there)")
        if cfg.carve_val:
            train, val = np.sort(np.concatenate([train, val])), val[:0]
        if len(val) == 0:
            train, val = _holdout(train, cfg.val_fraction, strata, groups, cfg.seed, cfg.stratify)
        return [Fold(0, train, val, test)]
    if cfg.strategy == "ratio":
        rest, test = _holdout(everything, cfg.ratios.test, strata, groups, cfg.seed, cfg.stratify)
        val_frac = cfg.ratios.val / (cfg.ratios.train + cfg.ratios.val)
        train, val = _holdout(rest, val_frac, strata, groups, cfg.seed + 1, cfg.stratify)
        return [Fold(0, train, val, test)]
    folds = []
    for k, (rest, test) in enumerate(_kfold(everything, strata, groups, cfg.folds, cfg.seed, cfg.stratify)):
        train, val = _holdout(np.sort(rest), cfg.val_fraction, strata, groups, cfg.seed + 1 + k, cfg.stratify)
        folds.append(Fold(k, train, val, np.sort(test)))
    return folds


def split_manifest(table: SampleTable, folds: list[Fold]) -> pd.DataFrame:
    """One row per (fold, sample): which split each file is in. Saved with the run and hashed."""
    rows = []
    patients = table.patient_ids or [""] * len(table)
    for fold in folds:
        for split, idx in (("train", fold.train), ("val", fold.val), ("test", fold.test)):
            for i in idx:
                rows.append((fold.index, split, table.ids[i], patients[i]))
    return pd.DataFrame(rows, columns=["fold", "split", "sample_id", "patient_id"])


def leaked_patients(table: SampleTable, fold: Fold) -> set[str]:
    """Patients present on more than one side of a fold (empty for a grouped split)."""
    if table.patient_ids is None:
        return set()
    p = np.asarray(table.patient_ids, dtype=str)
    sides = [set(p[fold.train]), set(p[fold.val]), set(p[fold.test])]
    return (sides[0] & sides[1]) | (sides[0] & sides[2]) | (sides[1] & sides[2])
