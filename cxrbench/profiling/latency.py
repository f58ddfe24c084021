"""The latency method: how one (model, runtime, threads, batch) becomes a trustworthy number.

Why a method at all: the standard tools disagree on what "latency" is (timm reports the mean of
40 iterations, MLPerf single-stream the 90th percentile, ``torch.utils.benchmark`` the median with
its IQR, ``onnxruntime_perf_test`` p50..p999), and on a shared 2-core machine neighbour load moved
the same measurement from 17 to 183 ms. So cxrbench fixes every choice and records what happened.

Isolation
    Each (model, runtime, thread count) runs in **fresh subprocesses**
    (:mod:`cxrbench.profiling.worker`; ``processes``, 3 by default, each with an equal share of the
    sample and time budgets, samples pooled: one process's memory layout alone moved MobileNetV2's
    median by up to 6% between processes on a quiet VM): ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` are set in its
    environment and its CPU affinity is pinned (``os.sched_setaffinity``, to the last T CPUs the
    parent may use, or ``cpus:``) before torch is imported; then ``torch.set_num_threads(T)``,
    ``torch.set_num_interop_threads(1)``, ``torch.set_flush_denormal(True)`` (untrained weights
    produce denormals that make some CPUs ~10x slower). ONNX Runtime sessions get
    ``intra_op_num_threads=T``, ``inter_op_num_threads=1``. The model is in eval mode and runs
    under ``torch.inference_mode()`` on one fixed, pre-allocated input. One 30 MiB block is
    allocated and freed first (:func:`settle_allocator`): a fresh glibc process otherwise mmaps and
    page-faults every activation tensor of every forward pass (MobileNetV2: ~2,600 faults and up to
    2x slower per iteration), which a warm long-running process, or ``torch.utils.benchmark`` in
    one, does not; minor page faults per timed iteration are recorded.

What is timed
    The model is handed to the worker as a file (a pickled module for ``torch``, an ``.onnx``
    file for the ONNX runtimes); export time (parent) and load/session-creation time (worker)
    are recorded separately, and so is the **first call**. Then a warm-up of at least
    ``warmup_iters`` iterations *and* ``warmup_seconds``; then every iteration is timed on its own
    with ``time.perf_counter_ns`` (CUDA: a pair of CUDA events around the call, synchronised) until
    at least ``min_samples`` samples *and* ``min_seconds`` of kept measurement, capped at
    ``max_seconds`` (defaults 300 samples, 10 s, 60 s over 3 processes; ``quick``: 30, 0.5 s,
    10 s, 1 process).

Interference
    Timing runs in chunks of ``chunk_seconds``. Around each chunk the busy time of the pinned CPUs
    is read from ``/proc/stat`` and our own CPU time from ``getrusage``; their difference is what
    *other* processes (and the hypervisor, via steal time) took from our CPUs. A chunk where that
    exceeds ``busy_threshold`` (10%) of the pinned CPUs' capacity is dropped and counted, and
    measurement continues until enough clean samples exist. If every chunk was busy up to the cap,
    all samples are kept and the result is marked unstable. The same difference over *all* CPUs is
    recorded too (``machine_busy`` when it averages above the threshold: a neighbour on another
    core still shares caches, memory bandwidth and, on VMs, possibly an SMT sibling);
    ``busy_scope: all`` makes it the dropping criterion, for dedicated devices.

Statistics
    The **median** is the headline, the **p90** (MLPerf single-stream) stands beside it; mean, p99,
    min, max, std, IQR, IQR/median and the count of timed iterations are recorded too, and so are
    the raw kept samples. A result whose IQR/median exceeds ``unstable_iqr`` (0.10) is marked
    ``unstable``. Throughput = batch size / median. Peak memory is the worker's peak RSS on CPU
    (``getrusage`` ru_maxrss, the whole process including the runtime) or
    ``torch.cuda.max_memory_allocated`` on CUDA.

Physical reference
    Before and after the timing the worker measures an fp32 2048x2048 matmul at the same thread
    count (best of a few); each record reports the model's achieved GFLOP/s (FLOPs / median) and
    its fraction of that calibration, which makes numbers from different machines comparable and
    exposes a machine that slowed down during the run (before vs after).
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from cxrbench.suite.latency import LatencyConfig

# /proc/stat columns: user nice system idle iowait irq softirq steal guest guest_nice.
# guest time is already included in user; idle and iowait are not busy.
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


def summarize(samples_ms: list[float] | np.ndarray, unstable_iqr: float = 0.10) -> dict[str, Any]:
    """Median (headline), p90, mean, p99, min, max, std, IQR, IQR/median and n of latency samples (ms)."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples to summarise")
    q1, median, q3, p90, p99 = np.percentile(a, [25, 50, 75, 90, 99])
    iqr = float(q3 - q1)
    ratio = iqr / median if median > 0 else math.inf
    return {"median_ms": float(median), "p90_ms": float(p90), "mean_ms": float(a.mean()), "p99_ms": float(p99),
            "min_ms": float(a.min()), "max_ms": float(a.max()), "std_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "q1_ms": float(q1), "q3_ms": float(q3), "iqr_ms": iqr, "iqr_over_median": float(ratio),
            "n_samples": int(a.size), "unstable": bool(ratio > unstable_iqr), **quantile_cis(a)}


