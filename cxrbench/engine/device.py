"""Device choice and seeding: the same code path on CPU, CUDA and MPS."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from cxrbench.errors import CxrbenchError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an unavailable explicit device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CxrbenchError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CxrbenchError("--device mps: the MPS backend is not available on this machine")
    if name not in ("cpu", "cuda", "mps"):
        raise CxrbenchError(f"--device {name!r}: expected auto, cpu, cuda or mps")
    return torch.device(name)


def seed_everything(seed: int, device: torch.device | None = None) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a CPU generator for shuffling.

    On a CUDA ``device`` only that GPU's generator is seeded (jobs training at once on other GPUs
    of this process keep theirs, and the CPU generator that builds models is left alone).
    """
    if device is not None and device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
    else:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
