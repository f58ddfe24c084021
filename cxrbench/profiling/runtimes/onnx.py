"""The ``onnxruntime`` latency backend: ``torch.onnx.export`` (fp32), checked, timed in ONNX Runtime.

The export has a dynamic batch dimension and keeps the weights inside the ``.onnx`` file (no
external data). Before any timing its outputs are compared with torch's on a fixed random batch
and on calibration images: ``max|ort - torch| <= atol + rtol * max|torch|`` or
:class:`VerificationError` (the record then says ``error``, with no latency).
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from cxrbench.profiling.runtimes.base import (EDGE_INSTALL, ExportContext, LatencyError, Loaded, LoadContext,
                                              Prepared, VerificationError, file_bytes)

INPUT, OUTPUT = "input", "logits"


def check() -> str | None:
    """``None`` when onnx and onnxruntime import, else how to install them."""
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed: {EDGE_INSTALL}"
    return None


def _require() -> None:
    msg = check()
    if msg:
        raise LatencyError(msg)


def export_onnx(model: nn.Module, path: Path, example: torch.Tensor, exporter: str = "dynamo",
                opset: int | None = None) -> dict[str, Any]:
    """Export ``model`` to ``path`` with a dynamic batch dimension; returns exporter facts.

    ``exporter="dynamo"`` (torch.onnx.export(dynamo=True), needs onnxscript) falls back to the
    TorchScript exporter when it fails or onnxscript is missing; the record says which one ran.
    """
    t = time.perf_counter()
    errors = []
    order = ["dynamo", "torchscript"] if exporter == "dynamo" else ["torchscript"]
    for kind in order:
        if kind == "dynamo" and importlib.util.find_spec("onnxscript") is None:
            errors.append("dynamo: onnxscript not installed")
            continue
        kwargs: dict[str, Any] = {"input_names": [INPUT], "output_names": [OUTPUT]}
        if opset is not None:
            kwargs["opset_version"] = opset
        if kind == "dynamo":
            kwargs |= {"dynamo": True, "external_data": False, "verbose": False,
                       "dynamic_shapes": ({0: torch.export.Dim("batch")},)}
        else:
            kwargs |= {"dynamo": False, "dynamic_axes": {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}}
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (example,), str(path), **kwargs)
            return {"exporter": kind, "export_seconds": time.perf_counter() - t, "export_errors": errors,
                    "onnx_bytes": file_bytes(path)}
        except Exception as exc:  # noqa: BLE001 - try the other exporter, then report both
            errors.append(f"{kind}: {type(exc).__name__}: {str(exc)[:300]}")
    raise LatencyError("ONNX export failed: " + " | ".join(errors))


def session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session (``intra_op_num_threads=threads``, inter-op 1, sequential)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_session(sess: Any, x: torch.Tensor) -> np.ndarray:
    return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]


def check_inputs(ctx: ExportContext) -> list[torch.Tensor]:
    """The batches outputs are compared on: the fixed example and up to 16 calibration images."""
    batches = [ctx.example]
    if ctx.calib_images is not None and len(ctx.calib_images):
        batches.append(ctx.calib_images[:16])
    return batches


def compare(model: nn.Module, sess: Any, batches: list[torch.Tensor]) -> dict[str, Any]:
    """Largest absolute difference, output scale and top-1 agreement between torch and a session."""
    diff, scale, agree, n = 0.0, 0.0, 0, 0
    with torch.inference_mode():
        for x in batches:
            ref = model(x).float().numpy()
            out = run_session(sess, x)
            if out.shape != ref.shape:
                raise VerificationError(f"ONNX output shape {out.shape} differs from torch's {ref.shape}")
            diff = max(diff, float(np.abs(out - ref).max()))
            scale = max(scale, float(np.abs(ref).max()))
            agree += int((out.argmax(1) == ref.argmax(1)).sum())
            n += len(x)
    return {"max_abs_diff": diff, "max_abs_torch": scale, "top1_agreement": agree / max(n, 1), "n_checked": n}


def verify(model: nn.Module, path: Path, ctx: ExportContext) -> dict[str, Any]:
    """Compare the exported model with torch; :class:`VerificationError` beyond the tolerance."""
    result = compare(model, session(path), check_inputs(ctx))
    tol = ctx.cfg.atol + ctx.cfg.rtol * result["max_abs_torch"]
    result |= {"tolerance": tol, "atol": ctx.cfg.atol, "rtol": ctx.cfg.rtol, "passed": result["max_abs_diff"] <= tol}
    if not result["passed"] or not np.isfinite(result["max_abs_diff"]):
        raise VerificationError(
            f"ONNX Runtime outputs differ from torch: max |diff| {result['max_abs_diff']:.3g} > tolerance {tol:.3g} "
            f"(atol {ctx.cfg.atol:g} + rtol {ctx.cfg.rtol:g} x max|torch| {result['max_abs_torch']:.3g}); not timed")
    return result


def fp32_onnx(ctx: ExportContext) -> tuple[Path, dict[str, Any]]:
    """The verified fp32 export of ``ctx.model`` (made once per model, shared with the int8 backend)."""
    if "onnx_fp32" not in ctx.cache:
        _require()
        path = ctx.workdir / "model_fp32.onnx"
        info = export_onnx(ctx.model, path, ctx.example, ctx.cfg.onnx_exporter, ctx.cfg.onnx_opset)
        info["verification"] = verify(ctx.model, path, ctx)
        ctx.cache["onnx_fp32"] = (path, info)
    return ctx.cache["onnx_fp32"]


def ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


def prepare(ctx: ExportContext) -> Prepared:
    """Export, verify against torch, hand the file to the worker."""
    path, info = fp32_onnx(ctx)
    return Prepared(payload={"path": str(path)}, artifact_bytes=file_bytes(path),
                    info={"export_seconds": info["export_seconds"], "verification": info["verification"],
                          "runtime_version": ort_version(),
                          "runtime_info": {"exporter": info["exporter"], "export_errors": info["export_errors"],
                                           "precision": "fp32", "provider": "CPUExecutionProvider",
                                           "graph_optimization": "ORT_ENABLE_ALL"}})


def load(ctx: LoadContext) -> Loaded:
    """An ONNX Runtime session with ``intra_op_num_threads=threads``, ``inter_op_num_threads=1``."""
    _require()
    sess = session(ctx.payload["path"], ctx.threads)
    name = sess.get_inputs()[0].name

    def bind(x: torch.Tensor) -> Callable[[], Any]:
        feed = {name: np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)}
        return lambda: sess.run(None, feed)

    return Loaded(bind=bind, info={"providers": sess.get_providers()})
