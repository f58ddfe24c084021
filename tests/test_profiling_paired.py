"""Paired latency: A B B A interleaving cancels drift; the worker runs two models in one process."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from cxrbench.metrics.quantiles import paired_ratio_ci, quantile_ci
from cxrbench.profiling.latency import measure
from cxrbench.profiling.paired import PAIRED_SCHEMA, interleave, paired_summary
from cxrbench.profiling.paired_run import profile_paired
from cxrbench.suite.latency import LatencyConfig

TRUE_RATIO = 1.25  # B takes 1.25x as long as A


class DriftingMachine:
    """A fake clock and two fake models whose latency grows linearly with (fake) time: the machine
    gets 2x slower over ``horizon_ms``. Each step advances the clock by its own latency."""

    def __init__(self, horizon_ms: float, seed: int = 0):
        self.now_ms, self.horizon = 0.0, horizon_ms
        self.rng = np.random.default_rng(seed)

    def clock(self) -> float:
        return self.now_ms / 1e3

    def step(self, base_ms: float):
        def run() -> float:
            ms = base_ms * (1.0 + self.now_ms / self.horizon) * self.rng.lognormal(0.0, 0.03)
            self.now_ms += ms
            return ms

        return run


CFG = LatencyConfig(warmup_iters=5, warmup_seconds=0.0, min_samples=400, min_seconds=0.0, max_seconds=600,
                    chunk_seconds=0.05)


def test_interleaved_ratio_covers_the_truth_where_sequential_runs_are_biased():
    # Paired: A B B A blocks of 5 iterations while the machine slows down 2x over the run.
    m = DriftingMachine(horizon_ms=10 * 800)  # ~800 iterations of ~10 ms
    res = interleave(m.step(10.0), m.step(10.0 * TRUE_RATIO), CFG, chunk_iters=5, min_blocks=8, clock=m.clock)
    assert res.n_blocks == 40 and all(len(c) == 5 for c in res.chunks_a + res.chunks_b)  # 400 samples each
    paired = paired_summary(res.chunks_a, res.chunks_b)
    low, high = paired["ratio_ci"]
    assert low < TRUE_RATIO < high and high - low < 0.03
    assert paired["ratio_b_over_a"] == pytest.approx(TRUE_RATIO, abs=0.01)
    # the same numbers by hand: per block, mean log ratio of chunk medians, then the median's CI
    logs = np.log([np.median(b) / np.median(a) for a, b in zip(res.chunks_a, res.chunks_b)])
    ref = quantile_ci(logs.reshape(-1, 2).mean(axis=1), 0.5)
    assert (paired["ratio_b_over_a"], low, high) == pytest.approx((math.exp(ref.estimate), math.exp(ref.low),
                                                                   math.exp(ref.high)))
    # Unpaired on the same drifting machine: all of A (the profiler's method), then all of B.
    m2 = DriftingMachine(horizon_ms=10 * 800, seed=1)
    cfg = CFG.model_copy(update={"warmup_iters": 10})
    a = measure(m2.step(10.0), cfg, None, clock=m2.clock).samples_ms
    b = measure(m2.step(10.0 * TRUE_RATIO), cfg, None, clock=m2.clock).samples_ms
    unpaired = float(np.median(b) / np.median(a))
    assert unpaired > 1.6  # ~1.25 x (1.75 / 1.25): B ran on a slower machine
    assert not low < unpaired < high
    print(f"paired B/A {paired['ratio_b_over_a']:.4f} [{low:.4f}, {high:.4f}] vs unpaired {unpaired:.3f}; "
          f"truth {TRUE_RATIO}")


def test_pair_level_ratio_without_blocks_is_wider_under_drift():
    m = DriftingMachine(horizon_ms=10 * 80)  # a fast drift: ~6% from one chunk to the next at first
    res = interleave(m.step(10.0), m.step(12.5), CFG, chunk_iters=5, clock=m.clock)
    blocks = paired_ratio_ci(res.chunks_b, res.chunks_a, block=2)
    pairs = paired_ratio_ci(res.chunks_b, res.chunks_a)
    assert pairs.n_pairs == 2 * blocks.n_pairs
    assert blocks.high - blocks.low < 0.5 * (pairs.high - pairs.low)  # A B and B A pairs lean opposite ways
    assert blocks.low < 1.25 < blocks.high


def test_busy_blocks_are_dropped_whole():
    m = DriftingMachine(horizon_ms=1e9)

    class Meter:
        calls = 0

        def snapshot(self):
            Meter.calls += 1
            return Meter.calls

        def others_fraction(self, before, after, scope):
            return 0.5 if before % 6 == 1 else 0.0  # every third block busy

    res = interleave(m.step(1.0), m.step(2.0), CFG.model_copy(update={"min_samples": 10}), chunk_iters=2,
                     min_blocks=8, meter=Meter(), clock=m.clock)
    assert res.n_blocks == 8 and res.blocks_dropped == 4 and res.blocks_total == 12
    assert len(res.chunks_a) == len(res.chunks_b) == 16


class Small(nn.Module):
    def __init__(self, depth: int):
        super().__init__()
        self.body = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 16, 16, 3, padding=1) for i in range(depth)])
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))


@pytest.mark.slow  # on a loaded machine busy blocks are dropped until the time cap (~50 s); the CLI test is quick
def test_profile_paired_runs_both_models_in_one_pinned_process():
    torch.manual_seed(0)
    cfg = LatencyConfig(runtimes=["torch"], threads=[1], batch_sizes=[1], preset="quick", calibration=False,
                        min_samples=40, warmup_seconds=0.1, min_seconds=0.1, device_name="test")
    recs = profile_paired(Small(1), Small(12), cfg, 32, 3, ("one", "twelve"), chunk_iters=3)
    (rec,) = recs
    assert rec["status"] == "ok", rec.get("error")
    assert rec["schema"] == PAIRED_SCHEMA and (rec["a"], rec["b"]) == ("one", "twelve")
    assert rec["n_blocks"] >= 8 and rec["a_n_samples"] == rec["b_n_samples"] == 6 * rec["n_blocks"]
    low, high = rec["ratio_ci"]
    assert low <= rec["ratio_b_over_a"] <= high and rec["ratio_ci_coverage"] >= 0.95
    assert rec["ratio_b_over_a"] > 2.0  # twelve convolutions against one
    assert len(rec["cpus"]) == 1


def test_cli_paired_json_and_errors(capsys):
    import json

    from cxrbench.cli import main

    args = ["profile", "lenet", "lenet", "--input-size", "32", "--in-chans", "1", "--paired", "--preset", "quick",
            "--min-samples", "30", "--min-seconds", "0.1", "--device-name", "test"]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (rec,) = doc["paired"]
    assert rec["status"] == "ok" and rec["runtime"] == "torch" and (rec["a"], rec["b"]) == ("lenet", "lenet")
    assert rec["ratio_ci"][0] <= rec["ratio_b_over_a"] <= rec["ratio_ci"][1]
    assert [r["model"] for r in doc["models"]] == ["lenet", "lenet"]
    assert main(["profile", "lenet", "--paired"]) != 0
    assert "exactly two models" in capsys.readouterr().err
    assert main([*args, "--out", "x.json"]) != 0
    assert "no latency file" in capsys.readouterr().err
