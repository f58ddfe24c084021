"""Augmentation and normalisation, applied to the cached uint8 tensors (torchvision transforms v2)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torchvision.transforms import v2

from cxrbench.suite.schema import (Affine, ColorJitter, HorizontalFlip, InputConfig, Normalization,
                                   RandomCrop, RandomResizedCrop, Rotation, VerticalFlip)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _step(step, size: int) -> v2.Transform:
    if isinstance(step, RandomResizedCrop):
        return v2.RandomResizedCrop(size, scale=step.scale, ratio=step.ratio, antialias=True)
    if isinstance(step, RandomCrop):
        return v2.RandomCrop(size, padding=step.padding or None)
    if isinstance(step, HorizontalFlip):
        return v2.RandomHorizontalFlip(step.p)
    if isinstance(step, VerticalFlip):
        return v2.RandomVerticalFlip(step.p)
    if isinstance(step, Rotation):
        return v2.RandomRotation(step.degrees)
    if isinstance(step, Affine):
        return v2.RandomAffine(step.degrees, translate=step.translate, scale=step.scale)
    if isinstance(step, ColorJitter):
        return v2.ColorJitter(brightness=step.brightness or None, contrast=step.contrast or None)
    raise TypeError(f"unknown augmentation {step!r}")


def train_transform(steps: list, cfg: InputConfig) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Per-sample train-time pipeline on uint8 ``(C, H, W)``; ``None`` when there is nothing to do."""
    ops = [_step(s, cfg.image_size) for s in steps]
    crops = any(isinstance(s, (RandomResizedCrop, RandomCrop)) for s in steps)
    if cfg.decode_size != cfg.image_size and not crops:
        ops.append(v2.CenterCrop(cfg.image_size))
    return v2.Compose(ops) if ops else None


def eval_transform(cfg: InputConfig) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Evaluation pipeline: a centre crop when images are cached larger than the model input."""
    return v2.CenterCrop(cfg.image_size) if cfg.decode_size != cfg.image_size else None


def model_normalization(mean: Sequence[float] | None, std: Sequence[float] | None,
                        channels: int) -> tuple[list[float], list[float], str]:
    """A model's own (mean, std) for ``input.normalization: model``, and where they came from.

    ``mean``/``std`` are the spec's RGB values (None: ImageNet's); for 1 channel the average of the
    three, as for ImageNet statistics.
    """
    source = "model" if mean is not None and std is not None else "imagenet (the model declares none)"
    m, s = (list(mean), list(std)) if source == "model" else (list(IMAGENET_MEAN), list(IMAGENET_STD))
    if channels == 1 and len(m) != 1:
        m, s = [float(np.mean(m))], [float(np.mean(s))]
    return [float(v) for v in m], [float(v) for v in s], source


def normalization_stats(cfg: InputConfig, images: np.ndarray, train_idx: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) in [0, 1] units; ``dataset`` statistics come from training rows only."""
    norm = cfg.normalization
    if isinstance(norm, Normalization):
        return list(norm.mean), list(norm.std)
    if norm == "none":
        return [0.0] * cfg.channels, [1.0] * cfg.channels
    if norm in ("imagenet", "model"):  # "model": ImageNet's is the shared default; each job uses model_normalization
        if cfg.channels == 1:
            return [float(np.mean(IMAGENET_MEAN))], [float(np.mean(IMAGENET_STD))]
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    # Chunked sums: a float copy of a whole training set (ChestX-ray14 at 224 px) would not fit in memory.
    total = np.zeros(cfg.channels)
    total_sq = np.zeros(cfg.channels)
    count = 0
    for start in range(0, len(train_idx), 256):
        x = images[np.sort(train_idx[start:start + 256])].astype(np.float64) / 255.0
        total += x.sum(axis=(0, 2, 3))
        total_sq += (x ** 2).sum(axis=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / max(count, 1)
    std = np.maximum(np.sqrt(np.maximum(total_sq / max(count, 1) - mean ** 2, 0.0)), 1e-6)
    return mean.tolist(), std.tolist()
