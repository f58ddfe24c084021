"""Decode every image of a dataset once into one uint8 array shared by all models, folds and seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image

from cxrbench.specs import SampleTable


@dataclass
class ImageArray:
    """``images[i]`` is row ``keep[i]`` of the table, as uint8 ``(C, S, S)``."""

    images: np.ndarray
    keep: np.ndarray
    bad: list[tuple[str, str]] = field(default_factory=list)
    """(sample id, reason) of rows that could not be decoded."""


def to_size(arr: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Any uint8 grayscale/RGB array -> ``(channels, size, size)`` uint8 (bilinear resize)."""
    img = Image.fromarray(np.ascontiguousarray(arr))
    if channels == 1 and img.mode != "L":
        img = img.convert("L")
    elif channels == 3 and img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    out = np.asarray(img, dtype=np.uint8)
    return out[None] if out.ndim == 2 else out.transpose(2, 0, 1)


def materialize(table: SampleTable, size: int, channels: int,
                advance: Callable[[int], None] | None = None) -> ImageArray:
    """Decode and resize every row; rows that fail are listed in ``bad`` instead of crashing."""
    images = np.empty((len(table), channels, size, size), dtype=np.uint8)
    keep, bad = [], []
    for i in range(len(table)):
        try:
            images[len(keep)] = to_size(table.load_image(i, size), size, channels)
            keep.append(i)
        except Exception as exc:  # noqa: BLE001 - any decoder error is reported per file
            bad.append((table.ids[i], f"{type(exc).__name__}: {exc}"))
        if advance is not None:
            advance(1)
    return ImageArray(images[: len(keep)], np.asarray(keep, dtype=np.int64), bad)
