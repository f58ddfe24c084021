"""High-bit-depth radiograph values -> uint8: the one linear rule DICOM and 16-bit PNG/TIFF share.

A value range ``[lo, hi]`` (the stored bit range, or what a DICOM window/VOI LUT outputs) is mapped
linearly onto 0..255, clipped, rounded half up. Passing ``lo > hi`` inverts the map (MONOCHROME1).
"""

from __future__ import annotations

import numpy as np


def bit_range(bits: int, signed: bool = False) -> tuple[int, int]:
    """The values ``bits`` stored bits can hold: ``(0, 2**bits - 1)``, or two's complement when signed."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def scale_to_uint8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``lo`` -> 0 and ``hi`` -> 255, linear in between, clipped outside, rounded half up.

    ``lo > hi`` gives the inverted map (``lo`` -> 0 still). ``lo == hi`` maps everything to 0.
    """
    if hi == lo:
        return np.zeros(np.shape(values), dtype=np.uint8)
    out = (np.asarray(values, dtype=np.float64) - lo) * (255.0 / (hi - lo)) + 0.5
    np.clip(out, 0.0, 255.0, out=out)
    return np.floor(out, out=out).astype(np.uint8)
