"""A physical reference: the machine's fp32 matmul throughput at the current thread count."""

from __future__ import annotations

import time
from typing import Any

import torch


def matmul_gflops(size: int = 2048, repeats: int = 3, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Best-of-``repeats`` GFLOP/s of one fp32 ``size x size`` matmul (2 n^3 FLOPs) on ``device``.

    Uses the thread count already set with ``torch.set_num_threads``. One untimed call first
    (allocation, library initialisation).
    """
    device = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.mm(a, b, out=out)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - t)
    best = min(times)
    return {"gflops": 2 * size ** 3 / best / 1e9, "size": size, "repeats": repeats, "best_seconds": best,
            "threads": torch.get_num_threads(), "device": device.type}
