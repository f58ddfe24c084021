"""What a latency backend is given and returns (see :class:`cxrbench.specs.LatencyBackendSpec`).

A backend has two halves. ``prepare(ExportContext) -> Prepared`` runs in the parent process: it
turns the eval-mode model into what the runtime loads (a file), checks it against torch and may
offer an in-process ``predict`` for accuracy. ``load(LoadContext) -> Loaded`` runs inside the fresh
timing subprocess: it loads that file with the requested thread count and returns ``bind``, which
takes the fixed input tensor once and returns the zero-argument call that is timed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from cxrbench.errors import CxrbenchError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.nn as nn

    from cxrbench.suite.latency import LatencyConfig

EDGE_INSTALL = "pip install 'cxrbench[edge]'  (onnx, onnxscript, onnxruntime)"


class LatencyError(CxrbenchError):
    """A latency backend that cannot run: missing package, failed export or worker."""


class VerificationError(LatencyError):
    """A converted model whose outputs differ from torch's: an error, never a latency number."""


@dataclass
class ExportContext:
    """Everything ``prepare`` gets (parent process)."""

    model: "nn.Module"
    """The model in eval mode, on the CPU (do not modify it)."""
    workdir: Path
    """A private temporary folder for the files this backend writes."""
    example: "torch.Tensor"
    """A fixed float32 input ``(2, C, H, W)`` for export and output checks."""
    calib_images: "torch.Tensor | None"
    """Normalised float32 images ``(N, C, H, W)`` for checks and int8 calibration."""
    calib_source: str
    cfg: "LatencyConfig"
    device: str
    """Where the torch runtime times the model: ``cpu`` or ``cuda``."""
    cache: dict[str, Any] = field(default_factory=dict)
    """Shared between backends of one model (e.g. the fp32 ONNX export the int8 backend reuses)."""


@dataclass
class Prepared:
    """What ``prepare`` returns."""

    payload: dict[str, Any]
    """JSON-serialisable: handed to ``load`` in the worker (e.g. file paths)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Copied into every record: ``export_seconds``, ``verification``, ``runtime_version``, ..."""
    predict: "Callable[[torch.Tensor], torch.Tensor] | None" = None
    """Logits for a normalised CPU batch, in this process: set when accuracy must be measured (int8)."""
    device: str = "cpu"
    """Where the worker runs it (``cpu`` or ``cuda``)."""
    artifact_bytes: int | None = None


@dataclass(frozen=True)
class LoadContext:
    """Everything ``load`` gets (worker process)."""

    payload: dict[str, Any]
    threads: int
    device: str


@dataclass
class Loaded:
    """What ``load`` returns: ``bind(x)`` -> the zero-argument call that is timed."""

    bind: "Callable[[torch.Tensor], Callable[[], Any]]"
    info: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] | None = None


def file_bytes(path: str | Path) -> int:
    return Path(path).stat().st_size
