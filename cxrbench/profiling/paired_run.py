"""Parent side of paired latency (``cxrbench profile A B --paired``): export both models, run the
interleaving timing processes, summarise; the method is in :mod:`cxrbench.profiling.paired`
(kept apart from it because the timing worker imports that module)."""

from __future__ import annotations

from typing import Any

from cxrbench.profiling.paired import CHUNK_ITERS, METHOD, PAIRED_SCHEMA, paired_summary
from cxrbench.suite.latency import LatencyConfig


def profile_paired(model_a: Any, model_b: Any, cfg: LatencyConfig, input_size: int, in_chans: int,
                   names: tuple[str, str], chunk_iters: int = CHUNK_ITERS, registry: Any = None) -> list[dict[str, Any]]:
    """Paired records (B over A) for every runtime, thread count and batch size of ``cfg``.

    ``cfg.processes`` fresh pinned processes each interleave both models (an equal share of the
    budgets, :func:`~cxrbench.profiling.profiler.process_config`); their blocks are pooled. A
    runtime that fails to prepare either model, or a failed process, gives a ``status: error`` record.
    """
    import tempfile
    from pathlib import Path

    import torch

    from cxrbench.profiling.fingerprint import allowed_cpus, device_fingerprint
    from cxrbench.profiling.profiler import _cpu_eval, pick_cpus, process_config, resolve_device, resolve_threads
    from cxrbench.profiling.runtimes import qualified_name
    from cxrbench.profiling.runtimes.base import ExportContext
    from cxrbench.profiling.worker import spawn
    from cxrbench.results.store import device_label, now_iso

    if registry is None:
        from cxrbench.plugins import get_registry

        registry = get_registry()
    device, allowed = resolve_device(cfg.device), allowed_cpus()
    size = (input_size, input_size)
    example = torch.randn(2, in_chans, *size, generator=torch.Generator().manual_seed(1))
    models = [_cpu_eval(m) for m in (model_a, model_b)]
    device_name = device_label(cfg.device_name)
    base = {"schema": PAIRED_SCHEMA, "a": names[0], "b": names[1], "device_name": device_name,
            "input_shape": [in_chans, *size], "chunk_iters": chunk_iters, "method": METHOD,
            "device": device_fingerprint(device_name)}
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cxrbench-paired-") as tmp:
        for runtime in cfg.runtimes:
            spec = registry.latency_backends.get(runtime)
            problem = f"unknown latency runtime {runtime!r}" if spec is None else (spec.check() if spec.check else None)
            backends = []
            try:
                if problem:
                    raise RuntimeError(problem)
                for side, model in zip("ab", models):
                    work = Path(tmp) / f"{runtime}-{side}"
                    work.mkdir()
                    ctx = ExportContext(model=model, workdir=work, example=example, calib_images=None,
                                        calib_source="none (paired latency)", cfg=cfg, device=device)
                    prepared = spec.prepare(ctx)
                    backends.append({"name": runtime, "load": qualified_name(spec.load), "payload": prepared.payload})
                    run_device = prepared.device if prepared.device in spec.devices else "cpu"
            except Exception as exc:  # noqa: BLE001 - one runtime's failure is a record, not a crash
                records += [{**base, "runtime": runtime, "threads": t, "batch_size": b, "status": "error",
                             "error": f"{type(exc).__name__}: {exc}"}
                            for t in resolve_threads(cfg.threads, allowed) for b in cfg.batch_sizes]
                continue
            for t in resolve_threads(cfg.threads, allowed):
                cpus = pick_cpus(t, cfg, allowed) if run_device == "cpu" else None
                job = {"paired": True, "backends": backends, "threads": t, "cpus": cpus, "device": run_device,
                       "input_shape": [in_chans, *size], "batch_sizes": cfg.batch_sizes, "chunk_iters": chunk_iters,
                       "config": process_config(cfg).model_dump(mode="json")}
                timeout = 300 + len(cfg.batch_sizes) * (2 * cfg.max_seconds / cfg.processes + 10 * cfg.warmup_seconds + 60)
                results = [spawn(job, timeout) for _ in range(cfg.processes)]
                failed = next((r for r in results if not r.get("ok")), None)
                for i, batch in enumerate(cfg.batch_sizes):
                    rec = {**base, "runtime": runtime, "threads": t, "batch_size": batch, "device_type": run_device,
                           "cpus": cpus, "measured_at": now_iso()}
                    if failed is not None:
                        records.append({**rec, "status": "error", "error": failed.get("error")})
                        continue
                    per = [r["results"][i] for r in results]
                    chunks_a = [c for p in per for c in p["chunks_a"]]
                    chunks_b = [c for p in per for c in p["chunks_b"]]
                    records.append({**rec, "status": "ok", **paired_summary(chunks_a, chunks_b),
                                    "processes": len(per), "blocks_total": sum(p["blocks_total"] for p in per),
                                    "blocks_dropped": sum(p["blocks_dropped"] for p in per),
                                    "all_blocks_busy": any(p["all_blocks_busy"] for p in per),
                                    "reached_cap": any(p["reached_cap"] for p in per),
                                    "measure_seconds": sum(p["seconds"] for p in per)})
    return records
