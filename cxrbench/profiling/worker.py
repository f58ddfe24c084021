"""The timing subprocess: one (model, runtime, thread count), every batch size, then exit (or two
models interleaved: :func:`run_paired_job`); with ``end_to_end`` in the job, then the file ->
decode -> resize -> normalise -> inference timing (:mod:`cxrbench.profiling.end_to_end`).

Started by :func:`spawn` as ``python -c BOOTSTRAP job.json result.json``: the bootstrap pins the
CPU affinity before anything else is imported (threads created later inherit it) and the parent
has already put ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` in the environment, so torch and the
runtime start with the right thread pools. The result (or the error) is written as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

BOOTSTRAP = (
    "import json, os, sys\n"
    "cpus = json.load(open(sys.argv[1])).get('cpus')\n"
    "if cpus and hasattr(os, 'sched_setaffinity'):\n"
    "    os.sched_setaffinity(0, cpus)\n"
    "from cxrbench.profiling.worker import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes() -> int | None:
    """Current resident set size."""
    return _status_kb("VmRSS")


def peak_rss_bytes() -> int:
    """Peak resident set size since start (or since :func:`reset_peak_rss`)."""
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs``); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _setup_process(job: dict[str, Any]) -> tuple[int, str, Any, list[int] | None]:
    """The timing process's settings for ``job``: torch threads (intra-op = the job's, inter-op 1),
    flushed denormals, a settled allocator when asked. Returns (threads, device, config, pinned cpus)."""
    import torch

    from cxrbench.profiling.latency import settle_allocator
    from cxrbench.suite.latency import LatencyConfig

    threads, device = int(job["threads"]), job["device"]
    cfg = LatencyConfig.model_validate(job["config"])
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.set_flush_denormal(True)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if cfg.settle_allocator:
        settle_allocator()
    return threads, device, cfg, cpus


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Load the runtime, then per batch size: first call, warm-up, timed chunks. Returns JSON-able results."""
    import torch

    from cxrbench.profiling.calibration import matmul_gflops
    from cxrbench.profiling.latency import CpuMeter, cpu_step, cuda_step, measure
    from cxrbench.profiling.runtimes import resolve
    from cxrbench.profiling.runtimes.base import LoadContext

    threads, device, cfg, cpus = _setup_process(job)
    out: dict[str, Any] = {"threads": threads, "cpus": cpus, "device": device,
                           "torch_threads": torch.get_num_threads(), "baseline_rss_bytes": rss_bytes()}
    calib = (lambda: matmul_gflops(cfg.calibration_size, cfg.calibration_repeats, device)) if cfg.calibration else None
    out["calibration_before"] = calib() if calib else None

    load = resolve(job["backend"]["load"])
    t = time.perf_counter()
    loaded = load(LoadContext(payload=job["backend"]["payload"], threads=threads, device=device))
    out["load_seconds"] = time.perf_counter() - t
    out["runtime_info"] = loaded.info
    meter = CpuMeter.available(cpus)
    c, h, w = job["input_shape"]
    gen = torch.Generator().manual_seed(0)
    results = []
    for batch in job["batch_sizes"]:
        x = torch.randn(batch, c, h, w, generator=gen)
        call = loaded.bind(x)
        step = cuda_step(call) if device == "cuda" else cpu_step(call)
        peak_reset = reset_peak_rss()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            m = measure(step, cfg, meter)
        results.append({
            "batch_size": batch, "samples_ms": m.samples_ms, "first_call_ms": m.first_call_ms,
            "warmup_iters": m.warmup_iters, "warmup_seconds": m.warmup_seconds, "measure_seconds": m.seconds,
            "reached_cap": m.reached_cap, "interference": m.interference(meter, cfg.busy_threshold, cfg.busy_scope),
            "page_faults_per_iter": m.page_faults_per_iter,
            "peak_rss_bytes": peak_rss_bytes(), "peak_rss_is_per_batch": peak_reset,
            "cuda_max_memory_allocated": torch.cuda.max_memory_allocated() if device == "cuda" else None,
        })
    if job.get("end_to_end"):  # after model-only timing, same process, same loaded runtime, batch 1
        from cxrbench.profiling.end_to_end import run_end_to_end

        out["end_to_end"] = run_end_to_end(loaded.bind, job["end_to_end"], device, cfg, meter)
    if loaded.close is not None:
        loaded.close()
    del loaded
    out["calibration_after"] = calib() if calib else None
    out["results"] = results
    return out


def run_paired_job(job: dict[str, Any]) -> dict[str, Any]:
    """Two models (``job["backends"]``, A then B) in this one process: per batch size, A B B A blocks
    (:func:`cxrbench.profiling.paired.interleave`). Returns each batch's chunks of both."""
    import torch

    from cxrbench.profiling.latency import CpuMeter, cpu_step, cuda_step
    from cxrbench.profiling.paired import interleave
    from cxrbench.profiling.runtimes import resolve
    from cxrbench.profiling.runtimes.base import LoadContext

    threads, device, cfg, cpus = _setup_process(job)
    loaded = [resolve(b["load"])(LoadContext(payload=b["payload"], threads=threads, device=device))
              for b in job["backends"]]
    meter = CpuMeter.available(cpus)
    c, h, w = job["input_shape"]
    gen = torch.Generator().manual_seed(0)
    results = []
    for batch in job["batch_sizes"]:
        x = torch.randn(batch, c, h, w, generator=gen)
        steps = [(cuda_step if device == "cuda" else cpu_step)(m.bind(x)) for m in loaded]
        with torch.inference_mode():
            m = interleave(steps[0], steps[1], cfg, int(job.get("chunk_iters", 5)), meter=meter)
        results.append({"batch_size": batch, "chunks_a": m.chunks_a, "chunks_b": m.chunks_b,
                        "blocks_total": m.blocks_total, "blocks_dropped": m.blocks_dropped,
                        "all_blocks_busy": m.all_blocks_busy, "reached_cap": m.reached_cap, "seconds": m.seconds})
    for m in loaded:
        if m.close is not None:
            m.close()
    return {"threads": threads, "cpus": cpus, "device": device, "torch_threads": torch.get_num_threads(),
            "results": results}


def main(argv: list[str]) -> int:
    """``worker job.json result.json``: run the job and write ``{"ok": true, ...}`` or the error."""
    job_path, result_path = argv
    try:
        job = json.loads(Path(job_path).read_text())
        out = {"ok": True, **(run_paired_job(job) if job.get("paired") else run_job(job))}
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as data
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    Path(result_path).write_text(json.dumps(out))
    return 0 if out["ok"] else 1


def worker_env(threads: int) -> dict[str, str]:
    """The parent's environment with thread counts set and its import path passed on."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    paths = [p for p in sys.path if p and Path(p).is_dir()]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*paths, *env.get("PYTHONPATH", "").split(os.pathsep)]))
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def spawn(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``job`` in a fresh interpreter and return its result dict (``ok`` False on any failure)."""
    with tempfile.TemporaryDirectory(prefix="cxrbench-worker-") as tmp:
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(job))
        try:
            proc = subprocess.run([sys.executable, "-c", BOOTSTRAP, str(job_path), str(result_path)],
                                  env=worker_env(int(job["threads"])), capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timing subprocess exceeded {timeout:.0f} s"}
        if result_path.is_file():
            return json.loads(result_path.read_text())
        return {"ok": False, "error": f"timing subprocess died (exit code {proc.returncode}): "
                                      f"{proc.stderr.strip()[-1500:]}"}
