"""Paired latency: two models interleaved in A B B A blocks in the same pinned processes, ratio B/A.

Timing model A minutes before model B lets machine drift (neighbour load, thermal state, frequency
scaling) into the comparison. ``cxrbench profile A B --paired`` instead loads both models into
each timing process (:func:`cxrbench.profiling.worker.run_paired_job`, pinned and set up as for one
model) and runs them in blocks of four chunks of ``chunk_iters`` iterations each: A B B A. Every
chunk is summarised by its median; per block the log ratio is the mean of ``log(med B1 / med A1)``
and ``log(med B2 / med A2)``, in which a drift linear over the block cancels exactly (both models'
chunks sit at the same mean time).

**The interval.** The reported ratio is the median of the per-block ratios, and its CI the
distribution-free order-statistic interval of that median
(:func:`cxrbench.metrics.quantiles.paired_ratio_ci` with ``block=2``). Chosen over a bootstrap
over chunks because (1) drift has already been cancelled within each block, so blocks are close to
independent and identically distributed, which is all the order-statistic interval needs, and its
coverage is then exact (>= 95%, reported) for any distribution of the block ratios, where the
bootstrap of a median is only asymptotically right and lumpy (it can only return sample values);
(2) the median of blocks ignores the few blocks a sudden load spike distorts, where a mean would
move. Blocks during which other processes took more than ``busy_threshold`` of the pinned CPUs are
dropped whole (both models alike) and counted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from cxrbench.suite.latency import LatencyConfig

PAIRED_SCHEMA = "cxrbench.latency-paired/1"
MIN_BLOCKS = 8
"""At least this many kept blocks per process (the 95% CI of a median needs 6 or more values)."""
CHUNK_ITERS = 5


@dataclass
class Interleaved:
    """Chunks of two models timed in A B B A blocks: ``chunks_a[i]``/``chunks_b[i]`` form pair ``i``
    (pairs ``2j``, ``2j + 1`` are block ``j``'s A B and B A halves)."""

    chunks_a: list[list[float]] = field(default_factory=list)
    chunks_b: list[list[float]] = field(default_factory=list)
    blocks_total: int = 0
    blocks_dropped: int = 0
    all_blocks_busy: bool = False
    reached_cap: bool = False
    seconds: float = 0.0

    @property
    def n_blocks(self) -> int:
        return len(self.chunks_a) // 2


def interleave(step_a: Callable[[], float], step_b: Callable[[], float], cfg: LatencyConfig,
               chunk_iters: int = CHUNK_ITERS, min_blocks: int = MIN_BLOCKS, meter: Any = None,
               clock: Callable[[], float] = time.perf_counter) -> Interleaved:
    """Warm both steps up, then time A B B A blocks of ``chunk_iters``-iteration chunks.

    ``step_*`` time one call each and return ms. Warm-up: alternating chunks until each model has
    ``cfg.warmup_iters`` iterations and ``cfg.warmup_seconds`` have passed. Stops once at least
    ``min_blocks`` blocks, ``cfg.min_samples`` samples per model and ``cfg.min_seconds`` are kept,
    or at ``cfg.max_seconds``. A busy block (``meter``, as in :func:`~cxrbench.profiling.latency.measure`)
    is dropped; if every block was busy, all are kept and ``all_blocks_busy`` says so.
    """
    t0, n = clock(), 0
    while n < cfg.warmup_iters or clock() - t0 < cfg.warmup_seconds:
        for step in (step_a, step_b):
            for _ in range(chunk_iters):
                step()
        n += chunk_iters
    out, everything = Interleaved(), Interleaved()
    start, kept_seconds = clock(), 0.0
    while True:
        before = meter.snapshot() if meter is not None else None
        b0 = clock()
        a1, b1, b2, a2 = ([step() for _ in range(chunk_iters)] for step in (step_a, step_b, step_b, step_a))
        wall = clock() - b0
        out.blocks_total += 1
        everything.chunks_a += [a1, a2]
        everything.chunks_b += [b1, b2]
        busy = False
        if before is not None:
            busy = meter.others_fraction(before, meter.snapshot(), cfg.busy_scope) > cfg.busy_threshold
        if busy:
            out.blocks_dropped += 1
        else:
            out.chunks_a += [a1, a2]
            out.chunks_b += [b1, b2]
            kept_seconds += wall
        kept = out.n_blocks
        if kept >= min_blocks and 2 * kept * chunk_iters >= cfg.min_samples and kept_seconds >= cfg.min_seconds:
            break
        if clock() - start >= cfg.max_seconds:
            out.reached_cap = True
            break
    if out.n_blocks == 0:
        out.chunks_a, out.chunks_b, out.all_blocks_busy = everything.chunks_a, everything.chunks_b, True
    out.seconds = clock() - start
    return out


def paired_summary(chunks_a: list[list[float]], chunks_b: list[list[float]], confidence: float = 0.95
                   ) -> dict[str, Any]:
    """``ratio_b_over_a`` (median of the A B B A block ratios), its order-statistic CI and coverage,
    and each model's pooled :func:`~cxrbench.profiling.latency.summarize` (prefixed ``a_``/``b_``)."""
    from cxrbench.metrics.quantiles import paired_ratio_ci
    from cxrbench.profiling.latency import summarize

    r = paired_ratio_ci(chunks_b, chunks_a, confidence, block=2)
    out: dict[str, Any] = {"ratio_b_over_a": r.ratio,
                           "ratio_ci": [None if math.isnan(v) else v for v in (r.low, r.high)],
                           "ratio_ci_coverage": None if math.isnan(r.coverage) else r.coverage, "n_blocks": r.n_pairs}
    for side, chunks in (("a", chunks_a), ("b", chunks_b)):
        stats = summarize([s for c in chunks for s in c])
        for key in ("median_ms", "median_ci_ms", "p90_ms", "p90_ci_ms", "iqr_over_median", "n_samples"):
            out[f"{side}_{key}"] = stats[key]
    return out


METHOD = ("A B B A blocks of chunks in the same pinned processes; per block the mean log ratio of chunk "
          "medians (B/A); ratio = median over blocks, CI = distribution-free order-statistic CI of that median")

