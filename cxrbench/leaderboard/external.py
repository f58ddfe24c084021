"""Leaderboard columns for the suite's external test sets: each metric there, and the drop from internal.

Per external set ``NAME`` and metric ``M`` a board row carries ``ext:NAME:M_mean``/``_std`` (over
folds and seeds), ``ext:NAME:M_ci_low``/``_ci_high`` (the CI of the mean over jobs, from every job's
predictions on that set: :func:`cxrbench.leaderboard.intervals.metric_interval`), ``ext:NAME:n``
(images scored), ``ext:NAME:ci_method`` and ``delta:NAME:M`` = external mean minus internal (test split) mean.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from cxrbench.leaderboard.intervals import NO_CI, Interval
from cxrbench.results.records import JobRecord


def ext_col(name: str, metric: str, stat: str) -> str:
    """Board column of ``stat`` (mean, std, ci_low, ci_high) of ``metric`` on external set ``name``."""
    return f"ext:{name}:{metric}_{stat}"


def delta_col(name: str, metric: str) -> str:
    """Board column of external minus internal mean of ``metric``."""
    return f"delta:{name}:{metric}"


def external_names(cfg: dict[str, Any], records: list[JobRecord]) -> list[str]:
    """External set names: the suite's, in order, then any other a record has."""
    names = [e["name"] for e in cfg.get("external_test") or []]
    for rec in records:
        names += list(rec.external)
    return list(dict.fromkeys(names))


def _finite(values: list[float]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(v)]


def external_columns(recs: list[JobRecord], names: list[str], metrics: list[str], row: dict[str, Any],
                     interval: Callable[[str, str], Interval]) -> dict[str, Any]:
    """The external columns of one model's row (``row`` holds its internal ``M_mean`` columns);
    ``interval(name, metric)`` is that model's CI on external set ``name``."""
    out: dict[str, Any] = {}
    for name in names:
        entries = [rec.external[name] for rec in recs if name in rec.external]
        out[f"ext:{name}:n"] = int(entries[0]["n"]) if entries else math.nan
        for m in metrics:
            vals = _finite([e.get("metrics", {}).get(m, math.nan) for e in entries])
            mean = float(np.mean(vals)) if vals else math.nan
            std = float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else math.nan)
            iv = interval(name, m) if entries else NO_CI
            out[ext_col(name, m, "mean")], out[ext_col(name, m, "std")] = mean, std
            out[ext_col(name, m, "ci_low")], out[ext_col(name, m, "ci_high")] = iv.low, iv.high
            if m == metrics[0]:
                out[f"ext:{name}:ci_method"] = iv.method
            out[delta_col(name, m)] = mean - row.get(f"{m}_mean", math.nan)
    return out