def quantile_cis(samples_ms: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """``median_ci_ms``/``p90_ci_ms`` ``[low, high]`` (None = unbounded: too few samples) and their exact
    coverage: the distribution-free order-statistic intervals of :func:`~cxrbench.metrics.quantiles.quantile_ci`."""
    from cxrbench.metrics.quantiles import quantile_ci  # scipy: not in the timing worker's imports

    out: dict[str, Any] = {}
    for name, q in (("median", 0.5), ("p90", 0.9)):
        ci = quantile_ci(samples_ms, q, confidence)
        out[f"{name}_ci_ms"] = [None if math.isnan(v) else float(v) for v in (ci.low, ci.high)]
        out[f"{name}_ci_coverage"] = None if math.isnan(ci.coverage) else float(ci.coverage)
    return out


def parse_proc_stat(text: str) -> dict[str, tuple[int, int]]:
    """``{"cpu": (busy, total), "cpu0": ...}`` in clock ticks from the text of ``/proc/stat``."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        name, *cols = line.split()
        values = [int(c) for c in cols[:8]]
        values += [0] * (8 - len(values))
        busy = sum(values[i] for i in _BUSY_COLUMNS)
        out[name] = (busy, busy + values[3] + values[4])
    return out


def read_proc_stat() -> str:
    with open("/proc/stat", encoding="ascii") as fh:
        return fh.read()


def own_cpu_seconds() -> float:
    """CPU time (user + system) of every thread of this process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass(frozen=True)
class CpuSnapshot:
    busy_seconds: float
    """Busy time of the watched (pinned) CPUs, all processes."""
    busy_all_seconds: float
    """Busy time of every CPU, all processes."""
    own_seconds: float
    """Our own process's CPU time."""
    wall: float


class CpuMeter:
    """Reads how busy the watched CPUs (and the whole machine) were, and how much of that was us.

    ``cpus`` are CPU indices (``None``: watch the whole machine). ``read_stat``, ``read_own`` and
    ``clock`` are injectable so the dropping logic can be tested.
    """

    def __init__(self, cpus: list[int] | None, read_stat: Callable[[], str] = read_proc_stat,
                 read_own: Callable[[], float] = own_cpu_seconds, clock: Callable[[], float] = time.perf_counter,
                 ticks_per_second: float | None = None):
        self.cpus = cpus
        self.read_stat, self.read_own, self.clock = read_stat, read_own, clock
        self.hz = ticks_per_second or float(os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
        per_cpu = [n for n in parse_proc_stat(read_stat()) if n != "cpu"]
        self.n_all = len(per_cpu) or (os.cpu_count() or 1)
        self.n_cpus = len(cpus) if cpus else self.n_all

    @classmethod
    def available(cls, cpus: list[int] | None) -> "CpuMeter | None":
        """A meter for ``cpus`` if ``/proc/stat`` is readable and lists them, else ``None``."""
        try:
            meter = cls(cpus)
            meter.snapshot()
            return meter
        except (OSError, KeyError, ValueError):
            return None

    def snapshot(self) -> CpuSnapshot:
        stat = parse_proc_stat(self.read_stat())
        names = [f"cpu{c}" for c in self.cpus] if self.cpus else ["cpu"]
        busy = sum(stat[n][0] for n in names) / self.hz
        return CpuSnapshot(busy, stat["cpu"][0] / self.hz, self.read_own(), self.clock())

    def others_fraction(self, before: CpuSnapshot, after: CpuSnapshot, scope: str = "pinned") -> float:
        """Fraction of the watched CPUs' (``scope="all"``: all CPUs') capacity used by other processes."""
        wall = after.wall - before.wall
        if wall <= 0:
            return 0.0
        own = after.own_seconds - before.own_seconds
        if scope == "all":
            return max(0.0, after.busy_all_seconds - before.busy_all_seconds - own) / (wall * self.n_all)
        return max(0.0, after.busy_seconds - before.busy_seconds - own) / (wall * self.n_cpus)


@dataclass
class Measurement:
    """What :func:`measure` saw: kept samples and how the rest was spent."""

    samples_ms: list[float]
    first_call_ms: float
    warmup_iters: int
    warmup_seconds: float
    chunks_total: int = 0
    chunks_dropped: int = 0
    samples_dropped: int = 0
    others_fraction: list[float] = field(default_factory=list)
    """Per chunk, the fraction of the pinned CPUs used by other processes."""
    others_fraction_all: list[float] = field(default_factory=list)
    """Per chunk, the fraction of all CPUs used by other processes."""
    all_chunks_busy: bool = False
    reached_cap: bool = False
    seconds: float = 0.0
    page_faults_per_iter: float | None = None
    """Minor page faults per timed iteration (allocator churn shows up here)."""
    kept_slices: list[tuple[int, int]] = field(default_factory=list)
    """``[start, stop)`` of each kept chunk among the timed iterations after warm-up (call
    ``1 + warmup_iters`` of ``step`` is index 0): lets a caller keep data it recorded per call."""

    def interference(self, meter: CpuMeter | None, threshold: float, scope: str = "pinned") -> dict[str, Any]:
        fr, fa = self.others_fraction, self.others_fraction_all
        return {"method": "/proc/stat busy time minus own getrusage time" if meter else "unavailable",
                "scope": scope, "cpus_watched": meter.cpus if meter else None, "threshold": threshold,
                "chunks_total": self.chunks_total, "chunks_dropped": self.chunks_dropped,
                "samples_dropped": self.samples_dropped, "all_chunks_busy": self.all_chunks_busy,
                "others_fraction_mean": float(np.mean(fr)) if fr else None,
                "others_fraction_max": float(np.max(fr)) if fr else None,
                "others_fraction_all_cpus_mean": float(np.mean(fa)) if fa else None,
                "machine_busy": bool(fa and np.mean(fa) > threshold)}


def measure(step: Callable[[], float], cfg: LatencyConfig, meter: CpuMeter | None,
            clock: Callable[[], float] = time.perf_counter) -> Measurement:
    """Run ``step`` (one timed call returning its latency in ms) under the method described above.

    The first call is timed separately, then warm-up, then chunks of timed iterations; chunks
    during which other processes used more than ``cfg.busy_threshold`` of the pinned CPUs are
    dropped. Stops at ``cfg.min_samples`` kept samples and ``cfg.min_seconds`` kept time, or at
    ``cfg.max_seconds``. ``cfg.busy_scope`` says whose CPUs count: the pinned ones (default) or all.
    """
    first = step()
    t0, n = clock(), 0
    while n < cfg.warmup_iters or clock() - t0 < cfg.warmup_seconds:
        step()
        n += 1
    m = Measurement([], first, n, clock() - t0)
    everything: list[float] = []
    kept_seconds, start, faults = 0.0, clock(), _minor_faults()
    while True:
        before = meter.snapshot() if meter else None
        c0, chunk, offset = clock(), [], len(everything)
        while not chunk or clock() - c0 < cfg.chunk_seconds:
            chunk.append(step())
        wall = clock() - c0
        m.chunks_total += 1
        everything.extend(chunk)
        busy = False
        if meter is not None and before is not None:
            after = meter.snapshot()
            m.others_fraction.append(meter.others_fraction(before, after, "pinned"))
            m.others_fraction_all.append(meter.others_fraction(before, after, "all"))
            busy = (m.others_fraction if cfg.busy_scope == "pinned" else m.others_fraction_all)[-1] > cfg.busy_threshold
        if busy:
            m.chunks_dropped += 1
            m.samples_dropped += len(chunk)
        else:
            m.samples_ms.extend(chunk)
            m.kept_slices.append((offset, offset + len(chunk)))
            kept_seconds += wall
        if len(m.samples_ms) >= cfg.min_samples and kept_seconds >= cfg.min_seconds:
            break
        if clock() - start >= cfg.max_seconds:
            m.reached_cap = True
            break
    m.page_faults_per_iter = (_minor_faults() - faults) / len(everything)
    if not m.samples_ms:  # every chunk was busy: report everything, flagged
        m.samples_ms, m.all_chunks_busy = everything, True
        m.kept_slices = [(0, len(everything))]
        m.samples_dropped = 0
    m.seconds = clock() - start
    return m


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def settle_allocator(nbytes: int = 30 * 2**20) -> None:
    """Allocate and free one large block, as a long-running process's history would.

    glibc serves big allocations with mmap until a freed mmapped block raises its threshold (up to
    32 MiB); before that, a fresh process page-faults on every activation tensor of every forward
    pass (MobileNetV2 at 224 px: ~3,000 faults and +40-100% per iteration). One 30 MiB block puts the
    timing subprocess in the steady state the timed loop of any warm process sees.
    """
    import torch

    block = torch.empty(nbytes // 4)
    del block


def cpu_step(call: Callable[[], Any]) -> Callable[[], float]:
    """A step timing ``call`` with ``perf_counter_ns`` (ms)."""
    clock = time.perf_counter_ns

    def step() -> float:
        t = clock()
        call()
        return (clock() - t) / 1e6

    return step


def cuda_step(call: Callable[[], Any]) -> Callable[[], float]:
    """A step timing ``call`` with CUDA events, synchronised after each call (ms)."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def step() -> float:
        start.record()
        call()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return step
