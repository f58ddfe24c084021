"""The same 4-job suite (2 models x 2 folds) under the local and the Ray executor on this machine.

Prints the wall time of each and what Ray adds per job. ``ray (1 job at a time)`` reserves every
CPU for each job and gives it the driver's thread count, so it does exactly the local run's work:
(its wall time - Ray start/stop - the local wall time) / 4 is Ray's overhead per job (task
submission, shipping the data, returning and writing artefacts, worker start-up amortised). ``cold``
starts Ray inside the run as ``cxrbench run --executor ray`` does (workers import torch first);
``warm`` joins an already running Ray whose workers have run a job before. ``ray (parallel)`` runs
one 1-thread job per CPU (warm). Per run, Ray also starts a small actor that streams job events to
the driver (~1 s, overlapped with the first jobs).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest
import torch
import yaml

from cxrbench.engine.executors.ray import _ray_temp_dir
from cxrbench.engine.runner import run_suite

CPUS = os.cpu_count() or 2
ROUNDS = 3
SUITE = {
    "name": "executor_bench",
    "task": {"type": "binary", "classes": ["normal", "pneumonia"]},
    "dataset": {"name": "synthetic_cxr", "options": {"n_samples": 240, "seed": 0}},
    "split": {"strategy": "kfold", "folds": 2},
    "input": {"image_size": 32, "channels": 1, "normalization": "dataset"},
    "models": ["lenet", "squeezenet1_1"],
    "train": {"epochs": 2, "batch_size": 32, "save_checkpoints": True},
    "metrics": {"primary": "accuracy", "report": ["accuracy", "f1", "roc_auc"], "bootstrap": 200},
}


def _timed(suite: Path, root: Path, *sets: str, executor: str = "local"):
    t0 = time.perf_counter()
    out = run_suite(suite, list(sets), results_root=root, device="cpu", executor=executor)
    wall = time.perf_counter() - t0
    assert out.status == "complete", [r.error for r in out.records]
    return wall, out


def test_local_vs_ray_wall_time(benchmark, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("CXRBENCH_MLFLOW", "0")  # time the executors, not a tracking plugin
    suite = tmp_path / "bench.yaml"
    suite.write_text(yaml.safe_dump(SUITE, sort_keys=False))
    root = tmp_path / "results"
    one_at_a_time = (f"executor.num_cpus={CPUS}", f"executor.threads={torch.get_num_threads()}")

    _timed(suite, root)  # warm-up: imports, allocator, caches
    cold_wall, cold = _timed(suite, root, *one_at_a_time, executor="ray")
    connect, shutdown = cold.executor.get("connect_seconds", 0.0), cold.executor.get("shutdown_seconds", 0.0)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=CPUS, include_dashboard=False, _temp_dir=_ray_temp_dir(), log_to_driver=False)
    local_t, warm_t = [], []
    try:
        _timed(suite, root, *one_at_a_time, executor="ray")  # warm the workers up
        for _ in range(ROUNDS):  # alternate, so changes in machine load hit both alike
            wall, local = _timed(suite, root)
            local_t.append(wall)
            wall, warm = _timed(suite, root, *one_at_a_time, executor="ray")
            warm_t.append(wall)
        parallel = ("executor.num_cpus=1", "executor.threads=1")
        _timed(suite, root, *parallel, executor="ray")  # a second worker process starts and imports torch
        parallel_wall, _ = _timed(suite, root, *parallel, executor="ray")
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    finally:
        ray.shutdown()

    same = all(a.metrics == b.metrics for a, b in zip(sorted(local.records, key=lambda r: r.job_id),
                                                       sorted(warm.records, key=lambda r: r.job_id)))
    local_wall, warm_wall = statistics.median(local_t), statistics.median(warm_t)
    cold_per_job = (cold_wall - connect - shutdown - local_wall) / 4
    warm_per_job = (warm_wall - local_wall) / 4
    print(f"\n4 jobs ({' + '.join(SUITE['models'])} x 2 folds, {SUITE['input']['image_size']} px, "
          f"{SUITE['train']['epochs']} epochs) on {CPUS} CPUs, median of {ROUNDS}:"
          f"\n  local                           {local_wall:7.1f} s   {_fmt(local_t)}"
          f"\n  ray warm (1 job at a time)      {warm_wall:7.1f} s   {_fmt(warm_t)}"
          f"\n  ray cold (1 job at a time)      {cold_wall:7.1f} s   (Ray start {connect:.1f} s + stop {shutdown:.1f} s)"
          f"\n  ray parallel ({CPUS} x 1 thread)     {parallel_wall:7.1f} s"
          f"\n  Ray overhead per job: warm {warm_per_job:+.2f} s; cold {cold_per_job:+.2f} s plus "
          f"{connect + shutdown:.1f} s once per run"
          f"\n  metrics identical local vs ray: {same}")
    benchmark.extra_info.update(local_s=local_wall, ray_warm_s=warm_wall, ray_cold_s=cold_wall,
                                ray_start_stop_s=connect + shutdown, ray_parallel_s=parallel_wall,
                                overhead_per_job_warm_s=warm_per_job, overhead_per_job_cold_s=cold_per_job)
    assert same


def _fmt(times: list[float]) -> str:
    return "(" + ", ".join(f"{t:.1f}" for t in times) + ")"
