"""The ``torch`` latency backend: the model itself, eager mode, on the CPU or CUDA.

The model reaches the worker as a pickled module (``torch.save(model)``): that keeps a trained or
fine-tuned model exactly as it is (weights, replaced heads, adapted first conv) without knowing
how it was built, at the price that its class must be importable in the worker (a module-level
class of an installed package, the core or a test module; not one defined inside a function).
"""

from __future__ import annotations

import pickle
import time
from typing import Any, Callable

import torch

from cxrbench.profiling.runtimes.base import ExportContext, LatencyError, Loaded, LoadContext, Prepared, file_bytes


def prepare(ctx: ExportContext) -> Prepared:
    """Pickle the eval-mode model into the work folder."""
    path = ctx.workdir / "model.pt"
    t = time.perf_counter()
    try:
        torch.save(ctx.model, path)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise LatencyError(f"the model cannot be pickled for the timing subprocess ({type(exc).__name__}: {exc}); "
                           "define its class at module level of an importable module") from exc
    return Prepared(payload={"path": str(path)}, device=ctx.device, artifact_bytes=file_bytes(path),
                    info={"export_seconds": time.perf_counter() - t, "runtime_version": torch.__version__,
                          "runtime_info": {"mode": "eager", "inference_mode": True}})


def load(ctx: LoadContext) -> Loaded:
    """Unpickle the model onto ``ctx.device`` in eval mode."""
    model = torch.load(ctx.payload["path"], map_location=ctx.device, weights_only=False)
    model.eval()

    def bind(x: torch.Tensor) -> Callable[[], Any]:
        x = x.to(ctx.device)
        return lambda: model(x)

    return Loaded(bind=bind, info={"device": ctx.device})
