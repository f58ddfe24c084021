"""Train-time augmentation whose randomness depends only on (seed, epoch, sample index).

Every random number an augmentation draws comes from a counter-based generator
(:func:`uniforms`: splitmix64 of seed, epoch, row index and a counter), so the same seed gives the
same augmented image whatever the worker count, batch size or batch order. Parameters are drawn
once (:meth:`AugmentPlan.sample`, vectorised over a batch) and applied by one of two resamplers:

* ``torchvision``: torchvision v2 functional ops per image on the CPU (each step resamples,
  ``random_resized_crop`` antialiased, rotation/affine nearest-neighbour, as torchvision's defaults);
* ``kornia``: one batched bilinear warp of the whole batch on the training device, all geometric
  steps composed into one matrix, then brightness/contrast (:mod:`cxrbench.data.augment_batched`).

Both draw the same parameters; their pixels differ by interpolation (see the README).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from cxrbench.suite.schema import (Affine, ColorJitter, HorizontalFlip, InputConfig, RandomCrop, RandomResizedCrop,
                                   Rotation, VerticalFlip)

DRAWS_PER_STEP = 24
"""Counters reserved per augmentation step (random_resized_crop uses 22)."""
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniforms(seed: int, epoch: int, index: np.ndarray, n: int) -> np.ndarray:
    """``(len(index), n)`` floats in [0, 1): draw ``k`` of sample ``index[i]`` is a pure function of
    (seed, epoch, index[i], k)."""
    key = _mix(np.array([seed % 2**64], np.uint64))
    key = _mix(key ^ np.array([epoch % 2**64], np.uint64))
    rows = _mix(key ^ np.asarray(index, np.int64).astype(np.uint64))
    counters = _mix(np.arange(n, dtype=np.uint64) + np.uint64(1 << 40))
    bits = _mix(rows[:, None] ^ counters[None, :])
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def _between(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return lo + (hi - lo) * u


def _randint(u: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Uniform integers in [0, n) (n >= 1)."""
    return np.minimum(np.floor(u * n), np.asarray(n) - 1).astype(np.int64)


def _resized_crop_boxes(u: np.ndarray, size: int, scale: tuple[float, float], ratio: tuple[float, float]
                        ) -> dict[str, np.ndarray]:
    """torchvision's RandomResizedCrop rule (10 tries, then a centre crop), vectorised over rows."""
    b, area = len(u), size * size
    top, left, h, w = (np.zeros(b, np.int64) for _ in range(4))
    done = np.zeros(b, bool)
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for k in range(10):
        target = area * _between(u[:, 2 * k], *scale)
        aspect = np.exp(_between(u[:, 2 * k + 1], lo, hi))
        ww = np.round(np.sqrt(target * aspect)).astype(np.int64)
        hh = np.round(np.sqrt(target / aspect)).astype(np.int64)
        ok = ~done & (ww > 0) & (ww <= size) & (hh > 0) & (hh <= size)
        w[ok], h[ok] = ww[ok], hh[ok]
        done |= ok
    if not done.all():  # fallback: the whole image at the nearest allowed ratio
        if 1.0 < min(ratio):
            fw, fh = size, int(round(size / min(ratio)))
        elif 1.0 > max(ratio):
            fh, fw = size, int(round(size * max(ratio)))
        else:
            fw = fh = size
        w[~done], h[~done] = fw, fh
    top = _randint(u[:, 20], size - h + 1)
    left = _randint(u[:, 21], size - w + 1)
    top[~done], left[~done] = (size - h[~done]) // 2, (size - w[~done]) // 2
    return {"top": top, "left": left, "h": h, "w": w}


