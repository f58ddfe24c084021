"""The latency method without timing anything real: statistics, busy-chunk dropping, config, Pareto."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from pydantic import ValidationError

from cxrbench.suite.latency import PRESETS, LatencyConfig
from cxrbench.profiling.latency import CpuMeter, measure, parse_proc_stat, summarize
from cxrbench.profiling.plot import pareto_front, pareto_plot
from cxrbench.profiling.profiler import pick_cpus, resolve_threads

STAT = """cpu  100 5 50 1000 20 3 2 7 0 0
cpu0 60 5 30 400 10 1 1 3 0 0
cpu1 40 0 20 600 10 2 1 4 0 0
intr 12345 0 0
ctxt 999
"""


def test_summarize_matches_statistics_module():
    rng = np.random.default_rng(0)
    samples = list(rng.lognormal(mean=3.0, sigma=0.2, size=101))
    s = summarize(samples)
    # statistics.quantiles(method="inclusive") is the linear-interpolation definition numpy uses
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    quartiles = statistics.quantiles(samples, n=4, method="inclusive")
    pct = statistics.quantiles(samples, n=100, method="inclusive")
    assert s["median_ms"] == pytest.approx(statistics.median(samples))
    assert s["p90_ms"] == pytest.approx(deciles[8])
    assert s["p99_ms"] == pytest.approx(pct[98])
    assert s["iqr_ms"] == pytest.approx(quartiles[2] - quartiles[0])
    assert s["mean_ms"] == pytest.approx(statistics.fmean(samples))
    assert s["std_ms"] == pytest.approx(statistics.stdev(samples))
    assert s["min_ms"] == min(samples) and s["max_ms"] == max(samples) and s["n_samples"] == 101
    assert s["iqr_over_median"] == pytest.approx(s["iqr_ms"] / s["median_ms"])


def test_unstable_when_iqr_exceeds_a_tenth_of_the_median():
    tight = [10.0, 10.1, 10.2, 10.3, 10.4] * 4         # IQR 0.2 on a median of 10.2
    spread = [8.0, 9.0, 10.0, 11.0, 12.0] * 4          # IQR 2 on a median of 10
    assert summarize(tight)["unstable"] is False
    assert summarize(spread)["unstable"] is True
    assert summarize(spread, unstable_iqr=0.25)["unstable"] is False


def test_parse_proc_stat_busy_excludes_idle_and_iowait():
    stat = parse_proc_stat(STAT)
    # busy = user + nice + system + irq + softirq + steal
    assert stat["cpu0"] == (60 + 5 + 30 + 1 + 1 + 3, 60 + 5 + 30 + 1 + 1 + 3 + 400 + 10)
    assert stat["cpu1"][0] == 40 + 20 + 2 + 1 + 4
    assert set(stat) == {"cpu", "cpu0", "cpu1"}


class FakeMachine:
    """A clock, a /proc/stat and our own CPU time, all advanced by ``step``.

    Each step lasts 1/64 s of wall time, all of it our CPU time on CPU 1. During "busy" steps
    (numbered from the first measured step: the first call and 3 warm-up steps come before) another
    process uses ``other_load`` of CPU 1 and ``neighbour_load`` of CPU 0; busy steps return 100 ms.
    """

    HZ = 6400  # ticks per second: every step is exactly 100 ticks
    OFFSET = 4  # first call + 3 warm-up iterations

    def __init__(self, busy_steps: set[int], other_load: float = 0.5, neighbour_load: float = 0.0):
        self.t, self.n = 0.0, 0
        self.own, self.others, self.neighbour = 0.0, 0.0, 0.0
        self.busy_steps, self.other_load, self.neighbour_load = busy_steps, other_load, neighbour_load

    def clock(self) -> float:
        return self.t

    def step(self) -> float:
        dt = 1 / 64
        busy = self.n - self.OFFSET in self.busy_steps
        self.t += dt
        self.own += dt
        if busy:
            self.others += dt * self.other_load
            self.neighbour += dt * self.neighbour_load
        self.n += 1
        return 100.0 if busy else 1.0

    def read_stat(self) -> str:
        busy1 = round((self.own + self.others) * self.HZ)
        busy0 = round(self.neighbour * self.HZ)
        return (f"cpu  {busy0 + busy1} 0 0 0 0 0 0 0\ncpu0 {busy0} 0 0 999 0 0 0 0\n"
                f"cpu1 {busy1} 0 0 5 0 0 0 0\n")

    def meter(self) -> CpuMeter:
        return CpuMeter([1], read_stat=self.read_stat, read_own=lambda: self.own, clock=self.clock,
                        ticks_per_second=self.HZ)


def _cfg(**kw) -> LatencyConfig:
    base = dict(preset="quick", warmup_iters=3, warmup_seconds=0.0, min_samples=24, min_seconds=0.0,
                chunk_seconds=8 / 64, max_seconds=5.0, busy_threshold=0.10)
    return LatencyConfig(**(base | kw))


def test_busy_chunk_is_dropped_and_counted():
    machine = FakeMachine(busy_steps=set(range(8, 16)))  # the second chunk of 8 steps
    m = measure(machine.step, _cfg(), machine.meter(), clock=machine.clock)
    assert m.chunks_dropped == 1 and m.samples_dropped == 8
    assert 100.0 not in m.samples_ms and len(m.samples_ms) == 24   # 3 clean chunks of 8
    assert m.chunks_total == 4
    assert m.others_fraction[1] == pytest.approx(0.5) and m.others_fraction[0] == pytest.approx(0.0)
    assert m.warmup_iters == 3 and not m.all_chunks_busy


def test_light_neighbour_load_below_threshold_is_kept():
    machine = FakeMachine(busy_steps=set(range(8, 16)), other_load=0.05)
    m = measure(machine.step, _cfg(), machine.meter(), clock=machine.clock)
    assert m.chunks_dropped == 0 and m.samples_ms.count(100.0) == 8


def test_all_chunks_busy_keeps_everything_and_says_so():
    machine = FakeMachine(busy_steps=set(range(10_000)))
    m = measure(machine.step, _cfg(max_seconds=1.0), machine.meter(), clock=machine.clock)
    assert m.all_chunks_busy and m.reached_cap
    assert m.samples_ms and set(m.samples_ms) == {100.0}
    assert m.chunks_dropped == m.chunks_total == 8    # 1 s of 1/8 s chunks


def test_without_a_meter_nothing_is_dropped():
    machine = FakeMachine(busy_steps=set(range(8, 16)))
    m = measure(machine.step, _cfg(), None, clock=machine.clock)
    assert m.chunks_dropped == 0 and len(m.samples_ms) == 24 and m.others_fraction == []


def test_busy_scope_all_also_counts_the_other_cpus():
    # a neighbour saturating CPU 0 while CPU 1 (ours) stays clean: kept by default, dropped with scope "all"
    pinned = FakeMachine(busy_steps=set(range(8, 16)), other_load=0.0, neighbour_load=1.0)
    m = measure(pinned.step, _cfg(), pinned.meter(), clock=pinned.clock)
    assert m.chunks_dropped == 0 and m.others_fraction_all[1] == pytest.approx(0.5)   # 1 of 2 CPUs
    strict = FakeMachine(busy_steps=set(range(8, 16)), other_load=0.0, neighbour_load=1.0)
    m = measure(strict.step, _cfg(busy_scope="all"), strict.meter(), clock=strict.clock)
    assert m.chunks_dropped == 1 and 100.0 not in m.samples_ms
    summary = m.interference(strict.meter(), 0.1, "all")
    assert summary["others_fraction_all_cpus_mean"] == pytest.approx(0.5 / 4)   # 1 busy chunk of 4
    assert summary["machine_busy"] is True and summary["scope"] == "all"


def test_presets_fill_unset_timings_and_explicit_values_win():
    quick = LatencyConfig(preset="quick")
    for key, value in PRESETS["quick"].items():
        assert getattr(quick, key) == value
    default = LatencyConfig()
    timings = (default.min_samples, default.min_seconds, default.max_seconds, default.warmup_iters)
    assert timings == (300, 10.0, 60.0, 10)
    assert LatencyConfig(preset="quick", min_samples=7).min_samples == 7
    assert default.threads == [1] and default.batch_sizes == [1] and default.runtimes == ["torch"]


@pytest.mark.parametrize("bad", [{"bogus": 1}, {"max_seconds": 601}, {"threads": [0]}, {"batch_sizes": [0]},
                                 {"min_seconds": 20, "max_seconds": 10}, {"preset": "slow"}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValidationError):
        LatencyConfig(**bad)


def test_threads_and_cpu_pinning():
    assert resolve_threads([1, "all", 4], [0, 1, 2, 3]) == [1, 4]
    cfg = LatencyConfig()
    assert pick_cpus(1, cfg, [0, 1, 2, 3]) == [3]
    assert pick_cpus(2, cfg, [0, 1, 2, 3]) == [2, 3]
    assert pick_cpus(8, cfg, [0, 1]) == [0, 1]
    assert pick_cpus(1, LatencyConfig(cpus=[0, 2]), [0, 1, 2]) == [2]


def test_pareto_front_by_hand():
    pts = [{"model": "a", "metric": 0.80, "p90_ms": 5}, {"model": "b", "metric": 0.85, "p90_ms": 10},
           {"model": "c", "metric": 0.82, "p90_ms": 20}, {"model": "d", "metric": 0.90, "p90_ms": 40},
           {"model": "e", "metric": 0.79, "p90_ms": 6}]
    assert [p["model"] for p in pareto_front(pts)] == ["a", "b", "d"]
    assert [p["model"] for p in pareto_front(pts, higher_is_better=False)] == ["a", "e"]  # e: lower value


def test_pareto_plot_writes_png_and_svg(tmp_path):
    pytest.importorskip("matplotlib")
    pts = [{"model": m, "metric": acc, "p90_ms": ms, "device": dev}
           for dev, scale in (("laptop", 1.0), ("rpi5", 6.0))
           for m, acc, ms in (("lenet", 0.8, 2.0), ("resnet18", 0.9, 30.0), ("lrnet", 0.88, 12.0))
           for ms in [ms * scale]]
    paths = pareto_plot(pts, "accuracy", tmp_path / "plots" / "pareto")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths[1].read_text()
    assert "<svg" in svg and "rpi5" in svg and "lrnet" in svg


def _fake_worker_result(k: int) -> dict:
    """What timing process number ``k`` (1-based) would return: medians 10.5, 20.5, 30.5, ..."""
    samples = [10.0 * k] * 5 + [10.0 * k + 1] * 5
    inter = {"chunks_total": 2, "chunks_dropped": k - 1, "samples_dropped": 3 * (k - 1), "all_chunks_busy": False,
             "others_fraction_mean": 0.01 * k, "others_fraction_max": 0.05 * k,
             "others_fraction_all_cpus_mean": 0.0, "machine_busy": False}
    return {"ok": True, "cpus": [0], "load_seconds": 0.1 * k, "calibration_before": {"gflops": 50.0 + k},
            "calibration_after": {"gflops": 60.0 + k}, "baseline_rss_bytes": 1, "torch_threads": 1,
            "runtime_info": {}, "results": [{
                "batch_size": 1, "samples_ms": samples, "first_call_ms": 99.0 * k, "warmup_iters": 5,
                "warmup_seconds": 0.5, "measure_seconds": 1.0, "reached_cap": False, "interference": inter,
                "peak_rss_bytes": 100 * k, "page_faults_per_iter": 0.0, "cuda_max_memory_allocated": None}]}


def test_processes_split_the_budget_and_pool_their_samples(monkeypatch):
    import torch.nn as nn

    import cxrbench.profiling.profiler as profiler
    from cxrbench.profiling.profiler import profile_model

    jobs: list[dict] = []

    def fake_spawn(job, timeout):
        jobs.append(job)
        return _fake_worker_result(len(jobs))

    monkeypatch.setattr(profiler, "spawn", fake_spawn)
    cfg = LatencyConfig(runtimes=["torch"], processes=3, min_samples=300, min_seconds=9.0, max_seconds=60.0,
                        device_name="t")
    (r,) = profile_model(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), cfg, 2, 3)
    assert len(jobs) == 3
    assert {(j["config"]["min_samples"], j["config"]["min_seconds"], j["config"]["max_seconds"]) for j in jobs} == {
        (100, 3.0, 20.0)}
    pooled = [s for k in (1, 2, 3) for s in _fake_worker_result(k)["results"][0]["samples_ms"]]
    assert r["samples_ms"] == pooled and r["n_samples"] == 30 and r["median_ms"] == statistics.median(pooled)
    assert r["processes"] == 3 and r["process_medians_ms"] == [10.5, 20.5, 30.5]
    assert r["process_spread"] == pytest.approx((30.5 - 10.5) / statistics.median(pooled))
    inter = r["interference"]
    assert (inter["chunks_total"], inter["chunks_dropped"], inter["samples_dropped"]) == (6, 3, 9)
    assert inter["others_fraction_max"] == pytest.approx(0.15)
    assert r["first_call_ms"] == 99.0 and r["load_seconds"] == pytest.approx(0.1)   # the cold, first process
    assert r["calibration"]["before"]["gflops"] == 51.0 and r["calibration"]["after"]["gflops"] == 63.0
    assert r["calibration_gflops"] == 63.0 and r["peak_rss_bytes"] == 300


def test_one_failed_process_fails_the_configuration():
    from cxrbench.profiling.profiler import merge_processes

    bad = {"ok": False, "error": "worker died"}
    assert merge_processes([_fake_worker_result(1), bad, _fake_worker_result(3)]) is bad


def test_pareto_labels_name_the_front_and_never_overprint(tmp_path):
    """Three points on top of each other and one apart: the front point and the distant one are named."""
    pts = [{"model": "front_model", "metric": 0.9, "p90_ms": 1.0, "device": "d"},
           {"model": "hidden_a", "metric": 0.5, "p90_ms": 20.0, "device": "d"},
           {"model": "hidden_b", "metric": 0.5, "p90_ms": 20.5, "device": "d"},
           {"model": "far_away", "metric": 0.1, "p90_ms": 300.0, "device": "d"}]
    svg = pareto_plot(pts, "accuracy", tmp_path / "p")[1].read_text()
    assert "front_model" in svg and "far_away" in svg and "hidden_a" in svg
    assert "hidden_b" not in svg  # would overprint hidden_a


def test_summarize_carries_order_statistic_cis_of_median_and_p90():
    from scipy.stats import binom

    rng = np.random.default_rng(1)
    samples = rng.lognormal(mean=2.0, sigma=0.5, size=200)
    s = summarize(samples)
    x = np.sort(samples)
    for name, q in (("median", 0.5), ("p90", 0.9)):
        # textbook: l = largest rank with F(l-1) <= 0.025, u = smallest with F(u-1) >= 0.975 (Binomial(n, q))
        cdf = binom.cdf(np.arange(201), 200, q)
        low = max(r for r in range(1, 201) if cdf[r - 1] <= 0.025)
        up = min(r for r in range(1, 201) if cdf[r - 1] >= 0.975)
        assert s[f"{name}_ci_ms"] == [x[low - 1], x[up - 1]]
        assert s[f"{name}_ci_coverage"] == pytest.approx(cdf[up - 1] - cdf[low - 1]) and s[f"{name}_ci_coverage"] >= 0.95
        assert s[f"{name}_ci_ms"][0] <= s[f"{name}_ms"] <= s[f"{name}_ci_ms"][1]
    few = summarize(rng.lognormal(size=20))
    assert few["p90_ci_ms"][1] is None  # 20 samples cannot bound the p90 from above


def test_latency_record_and_leaderboard_cell_show_median_ci():
    from cxrbench.leaderboard.render import _ci_ms
    from cxrbench.results.latency import LatencyRecord

    s = summarize(np.random.default_rng(2).lognormal(size=50))
    rec = LatencyRecord(model="m", runtime="torch", threads=1, batch_size=1, **s)
    assert rec.median_ci_ms == s["median_ci_ms"] and rec.p90_ci_coverage == s["p90_ci_coverage"]
    assert _ci_ms([1.234, None]) == " [1.23, ?]" and _ci_ms(None) == ""
