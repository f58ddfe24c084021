"""Is the top model really better? A paired bootstrap on the same test images, fold by fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrbench.engine.evaluation import read_predictions
from cxrbench.metrics.bootstrap import bootstrap_values
from cxrbench.plugins import Registry
from cxrbench.results.records import JobRecord

N_RESAMPLES = 1000


def _aligned(a: Path, b: Path, classes: list[str], task: str, positive: int):
    """Both models' predictions on the same test images, in the same row order."""
    pa, pb = read_predictions(a, classes, task, positive), read_predictions(b, classes, task, positive)
    ida = pd.read_csv(a, usecols=["sample_id"]).sample_id.astype(str).to_numpy()
    idb = pd.read_csv(b, usecols=["sample_id"]).sample_id.astype(str).to_numpy()
    if len(ida) != len(idb) or set(ida) != set(idb):
        return None
    order = pd.Series(np.arange(len(idb)), index=idb).loc[ida].to_numpy()
    return pa, pb.subset(order)


def paired_bootstrap_p(top: list[tuple[JobRecord, Path]], other: list[tuple[JobRecord, Path]], metric: str,
                       higher_is_better: bool, classes: list[str], task: str, positive: int,
                       registry: Registry, seed: int = 0) -> float | None:
    """Two-sided p-value that ``top`` and ``other`` have the same ``metric``.

    Jobs are paired by (fold, seed); each resample draws the same test images for both models, and
    the difference is averaged over the paired jobs. ``None`` when no pair shares its test set.
    """
    fn = registry.metric(metric).fn
    by_key = {(r.fold, r.seed): (r, d) for r, d in other}
    diffs = []
    for rec, run_dir in top:
        match = by_key.get((rec.fold, rec.seed))
        if match is None or not rec.predictions_path or not match[0].predictions_path:
            continue
        pair = _aligned(run_dir / rec.predictions_path, match[1] / match[0].predictions_path, classes, task, positive)
        if pair is None:
            continue
        va = bootstrap_values(fn, pair[0], N_RESAMPLES, seed=seed + rec.fold)
        vb = bootstrap_values(fn, pair[1], N_RESAMPLES, seed=seed + rec.fold)  # same seed: same rows drawn
        diffs.append(va - vb if higher_is_better else vb - va)
    if not diffs:
        return None
    d = np.nanmean(np.vstack(diffs), axis=0)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return None
    p = 2 * min((d <= 0).mean(), (d >= 0).mean())
    return float(min(1.0, max(p, 1.0 / len(d))))
