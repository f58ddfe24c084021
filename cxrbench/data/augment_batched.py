"""The ``kornia`` resampler: a whole batch augmented at once on the training device.

The parameters are those :meth:`cxrbench.data.augment.AugmentPlan.sample` draws (so the same
seed gives the same crops, flips and angles as the ``torchvision`` resampler); every geometric
step is turned into its inverse pixel map and the maps are composed, so each image is resampled
once (one bilinear ``kornia.geometry.transform.warp_affine`` for the batch) instead of once per
step; brightness and contrast (torchvision's formulas) follow on the float result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cxrbench.errors import CxrbenchError

KORNIA_HINT = "pip install 'cxrbench[gpu]' (kornia)"
_GRAY = (0.2989, 0.587, 0.114)


def kornia_available() -> bool:
    """Whether kornia can be imported here."""
    try:
        import kornia  # noqa: F401
    except ImportError:
        return False
    return True


def _shift(b: int, dx: np.ndarray | float, dy: np.ndarray | float) -> np.ndarray:
    m = np.tile(np.eye(3), (b, 1, 1))
    m[:, 0, 2], m[:, 1, 2] = dx, dy
    return m


def inverse_map(params: list[dict[str, Any]], b: int) -> np.ndarray:
    """``(B, 3, 3)`` map from output pixel centres to source pixel centres (all geometric steps)."""
    total = np.tile(np.eye(3), (b, 1, 1))
    for p in params:
        op, n = p["op"], p["in"]
        a = np.tile(np.eye(3), (b, 1, 1))
        if op == "resized_crop":
            size = p["size"]
            sx, sy = p["w"] / size, p["h"] / size
            a[:, 0, 0], a[:, 1, 1] = sx, sy
            a[:, 0, 2], a[:, 1, 2] = p["left"] + 0.5 * sx - 0.5, p["top"] + 0.5 * sy - 0.5
        elif op == "crop":
            a = _shift(b, p["left"], p["top"])
        elif op in ("hflip", "vflip"):
            axis = 0 if op == "hflip" else 1
            a[p["on"], axis, axis] = -1.0
            a[p["on"], axis, 2] = n - 1
        elif op == "affine":
            rot = np.radians(p["angle"])
            cos, sin = np.cos(rot) / p["scale"], np.sin(rot) / p["scale"]
            m = np.tile(np.eye(3), (b, 1, 1))
            m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, sin, -sin, cos
            c = (n - 1) / 2.0
            a = _shift(b, c, c) @ m @ _shift(b, -p["tx"], -p["ty"]) @ _shift(b, -c, -c)
        else:
            continue
        total = total @ a
    return total


def _contrast_mean(x: torch.Tensor) -> torch.Tensor:
    gray = x if x.shape[1] == 1 else sum(w * x[:, i:i + 1] for i, w in enumerate(_GRAY))
    return gray.mean(dim=(1, 2, 3), keepdim=True)


def apply_batched(images: torch.Tensor, params: list[dict[str, Any]], size: int) -> torch.Tensor:
    """uint8 ``(B, C, S, S)`` on any device -> float ``(B, C, size, size)`` in [0, 255], same device."""
    try:
        from kornia.geometry.transform import warp_affine
    except ImportError as exc:
        raise CxrbenchError(f"input.augment_device on the GPU needs kornia ({exc}); {KORNIA_HINT}") from None
    b, dev = len(images), images.device
    x = images.float()
    if any(p["op"] in ("resized_crop", "crop", "hflip", "vflip", "affine") for p in params) or x.shape[-1] != size:
        for p in params:
            p.setdefault("size", size)
        forward = np.linalg.inv(inverse_map(params, b))[:, :2, :]
        m = torch.as_tensor(forward, dtype=torch.float32, device=dev)
        x = warp_affine(x, m, (size, size), mode="bilinear", padding_mode="zeros", align_corners=True)
    for p in params:
        if p["op"] != "jitter":
            continue
        if p["use_b"]:
            x = (x * torch.as_tensor(p["brightness"], dtype=x.dtype, device=dev).view(b, 1, 1, 1)).clamp_(0, 255)
        if p["use_c"]:
            r = torch.as_tensor(p["contrast"], dtype=x.dtype, device=dev).view(b, 1, 1, 1)
            x = (x * r + (1 - r) * _contrast_mean(x)).clamp_(0, 255)
    return x
