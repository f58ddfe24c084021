"""The one latency profiler: cost, conversion per runtime, a timing subprocess per (runtime, threads).

Used by ``cxrbench profile`` and by the engine for a suite's ``profile.latency``; the method is
described in :mod:`cxrbench.profiling.latency`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from cxrbench.suite.latency import LatencyConfig
from cxrbench.models.cost import cost_fields
from cxrbench.profiling.fingerprint import allowed_cpus, device_fingerprint
from cxrbench.results.store import device_label
from cxrbench.profiling.end_to_end import pool_end_to_end, summarize_end_to_end
from cxrbench.profiling.latency import summarize
from cxrbench.results.latency import LatencyRecord
from cxrbench.profiling.runtimes import qualified_name
from cxrbench.profiling.runtimes.base import ExportContext, Prepared
from cxrbench.profiling.worker import spawn

log = logging.getLogger(__name__)

Evaluate = Callable[[Callable[[torch.Tensor], torch.Tensor]], dict[str, float]]
"""``evaluate(predict) -> {metric: value}``: ``predict`` maps a normalised CPU float batch to logits."""


def resolve_device(name: str) -> str:
    """``cpu`` or ``cuda`` (``auto``: CUDA when available)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("latency device 'cuda' asked for but CUDA is not available")
    return name


def resolve_threads(threads: list[Any], allowed: list[int]) -> list[int]:
    """Thread counts with ``all`` replaced by the number of allowed CPUs (duplicates removed)."""
    return list(dict.fromkeys(len(allowed) if t == "all" else int(t) for t in threads))


def pick_cpus(threads: int, cfg: LatencyConfig, allowed: list[int]) -> list[int]:
    """The CPUs a worker with ``threads`` threads is pinned to: ``cfg.cpus`` or the last allowed ones
    (CPU 0 usually takes most interrupts)."""
    pool = [c for c in (cfg.cpus or allowed) if c in allowed] or allowed
    return pool[-threads:] if threads <= len(pool) else pool


