"""Is the top model really better? A paired bootstrap on the same test images, fold by fold."""

from __future__ import annotations

import numpy as np

from cxrbench.metrics.bootstrap import bootstrap_values
from cxrbench.plugins import Registry
from cxrbench.results.records import JobRecord
from cxrbench.results.view import RunView

N_RESAMPLES = 1000


def paired_bootstrap_p(top: list[tuple[JobRecord, RunView]], other: list[tuple[JobRecord, RunView]], metric: str,
                       higher_is_better: bool, registry: Registry, seed: int = 0) -> float | None:
    """Two-sided p-value that ``top`` and ``other`` have the same ``metric``.

    Jobs (each with the run it belongs to) are paired by (fold, seed); each resample draws the same
    test images for both models, and the difference is averaged over the paired jobs. ``None`` when
    no pair shares its test set.
    """
    fn = registry.metric(metric).fn
    by_key = {(r.fold, r.seed): (r, run) for r, run in other}
    diffs = []
    for rec, run in top:
        match = by_key.get((rec.fold, rec.seed))
        if match is None or not rec.predictions_path or not match[0].predictions_path:
            continue
        a = run.predictions(rec)
        b = match[1].predictions(match[0]).aligned_to(a)  # the same test images, in the same row order
        if b is None:
            continue
        va = bootstrap_values(fn, a.pred, N_RESAMPLES, seed=seed + rec.fold)
        vb = bootstrap_values(fn, b.pred, N_RESAMPLES, seed=seed + rec.fold)  # same seed: same rows drawn
        diffs.append(va - vb if higher_is_better else vb - va)
    if not diffs:
        return None
    d = np.nanmean(np.vstack(diffs), axis=0)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return None
    p = 2 * min((d <= 0).mean(), (d >= 0).mean())
    return float(min(1.0, max(p, 1.0 / len(d))))
