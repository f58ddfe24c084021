"""Built-in latency backends (``torch``, ``onnxruntime``, ``int8``), registered through the same hook
a third-party plugin uses.

Registering imports no torch: each spec's functions are module-level functions here that import
their runtime module (:mod:`cxrbench.profiling.runtimes`) when called; the timing subprocess
imports ``load`` by its qualified name, so they must stay module-level.
"""

from __future__ import annotations

import importlib
from typing import Any

from cxrbench.hookspecs import hookimpl
from cxrbench.specs import LatencyBackendSpec


def _runtime(name: str) -> Any:
    return importlib.import_module(f"cxrbench.profiling.runtimes.{name}")


def torch_prepare(ctx: Any) -> Any:
    return _runtime("torch_eager").prepare(ctx)


def torch_load(ctx: Any) -> Any:
    return _runtime("torch_eager").load(ctx)


def onnx_prepare(ctx: Any) -> Any:
    return _runtime("onnx").prepare(ctx)


def onnx_load(ctx: Any) -> Any:
    return _runtime("onnx").load(ctx)


def onnx_check() -> str | None:
    return _runtime("onnx").check()


def int8_prepare(ctx: Any) -> Any:
    return _runtime("int8").prepare(ctx)


def int8_load(ctx: Any) -> Any:
    return _runtime("int8").load(ctx)


def int8_check() -> str | None:
    return _runtime("int8").check()


@hookimpl
def register_latency_backends() -> list[LatencyBackendSpec]:
    return [
        LatencyBackendSpec(name="torch", prepare=torch_prepare, load=torch_load,
                           description="PyTorch eager, torch.inference_mode()", devices=("cpu", "cuda")),
        LatencyBackendSpec(name="onnxruntime", prepare=onnx_prepare, load=onnx_load, check=onnx_check,
                           description="torch.onnx.export (fp32, verified against torch) in ONNX Runtime (CPU)"),
        LatencyBackendSpec(name="int8", prepare=int8_prepare, load=int8_load, check=int8_check,
                           description="ONNX Runtime static int8 (QDQ, per-channel), calibrated on training images"),
    ]
