"""The ``int8`` latency backend: ONNX Runtime static post-training quantisation (QDQ, per-channel).

The verified fp32 export is pre-processed (``quant_pre_process``: shape inference and graph
optimisation) and quantised with ``quantize_static`` (QDQ format, per-channel int8 weights, uint8
activations, MinMax calibration) on ``calib_images`` images: the suite's training split when the
engine profiles a trained model, synthetic_cxr or random images from the CLI (the record says
which). Quantisation changes the outputs by design, so it is not rejected for differing from
torch; instead its top-1 agreement with torch is recorded and, when the caller gives an
``evaluate`` callback (the engine: the test split), its accuracy next to the fp32 model's.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from cxrbench.profiling.runtimes import onnx as onnx_backend
from cxrbench.profiling.runtimes.base import ExportContext, LatencyError, Prepared, file_bytes

check = onnx_backend.check
load = onnx_backend.load  # the int8 file runs in the same kind of session


def _reader(images: np.ndarray, input_name: str, batch: int = 16) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(range(0, len(images), batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self._it, None)
            return None if start is None else {input_name: images[start:start + batch]}

    return Reader()


def quantize(fp32_path: Any, out_path: Any, images: np.ndarray) -> dict[str, Any]:
    """Static int8 quantisation of ``fp32_path`` calibrated on ``images`` (normalised float32 NCHW)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    t = time.perf_counter()
    pre = out_path.with_name(out_path.stem + "_pre.onnx")
    try:
        quant_pre_process(str(fp32_path), str(pre))
        preprocessed = True
    except Exception as exc:  # noqa: BLE001 - pre-processing is an optimisation; quantise the raw export
        logging.getLogger(__name__).debug("quant_pre_process failed: %s", exc)
        pre, preprocessed = fp32_path, False
    input_name = onnx_backend.session(pre).get_inputs()[0].name
    quantize_static(str(pre), str(out_path), _reader(images, input_name), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    return {"quantize_seconds": time.perf_counter() - t, "preprocessed": preprocessed}


def prepare(ctx: ExportContext) -> Prepared:
    """Quantise the verified fp32 export; record agreement with torch; offer ``predict`` for accuracy."""
    fp32_path, fp32_info = onnx_backend.fp32_onnx(ctx)
    if ctx.calib_images is None or not len(ctx.calib_images):
        raise LatencyError("int8 needs calibration images")
    images = np.ascontiguousarray(ctx.calib_images[:ctx.cfg.calib_images].numpy(), dtype=np.float32)
    path = ctx.workdir / "model_int8.onnx"
    q = quantize(fp32_path, path, images)
    sess = onnx_backend.session(path)
    agreement = onnx_backend.compare(ctx.model, sess, onnx_backend.check_inputs(ctx))

    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(onnx_backend.run_session(sess, x.detach().cpu().float()))

    return Prepared(
        payload={"path": str(path)}, artifact_bytes=file_bytes(path), predict=predict,
        info={"export_seconds": fp32_info["export_seconds"] + q["quantize_seconds"],
              "verification": agreement | {"passed": None, "note": "int8 differs by design; see accuracy"},
              "runtime_version": onnx_backend.ort_version(),
              "runtime_info": {"exporter": fp32_info["exporter"], "precision": "int8",
                               "quantization": "onnxruntime quantize_static, QDQ, per-channel, "
                                               "weights QInt8, activations QUInt8, MinMax",
                               "preprocessed": q["preprocessed"], "calibration_images": len(images),
                               "calibration_source": ctx.calib_source, "provider": "CPUExecutionProvider",
                               "quantize_seconds": q["quantize_seconds"]}})
