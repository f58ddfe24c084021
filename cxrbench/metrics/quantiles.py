"""Latency you can quote: distribution-free intervals for quantiles, and a drift-proof paired ratio.

**Quantile CI from order statistics.** For ``n`` independent samples of a continuous distribution,
the number ``K`` of samples below the true ``q``-quantile is Binomial(n, q). So
``[x_(l), x_(u)]`` (1-based order statistics) covers it with probability
``P(l <= K <= u - 1) = F(u - 1) - F(l - 1)`` (``F`` the binomial CDF) whatever the distribution.
We take the equal-tailed choice: ``l`` the largest rank with ``F(l - 1) <= alpha/2`` and ``u``
the smallest with ``F(u - 1) >= 1 - alpha/2``, so each tail has at most ``alpha/2`` and the achieved
coverage (reported) is at least the nominal one. When ``n`` is too small for a side (e.g. p90 of
20 samples has no upper rank), that bound is nan (unbounded) and the coverage counts it as infinite.
(Hahn & Meeker, *Statistical Intervals*, 1991, section 5.2; Conover, *Practical Nonparametric
Statistics*, 3rd ed., section 3.2.) The samples must be independent: samples pooled from several
processes with a process-level offset violate that, and the interval is then too narrow.

**Paired ratio.** Timing model A minutes before model B lets machine drift into the comparison.
Instead A and B run in alternating chunks (:func:`abba_order`: A B B A A B ..., which also cancels
a linear trend), each chunk summarised by its median, and the ratio of pair ``i`` is
``median(A_i) / median(B_i)``. :func:`paired_ratio_ci` reports the median ratio with the order-statistic
interval of the median of the per-pair log ratios, exponentiated (valid when pairs are independent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binom


def order_statistic_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int | None, int | None, float]:
    """1-based ranks ``(l, u)`` of the equal-tailed distribution-free CI of the ``q``-quantile of ``n``
    samples, and its exact coverage; ``None`` for a side ``n`` is too small for."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n <= 0:
        return None, None, math.nan
    tail = (1.0 - confidence) / 2.0
    cdf = binom.cdf(np.arange(n + 1), n, q)  # cdf[k] = P(K <= k)
    eps = 1e-12  # cdf rounding must not move a rank
    below = np.flatnonzero(cdf <= tail + eps)
    low = int(below[-1]) + 1 if below.size else None
    above = np.flatnonzero(cdf >= 1.0 - tail - eps)
    up = int(above[0]) + 1 if above.size and above[0] + 1 <= n else None
    f_up = 1.0 if up is None else float(cdf[up - 1])
    f_low = 0.0 if low is None else float(cdf[low - 1])
    return low, up, f_up - f_low


@dataclass(frozen=True)
class QuantileCI:
    """A sample quantile with its distribution-free interval (sample values, nan = unbounded)."""

    q: float
    estimate: float
    """``np.percentile(samples, 100 q)`` (as the latency summary)."""
    low: float
    high: float
    coverage: float
    """Exact coverage of ``[low, high]`` for continuous data (>= confidence when both sides exist)."""
    rank_low: int | None
    rank_high: int | None
    n: int
    confidence: float

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def quantile_ci(samples: Sequence[float] | np.ndarray, q: float = 0.5, confidence: float = 0.95) -> QuantileCI:
    """Distribution-free CI of the ``q``-quantile (median: 0.5, p90: 0.9) from order statistics."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    x = x[np.isfinite(x)]
    low, up, coverage = order_statistic_ranks(x.size, q, confidence)
    est = float(np.percentile(x, 100 * q)) if x.size else math.nan
    return QuantileCI(q, est, math.nan if low is None else float(x[low - 1]),
                      math.nan if up is None else float(x[up - 1]), coverage, low, up, int(x.size), confidence)


def abba_order(n_pairs: int) -> list[int]:
    """Which model (0 = A, 1 = B) runs each of ``2 n_pairs`` chunks: A B, B A, A B, ... (pair ``i`` is
    chunks ``2i`` and ``2i + 1``)."""
    return [m for i in range(n_pairs) for m in ((0, 1) if i % 2 == 0 else (1, 0))]


@dataclass(frozen=True)
class LatencyRatio:
    """``latency(A) / latency(B)`` from interleaved chunks, with a distribution-free CI."""

    ratio: float
    low: float
    high: float
    coverage: float
    n_pairs: int
    confidence: float

    def as_record(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def paired_ratio_ci(chunks_a: Sequence[Sequence[float]], chunks_b: Sequence[Sequence[float]],
                    confidence: float = 0.95, block: int = 1) -> LatencyRatio:
    """Median over pairs of ``median(A_i) / median(B_i)`` with the order-statistic CI of that median.

    ``chunks_a[i]`` and ``chunks_b[i]`` are the per-iteration times of the ``i``-th pair of adjacent
    chunks (see :func:`abba_order`); any time unit, the same for both. ``block=2`` first averages
    the log ratios of pairs ``2j`` (A B) and ``2j + 1`` (B A): one value per A B B A block, in
    which a linear drift cancels exactly (a trailing odd pair is left out); ``n_pairs`` then
    counts blocks.
    """
    if len(chunks_a) != len(chunks_b):
        raise ValueError(f"{len(chunks_a)} chunks of A but {len(chunks_b)} of B")
    med_a = np.array([np.median(c) for c in chunks_a], dtype=np.float64)
    med_b = np.array([np.median(c) for c in chunks_b], dtype=np.float64)
    if (med_a <= 0).any() or (med_b <= 0).any():
        raise ValueError("chunk medians must be positive")
    logs = np.log(med_a / med_b)
    if block > 1:
        logs = logs[: logs.size // block * block].reshape(-1, block).mean(axis=1)
    ci = quantile_ci(logs, 0.5, confidence)
    return LatencyRatio(math.exp(ci.estimate) if ci.n else math.nan, math.exp(ci.low), math.exp(ci.high),
                        ci.coverage, ci.n, confidence)
