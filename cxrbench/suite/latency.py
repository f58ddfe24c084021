"""How latency is measured: the :class:`LatencyConfig` schema (a suite's ``profile.latency``, ``cxrbench profile``).

Unset timing fields take the values of ``preset``: ``default`` (300 samples and 10 s of kept
measurement after >= 10 iterations and 1 s of warm-up, capped at 60 s, split over 3 fresh
processes) or ``quick`` (30 samples, 0.5 s, one process; for the quickstart and the tests). The
validated object always holds concrete values, so ``--print-resolved`` shows exactly what was used.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PRESETS: dict[str, dict[str, Any]] = {
    "default": {"warmup_iters": 10, "warmup_seconds": 1.0, "min_samples": 300, "min_seconds": 10.0,
                "max_seconds": 60.0, "chunk_seconds": 0.5, "calibration_repeats": 3, "processes": 3},
    "quick": {"warmup_iters": 5, "warmup_seconds": 0.5, "min_samples": 30, "min_seconds": 0.5,
              "max_seconds": 10.0, "chunk_seconds": 0.25, "calibration_repeats": 2, "processes": 1},
}


class LatencyConfig(BaseModel):
    """Latency profiling settings (see ``cxrbench/profiling/latency.py`` for the method)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Suites: profile each trained model after evaluation.")
    preset: Literal["default", "quick"] = Field("default", description="Fills the timing fields left unset.")
    runtimes: list[str] = Field(default_factory=lambda: ["torch"], min_length=1,
                                description="Latency backends (`torch`, `onnxruntime`, `int8`, or a plugin's).")
    threads: list[int | Literal["all"]] = Field(default_factory=lambda: [1], min_length=1,
                                                description="Thread counts; `all` = every CPU this process may use.")
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1)
    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", description="Where the torch runtime runs (auto: CUDA when present). ONNX runtimes use the CPU.")
    cpus: list[int] | None = Field(None, description="CPUs to pin to (default: the last `threads` allowed ones).")
    warmup_iters: int = Field(None, ge=1)  # type: ignore[assignment]  # filled from the preset
    warmup_seconds: float = Field(None, ge=0)  # type: ignore[assignment]
    min_samples: int = Field(None, ge=1)  # type: ignore[assignment]
    min_seconds: float = Field(None, ge=0)  # type: ignore[assignment]
    max_seconds: float = Field(None, gt=0, le=600)  # type: ignore[assignment]
    chunk_seconds: float = Field(None, gt=0)  # type: ignore[assignment]
    processes: int = Field(None, ge=1, le=20, description=(  # type: ignore[assignment]
        "Fresh timing processes per (runtime, threads); the sample and time budgets are split between "
        "them and their samples pooled (one process's memory layout can bias it by several percent)."))
    busy_threshold: float = Field(0.10, gt=0, le=1, description=(
        "A chunk is dropped when other processes used more than this fraction of the pinned CPUs."))
    busy_scope: Literal["pinned", "all"] = Field("pinned", description=(
        "Whose busy time drops a chunk: the pinned CPUs' (time-slicing) or every CPU's (stricter: also "
        "SMT siblings, caches, memory bandwidth; use on a dedicated device)."))
    unstable_iqr: float = Field(0.10, gt=0, description="IQR/median above this marks a result unstable.")
    settle_allocator: bool = Field(True, description=(
        "Free one 30 MiB block before timing so glibc stops page-faulting activations (see latency.py)."))
    calibration: bool = Field(True, description="Time an fp32 matmul before and after (GFLOP/s reference).")
    calibration_size: int = Field(2048, ge=64)
    calibration_repeats: int = Field(None, ge=1)  # type: ignore[assignment]
    calib_images: int = Field(256, ge=1, description="int8: calibration images (training split).")
    onnx_exporter: Literal["dynamo", "torchscript"] = Field(
        "dynamo", description="torch.onnx.export(dynamo=True) (needs onnxscript) or the legacy TorchScript one.")
    onnx_opset: int | None = Field(None, ge=13, description="Default: the exporter's own.")
    # Mostly relative to the output scale: untrained MobileNetV2 logits are ~1e-10, so an absolute 1e-6
    # (or even 1e-9) would accept any corruption; atol only covers all-zero outputs.
    atol: float = Field(1e-12, ge=0, description="ONNX check: |ort - torch| <= atol + rtol * max|torch|.")
    rtol: float = Field(1e-3, ge=0)
    keep_samples: bool = Field(True, description="Store every kept per-iteration latency in the record.")
    device_name: str | None = Field(None, description="Label of this machine (default: the hostname).")

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            preset = data.get("preset", "default")
            if preset in PRESETS:
                data = {**PRESETS[preset], **{k: v for k, v in data.items() if v is not None}}
        return data

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(b < 1 for b in v):
            raise ValueError(f"batch sizes must be >= 1, got {v}")
        return v

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: list[Any]) -> list[Any]:
        if any(isinstance(t, int) and t < 1 for t in v):
            raise ValueError(f"thread counts must be >= 1 or 'all', got {v}")
        return v

    @model_validator(mode="after")
    def _limits(self) -> "LatencyConfig":
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"min_seconds ({self.min_seconds}) exceeds max_seconds ({self.max_seconds})")
        return self