@dataclass(frozen=True)
class AugmentPlan:
    """The suite's augmentation steps at its sizes: draws parameters and applies them on the CPU."""

    steps: tuple[Any, ...]
    size: int
    """Model input size (``input.image_size``)."""
    source: int
    """Size of the cached images (``input.decode_size``)."""

    @classmethod
    def from_suite(cls, steps: list, cfg: InputConfig) -> "AugmentPlan | None":
        """The plan of ``augment:`` under ``input:``; None when training images need no change."""
        steps = list(steps)
        crops = any(isinstance(s, (RandomResizedCrop, RandomCrop)) for s in steps)
        if not steps and cfg.decode_size == cfg.image_size:
            return None
        if not crops and cfg.decode_size != cfg.image_size:
            steps.append("center_crop")
        return cls(tuple(steps), cfg.image_size, cfg.decode_size)

    @property
    def interpolates(self) -> bool:
        """Whether a step resamples or rescales pixel values (so the two resamplers' pixels differ)."""
        return any(isinstance(s, (RandomResizedCrop, Rotation, Affine, ColorJitter)) for s in self.steps)

    def sample(self, seed: int, epoch: int, index: np.ndarray) -> list[dict[str, Any]]:
        """Per-step parameters for rows ``index`` (one array entry per row)."""
        u = uniforms(seed, epoch, index, DRAWS_PER_STEP * len(self.steps))
        out, cur = [], self.source
        for k, step in enumerate(self.steps):
            v = u[:, DRAWS_PER_STEP * k:DRAWS_PER_STEP * (k + 1)]
            p: dict[str, Any] = {"op": "", "in": cur}
            if isinstance(step, RandomResizedCrop):
                p.update(op="resized_crop", **_resized_crop_boxes(v, cur, step.scale, step.ratio))
                cur = self.size
            elif isinstance(step, RandomCrop):
                span = cur + 2 * step.padding - self.size + 1
                if span < 1:
                    raise ValueError(f"random_crop: {self.size}px does not fit in {cur}px + padding {step.padding}")
                p.update(op="crop", top=_randint(v[:, 0], span) - step.padding,
                         left=_randint(v[:, 1], span) - step.padding)
                cur = self.size
            elif step == "center_crop":
                off = int(round((cur - self.size) / 2.0))
                p.update(op="crop", top=np.full(len(v), off), left=np.full(len(v), off))
                cur = self.size
            elif isinstance(step, (HorizontalFlip, VerticalFlip)):
                p.update(op="hflip" if isinstance(step, HorizontalFlip) else "vflip", on=v[:, 0] < step.p)
            elif isinstance(step, Rotation):
                p.update(op="affine", angle=-_between(v[:, 0], -step.degrees, step.degrees),
                         tx=np.zeros(len(v)), ty=np.zeros(len(v)), scale=np.ones(len(v)))
            elif isinstance(step, Affine):
                dx, dy = (step.translate[0] * cur, step.translate[1] * cur) if step.translate else (0.0, 0.0)
                p.update(op="affine", angle=_between(v[:, 0], -step.degrees, step.degrees),
                         tx=np.round(_between(v[:, 1], -dx, dx)), ty=np.round(_between(v[:, 2], -dy, dy)),
                         scale=_between(v[:, 3], *step.scale) if step.scale else np.ones(len(v)))
            elif isinstance(step, ColorJitter):
                p.update(op="jitter", brightness=_between(v[:, 0], max(0.0, 1 - step.brightness), 1 + step.brightness),
                         contrast=_between(v[:, 1], max(0.0, 1 - step.contrast), 1 + step.contrast),
                         use_b=step.brightness > 0, use_c=step.contrast > 0)
            else:
                raise TypeError(f"unknown augmentation {step!r}")
            out.append(p)
        return out

    def apply_cpu(self, images: torch.Tensor, params: list[dict[str, Any]]) -> torch.Tensor:
        """uint8 ``(B, C, S, S)`` -> uint8 ``(B, C, size, size)``, torchvision v2 per image."""
        return torch.stack([self._one(images[i], params, i) for i in range(len(images))])

    def _one(self, img: torch.Tensor, params: list[dict[str, Any]], i: int) -> torch.Tensor:
        for p in params:
            op = p["op"]
            if op == "resized_crop":
                img = F.resized_crop(img, int(p["top"][i]), int(p["left"][i]), int(p["h"][i]), int(p["w"][i]),
                                     [self.size, self.size], antialias=True)
            elif op == "crop":
                img = F.crop(img, int(p["top"][i]), int(p["left"][i]), self.size, self.size)
            elif op == "hflip" and p["on"][i]:
                img = F.horizontal_flip(img)
            elif op == "vflip" and p["on"][i]:
                img = F.vertical_flip(img)
            elif op == "affine":
                img = F.affine(img, angle=float(p["angle"][i]), translate=[float(p["tx"][i]), float(p["ty"][i])],
                               scale=float(p["scale"][i]), shear=[0.0, 0.0], interpolation=InterpolationMode.NEAREST)
            elif op == "jitter":
                if p["use_b"]:
                    img = F.adjust_brightness(img, float(p["brightness"][i]))
                if p["use_c"]:
                    img = F.adjust_contrast(img, float(p["contrast"][i]))
        return img
