"""Built-in latency backends (``torch``, ``onnxruntime``, ``int8``), registered through the same hook
a third-party plugin uses."""

from __future__ import annotations

from cxrbench.hookspecs import hookimpl
from cxrbench.profiling.runtimes import int8, onnx, torch_eager
from cxrbench.specs import LatencyBackendSpec


@hookimpl
def register_latency_backends() -> list[LatencyBackendSpec]:
    return [
        LatencyBackendSpec(name="torch", prepare=torch_eager.prepare, load=torch_eager.load,
                           description="PyTorch eager, torch.inference_mode()", devices=("cpu", "cuda")),
        LatencyBackendSpec(name="onnxruntime", prepare=onnx.prepare, load=onnx.load, check=onnx.check,
                           description="torch.onnx.export (fp32, verified against torch) in ONNX Runtime (CPU)"),
        LatencyBackendSpec(name="int8", prepare=int8.prepare, load=int8.load, check=int8.check,
                           description="ONNX Runtime static int8 (QDQ, per-channel), calibrated on training images"),
    ]