def random_images(n: int, in_chans: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """``n`` standard-normal images (already 'normalised'): the calibration fallback."""
    return torch.randn(n, in_chans, *size, generator=torch.Generator().manual_seed(seed))


def _size(input_size: int | tuple[int, int]) -> tuple[int, int]:
    return (input_size, input_size) if isinstance(input_size, int) else (int(input_size[0]), int(input_size[1]))


def _cpu_eval(model: nn.Module) -> nn.Module:
    """The model itself when it already lives on the CPU, else a CPU copy; in eval mode."""
    on_cpu = all(t.device.type == "cpu" for t in [*model.parameters(), *model.buffers()])
    return (model if on_cpu else copy.deepcopy(model).cpu()).eval()


def profile_model(model: nn.Module, cfg: LatencyConfig, input_size: int | tuple[int, int], in_chans: int,
                  calib_images: torch.Tensor | None = None, evaluate: Evaluate | None = None, *,
                  name: str | None = None, meta: dict[str, Any] | None = None, calib_source: str | None = None,
                  registry: Any = None, end_to_end: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Latency records of ``model`` for every runtime, thread count and batch size of ``cfg``.

    ``calib_images``: normalised float images ``(N, C, H, W)`` (training split) for int8
    calibration and output checks (random when None, and the record says so). ``evaluate``: when
    given, the torch model's and every quantised runtime's accuracy are measured with it.
    ``name`` labels the records (default: the class name); ``meta`` (e.g. suite, run, job) is
    merged into each. Errors of one runtime become ``status: error`` records; nothing raises
    for a runtime that fails. ``end_to_end`` ``{"path": image file, "mean": [...], "std": [...]}``
    (per channel, [0, 1] units) also times file -> decode -> resize -> normalise -> inference at
    batch 1 in the same processes (:mod:`cxrbench.profiling.end_to_end`), into the batch-1
    records' ``end_to_end``; an unreadable file raises :class:`~cxrbench.errors.DatasetError`.
    """
    unknown = set(meta or {}) - {f.name for f in dataclasses.fields(LatencyRecord)}
    if unknown:
        raise ValueError(f"meta keys {sorted(unknown)} are not LatencyRecord fields")
    size = _size(input_size)
    e2e = _end_to_end_job(end_to_end, cfg, size, in_chans) if end_to_end is not None else None
    was_training = model.training
    try:
        cpu_model = _cpu_eval(model)
        return _profile(cpu_model, cfg, size, in_chans, calib_images, evaluate, name or type(model).__name__,
                        dict(meta or {}), calib_source, registry, e2e)
    finally:
        model.train(was_training)


def _profile(model: nn.Module, cfg: LatencyConfig, size: tuple[int, int], in_chans: int,
             calib_images: torch.Tensor | None, evaluate: Evaluate | None, label: str, meta: dict[str, Any],
             calib_source: str | None, registry: Any, e2e: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    from cxrbench.results.store import now_iso

    device = resolve_device(cfg.device)
    allowed = allowed_cpus()
    thread_counts = resolve_threads(cfg.threads, allowed)
    device_name = device_label(cfg.device_name)
    cost = cost_fields(model, size, in_chans, cross_check=True)
    example = torch.randn(2, in_chans, *size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        num_classes = int(model(example).shape[-1])
    if calib_images is None:
        calib_images = random_images(min(cfg.calib_images, 64), in_chans, size)
        calib_source = "random normal images (no calibration data given)"
    calib_images = calib_images.detach().float().cpu()
    base = {"model": label, "device_name": device_name, "input_shape": [in_chans, *size],
            "num_classes": num_classes, "config": cfg.model_dump(mode="json"), **cost, **meta}
    fingerprint = device_fingerprint(device_name)
    if registry is None:
        from cxrbench.plugins import get_registry

        registry = get_registry()
    backends = registry.latency_backends
    records: list[dict[str, Any]] = []
    accuracy_fp32: dict[str, float] | None = None

    def emit(runtime: str, threads: int, **fields: Any) -> None:
        for batch in cfg.batch_sizes:
            rec = LatencyRecord(**base, runtime=runtime, threads=threads, batch_size=batch,  # type: ignore[arg-type]
                                measured_at=now_iso(), device=fingerprint, **fields)
            records.append(rec.to_dict())

    with tempfile.TemporaryDirectory(prefix="cxrbench-latency-") as tmp:
        ctx = ExportContext(model=model, workdir=Path(tmp), example=example, calib_images=calib_images,
                            calib_source=calib_source or "given by the caller", cfg=cfg, device=device)
        for runtime in cfg.runtimes:
            spec = backends.get(runtime)
            if spec is None:
                for t in thread_counts:
                    emit(runtime, t, status="error",
                         error=f"unknown latency runtime {runtime!r}; registered: {', '.join(backends)}")
                continue
            problem = spec.check() if spec.check else None
            if problem:
                for t in thread_counts:
                    emit(runtime, t, status="unavailable", error=problem, runtime_plugin=spec.plugin)
                continue
            try:
                prepared: Prepared = spec.prepare(ctx)
                load_ref = qualified_name(spec.load)
            except Exception as exc:  # noqa: BLE001 - e.g. VerificationError: an error, never a number
                log.warning("%s on %s: %s", label, runtime, exc)
                for t in thread_counts:
                    emit(runtime, t, status="error", error=f"{type(exc).__name__}: {exc}", runtime_plugin=spec.plugin)
                continue
            run_device = prepared.device if prepared.device in spec.devices else "cpu"
            acc: dict[str, Any] = {}
            if evaluate is not None and prepared.predict is not None:
                try:
                    if accuracy_fp32 is None:
                        accuracy_fp32 = _evaluate_torch(model, evaluate)
                    acc = {"accuracy": evaluate(prepared.predict), "accuracy_fp32": accuracy_fp32}
                except Exception as exc:  # noqa: BLE001 - the latency is still worth having
                    log.warning("%s on %s: evaluation failed: %s", label, runtime, exc)
                    acc = {"accuracy_note": f"evaluation failed: {type(exc).__name__}: {exc}"}
            elif prepared.predict is not None:
                acc = {"accuracy_note": "no evaluation data given (standalone profile): accuracy not measured"}
            common = {"runtime_plugin": spec.plugin, "device_type": run_device,
                      "export_seconds": prepared.info.get("export_seconds"),
                      "verification": prepared.info.get("verification", {}),
                      "runtime_version": prepared.info.get("runtime_version"),
                      "artifact_bytes": prepared.artifact_bytes, **acc}
            for t in thread_counts:
                cpus = pick_cpus(t, cfg, allowed) if run_device == "cpu" else None
                job = {"backend": {"name": runtime, "load": load_ref, "payload": prepared.payload},
                       "threads": t, "cpus": cpus, "device": run_device, "input_shape": [in_chans, *size],
                       "batch_sizes": cfg.batch_sizes, "config": process_config(cfg).model_dump(mode="json")}
                if e2e is not None:
                    job["end_to_end"] = e2e["job"]
                timed = len(cfg.batch_sizes) + (e2e is not None)
                timeout = 300 + timed * (cfg.max_seconds / cfg.processes + 5 * cfg.warmup_seconds + 60)
                result = merge_processes([spawn(job, timeout) for _ in range(cfg.processes)])
                info = {**prepared.info.get("runtime_info", {}), **(result.get("runtime_info") or {})}
                if not result.get("ok"):
                    emit(runtime, t, status="error", error=result.get("error"), runtime_info=info, cpus=cpus, **common)
                    continue
                records.extend(_records_from_worker(result, base, runtime, t, fingerprint, info, common, cfg,
                                                    e2e))
    return records


def _end_to_end_job(spec: dict[str, Any], cfg: LatencyConfig, size: tuple[int, int], in_chans: int) -> dict[str, Any]:
    """``{"job": what the worker gets, "image": the file's description}``, the file checked by decoding it once."""
    from cxrbench.profiling.end_to_end import describe_image

    if size[0] != size[1]:
        raise ValueError(f"end-to-end latency needs a square input (decode_file resizes to a square), got {size}")
    if 1 not in cfg.batch_sizes:
        raise ValueError(f"end-to-end latency is timed at batch 1; batch_sizes {cfg.batch_sizes} lack it")
    mean, std = [float(v) for v in spec["mean"]], [float(v) for v in spec["std"]]
    if len(mean) != in_chans or len(std) != in_chans:
        raise ValueError(f"end-to-end mean/std need {in_chans} values each, got {mean} / {std}")
    image = describe_image(spec["path"], size[0], in_chans)
    if spec.get("generated"):
        image["generated"] = spec["generated"]
    return {"job": {"path": image["path"], "size": size[0], "channels": in_chans, "mean": mean, "std": std},
            "image": image, "normalization": {"name": spec.get("normalization"), "mean": mean, "std": std}}


def process_config(cfg: LatencyConfig) -> LatencyConfig:
    """What each of ``cfg.processes`` timing processes runs: an equal share of the sample and time budgets."""
    p = cfg.processes
    return cfg.model_copy(update={"min_samples": math.ceil(cfg.min_samples / p), "min_seconds": cfg.min_seconds / p,
                                  "max_seconds": cfg.max_seconds / p})


def merge_processes(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the results of several timing processes of one (runtime, threads) into one result.

    Samples are concatenated (process order); chunk and sample counts add up; first call and load
    time are the first process's, calibration the first's before and the last's after, peak memory
    the largest. Each batch keeps every process's median (``process_medians_ms``). Any failed
    process fails the whole.
    """
    failed = [r for r in results if not r.get("ok")]
    if failed:
        return failed[0]
    if len(results) == 1:
        out = dict(results[0])
        out["results"] = [r | {"process_medians_ms": [float(np.median(r["samples_ms"]))]} for r in out["results"]]
        if out.get("end_to_end"):
            out["end_to_end"] = pool_end_to_end([out["end_to_end"]])
        return out
    first, last = results[0], results[-1]
    out = {**first, "calibration_after": last.get("calibration_after"), "results": []}
    if first.get("end_to_end"):
        out["end_to_end"] = pool_end_to_end([r["end_to_end"] for r in results])
    for per_batch in zip(*(r["results"] for r in results)):
        head = per_batch[0]
        inter = dict(head["interference"])
        for key in ("chunks_total", "chunks_dropped", "samples_dropped"):
            inter[key] = sum(b["interference"][key] for b in per_batch)
        inter["all_chunks_busy"] = all(b["interference"]["all_chunks_busy"] for b in per_batch)
        for key in ("others_fraction_mean", "others_fraction_all_cpus_mean"):
            vals = [b["interference"][key] for b in per_batch if b["interference"].get(key) is not None]
            inter[key] = float(np.mean(vals)) if vals else None
        maxes = [b["interference"]["others_fraction_max"] for b in per_batch
                 if b["interference"].get("others_fraction_max") is not None]
        inter["others_fraction_max"] = max(maxes) if maxes else None
        inter["machine_busy"] = any(b["interference"].get("machine_busy") for b in per_batch)
        faults = [b["page_faults_per_iter"] for b in per_batch if b.get("page_faults_per_iter") is not None]
        cuda = [b["cuda_max_memory_allocated"] for b in per_batch if b.get("cuda_max_memory_allocated") is not None]
        out["results"].append({
            **head, "samples_ms": [s for b in per_batch for s in b["samples_ms"]],
            "measure_seconds": sum(b["measure_seconds"] for b in per_batch),
            "reached_cap": any(b["reached_cap"] for b in per_batch), "interference": inter,
            "peak_rss_bytes": max(b["peak_rss_bytes"] for b in per_batch),
            "page_faults_per_iter": float(np.mean(faults)) if faults else None,
            "cuda_max_memory_allocated": max(cuda) if cuda else None,
            "process_medians_ms": [float(np.median(b["samples_ms"])) for b in per_batch]})
    return out


def _evaluate_torch(model: nn.Module, evaluate: Evaluate) -> dict[str, float]:
    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x.float().cpu())

    return evaluate(predict)


def _records_from_worker(result: dict[str, Any], base: dict[str, Any], runtime: str, threads: int,
                         fingerprint: dict[str, Any], info: dict[str, Any], common: dict[str, Any],
                         cfg: LatencyConfig, e2e: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    from cxrbench.results.store import now_iso

    before, after = result.get("calibration_before"), result.get("calibration_after")
    calib_gflops = max((c["gflops"] for c in (before, after) if c), default=None)
    device = {**fingerprint, "cpus_used": result.get("cpus")}
    out = []
    for r in result["results"]:
        stats = summarize(r["samples_ms"], cfg.unstable_iqr)
        if r["interference"].get("all_chunks_busy"):
            stats["unstable"] = True
        batch = r["batch_size"]
        flops = base.get("flops")
        achieved = flops * batch / (stats["median_ms"] / 1e3) / 1e9 if flops and stats["median_ms"] > 0 else None
        rec = LatencyRecord(
            **base, runtime=runtime, threads=threads, batch_size=batch, **stats, **common,  # type: ignore[arg-type]
            cpus=result.get("cpus"), throughput_ips=batch / (stats["median_ms"] / 1e3),
            first_call_ms=r["first_call_ms"], load_seconds=result.get("load_seconds"),
            warmup_iters=r["warmup_iters"], warmup_seconds=r["warmup_seconds"], measure_seconds=r["measure_seconds"],
            reached_cap=r["reached_cap"], interference=r["interference"], peak_rss_bytes=r["peak_rss_bytes"],
            page_faults_per_iter=r.get("page_faults_per_iter"), processes=len(r["process_medians_ms"]),
            process_medians_ms=r["process_medians_ms"],
            process_spread=(max(r["process_medians_ms"]) - min(r["process_medians_ms"])) / stats["median_ms"],
            baseline_rss_bytes=result.get("baseline_rss_bytes"),
            cuda_max_memory_allocated=r["cuda_max_memory_allocated"],
            calibration={"before": before, "after": after}, calibration_gflops=calib_gflops,
            achieved_gflops=achieved,
            fraction_of_calibration=achieved / calib_gflops if achieved and calib_gflops else None,
            runtime_info=info | {"torch_threads": result.get("torch_threads")}, device=device,
            measured_at=now_iso(), samples_ms=r["samples_ms"] if cfg.keep_samples else [])
        if batch == 1 and result.get("end_to_end") and e2e is not None:
            rec.end_to_end = summarize_end_to_end(result["end_to_end"], stats["median_ms"], e2e["image"], cfg,
                                                  e2e["normalization"])
        out.append(rec.to_dict())
    return out
