"""The latency profiler against torch.utils.benchmark, against itself, and ONNX Runtime against eager.

For MobileNetV2 and ResNet18 (224 px, batch 1, 1 thread, untrained weights, denormals flushed):

- the profiler's median (fresh pinned subprocess) vs ``torch.utils.benchmark.Timer(...)
  .blocked_autorange(min_run_time=10)`` in this process, pinned to the same CPU: within 5%;
- two back-to-back profiles of the same model: medians within 5%;
- ONNX Runtime vs eager speed-up: printed.

Run with ``make bench`` on a quiet machine (neighbour load is what the profiler drops and the Timer
does not).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.utils.benchmark as tbench

from cxrbench.models.factory import create_model
from cxrbench.plugins import get_registry
from cxrbench.profiling.config import LatencyConfig
from cxrbench.profiling.fingerprint import allowed_cpus
from cxrbench.profiling.profiler import pick_cpus, profile_model
from cxrbench.specs import BuildRequest

SIZE = 224


def _timer_median_ms(model: torch.nn.Module, x: torch.Tensor, cpu: int, min_run_time: float) -> float:
    """torch.utils.benchmark's median in this process, pinned to ``cpu`` like the profiler's worker."""
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    threads = torch.get_num_threads()
    try:
        if before is not None:
            os.sched_setaffinity(0, {cpu})
        with torch.inference_mode():
            m = tbench.Timer("model(x)", globals={"model": model, "x": x}, num_threads=1).blocked_autorange(
                min_run_time=min_run_time)
        return m.median * 1e3
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
        torch.set_num_threads(threads)


def _median(records: list[dict], runtime: str) -> float:
    (rec,) = [r for r in records if r["runtime"] == runtime]
    assert rec["status"] == "ok", rec["error"]
    return rec["median_ms"]


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_profiler_vs_torch_benchmark_and_itself(benchmark, name):
    pytest.importorskip("onnxruntime")
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    model = create_model(get_registry().model(name), BuildRequest(num_classes=2, in_chans=3, image_size=SIZE)).eval()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    cfg = LatencyConfig(runtimes=["torch", "onnxruntime"], threads=[1], batch_sizes=[1], device_name="bench",
                        calibration=False)
    cpu = pick_cpus(1, cfg, allowed_cpus())[0]

    first = profile_model(model, cfg, SIZE, 3, name=name)
    timer_ms = _timer_median_ms(model, x, cpu, min_run_time=10.0)
    second = profile_model(model, cfg.model_copy(update={"runtimes": ["torch"]}), SIZE, 3, name=name)

    eager, eager_again, ort = _median(first, "torch"), _median(second, "torch"), _median(first, "onnxruntime")
    vs_timer, vs_itself, speedup = eager / timer_ms, eager_again / eager, eager / ort
    rec = next(r for r in first if r["runtime"] == "torch")
    print(f"\n{name}: profiler median {eager:.2f} ms (p90 {rec['p90_ms']:.2f}, n {rec['n_samples']}, "
          f"dropped chunks {rec['interference']['chunks_dropped']}/{rec['interference']['chunks_total']}) | "
          f"torch.utils.benchmark median {timer_ms:.2f} ms -> ratio {vs_timer:.3f} | "
          f"second profile {eager_again:.2f} ms -> ratio {vs_itself:.3f} | "
          f"ONNX Runtime {ort:.2f} ms -> speed-up x{speedup:.2f}")
    benchmark.extra_info.update({"profiler_over_timer": vs_timer, "repeat_ratio": vs_itself, "ort_speedup": speedup})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the configuration measured above; more threads than free cores spin
    with torch.inference_mode():
        benchmark.pedantic(model, args=(x,), rounds=5, iterations=1)
    torch.set_num_threads(threads)
    assert abs(vs_timer - 1) < 0.05, f"profiler vs torch.utils.benchmark: {100 * (vs_timer - 1):+.1f}%"
    assert abs(vs_itself - 1) < 0.05, f"two profiles differ by {100 * (vs_itself - 1):+.1f}%"
