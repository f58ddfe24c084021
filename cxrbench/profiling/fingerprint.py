"""What machine a latency was measured on: hardware, OS and runtime versions, and a user label."""

from __future__ import annotations

import os
import platform
import socket
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from cxrbench.environment import cpu_model
from cxrbench.results.store import device_label


def _pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def ram_bytes() -> int | None:
    """Total physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def allowed_cpus() -> list[int]:
    """CPUs this process may run on (all of them where affinity is not supported)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def device_fingerprint(device_name: str | None = None, cpus_used: list[int] | None = None) -> dict[str, Any]:
    """CPU model, logical/allowed/used CPUs, RAM, GPU, OS and the versions of every runtime involved."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "device_name": device_label(device_name),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "cpus_allowed": allowed_cpus(),
        "cpus_used": cpus_used,
        "ram_bytes": ram_bytes(),
        "gpu": gpu,
        "cuda": torch.version.cuda if gpu else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": _pkg("onnx"),
        "onnxruntime": _pkg("onnxruntime"),
        "numpy": _pkg("numpy"),
        "cxrbench": _pkg("cxrbench"),
    }
