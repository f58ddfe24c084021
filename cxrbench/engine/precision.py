"""Training precision and what a run resolves to on its device (the protocol part of the runtime)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cxrbench.engine.batches import resolve_resampler
from cxrbench.errors import SuiteError
from cxrbench.suite.schema import Suite

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """The autocast dtype (None = fp32, no autocast) and whether gradients go through a GradScaler."""

    name: str
    dtype: torch.dtype | None
    scaler: bool


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` is a GPU with native bf16 (Ampere or later)."""
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``train.precision`` on ``device``: auto = bf16 on a GPU that has it, fp16 + GradScaler on an older
    GPU, fp32 elsewhere; fp16 always scales its gradients."""
    if name == "auto":
        if device.type != "cuda":
            name = "fp32"
        else:
            name = "bf16" if bf16_supported(device) else "fp16"
    if name not in DTYPES:
        raise SuiteError(f"train.precision: {name!r} is not one of auto, fp32, bf16, fp16")
    if name == "fp16" and device.type not in ("cuda", "cpu"):
        raise SuiteError(f"train.precision: fp16 on {device} is not supported; use fp32 or bf16")
    return Precision(name, DTYPES[name], scaler=name == "fp16")


def runtime_protocol(suite: Suite, device: torch.device) -> dict[str, str]:
    """What the suite resolves to on ``device`` that changes results, for the protocol hash: the
    precision unless fp32, and the resampler when it is kornia and an augmentation interpolates
    (flips and crops give the same pixels from both resamplers; tests/test_augment.py)."""
    from cxrbench.data.augment import AugmentPlan

    out: dict[str, str] = {}
    precision = resolve_precision(suite.train.precision, device)
    if precision.name != "fp32":
        out["precision"] = precision.name
    plan = AugmentPlan.from_suite(list(suite.augment), suite.input)
    if plan is not None and plan.interpolates and resolve_resampler(suite.input.augment_device, device) == "kornia":
        out["resampler"] = "kornia"
    return out
