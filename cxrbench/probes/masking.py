"""The masking probe: hide the lung fields (or everything but them) and see what a model has left.

Geometry: a centred rectangle covering ``width`` x ``height`` of the image (fractions, default
0.7 x 0.7) holds both lung fields of a standard PA/AP radiograph. Conditions:

- ``original``: the test images as evaluated by the run;
- ``lungs_masked``: the rectangle filled with a constant, so only the border is kept (markers,
  text, collimation edges, devices at the periphery);
- ``center_only``: the border filled instead, only the lung fields kept.

The fill is the mean training-pixel value, a constant: a per-image mean would leak the hidden
pixels' brightness (e.g. dense opacities) into the masked image.

Flag rule (:func:`shortcut_verdict`): with ``margin`` = how far the model's primary metric is
above the majority baseline on the same test rows, a model is flagged as possibly using
shortcuts when it keeps at least ``retain`` (default half) of that margin with the lungs masked.
A model reading the lungs should fall to about the baseline once they are hidden; keeping half
its advantage means at least half its skill comes from outside the lung fields. Models less than
``min_margin`` above the baseline have no margin to keep and are never flagged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal

import torch

Condition = Literal["original", "lungs_masked", "center_only"]
CONDITIONS: tuple[Condition, ...] = ("original", "lungs_masked", "center_only")
RETAIN = 0.5
MIN_MARGIN = 0.05


@dataclass(frozen=True)
class MaskGeometry:
    """The centred lung rectangle, as fractions of the image width and height."""

    width: float = 0.7
    height: float = 0.7

    def __post_init__(self) -> None:
        for name, v in (("width", self.width), ("height", self.height)):
            if not 0 < v < 1:
                raise ValueError(f"mask {name} must be a fraction in (0, 1), got {v}")

    def box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` pixel bounds (end-exclusive) of the rectangle in an ``h`` x ``w`` image."""
        mh, mw = round(self.height * h), round(self.width * w)
        top, left = (h - mh) // 2, (w - mw) // 2
        return top, top + mh, left, left + mw

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def parse_geometry(text: str) -> MaskGeometry:
    """``"0.7"`` (square) or ``"0.7x0.6"`` (width x height) -> :class:`MaskGeometry`."""
    parts = text.lower().split("x")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"mask geometry {text!r}: expected FRACTION or WIDTHxHEIGHT, e.g. 0.7 or 0.7x0.6") from None
    if len(values) not in (1, 2):
        raise ValueError(f"mask geometry {text!r}: expected FRACTION or WIDTHxHEIGHT")
    return MaskGeometry(values[0], values[-1])


def apply_mask(x: torch.Tensor, condition: Condition, geometry: MaskGeometry,
               fill: torch.Tensor | float) -> torch.Tensor:
    """``x`` (``(C, H, W)`` or ``(N, C, H, W)``) with the lung rectangle or the border set to ``fill``.

    ``fill`` is a scalar or one value per channel, in ``x``'s units; ``original`` returns ``x``.
    """
    if condition == "original":
        return x
    h, w = x.shape[-2:]
    top, bottom, left, right = geometry.box(h, w)
    inside = torch.zeros((h, w), dtype=torch.bool, device=x.device)
    inside[top:bottom, left:right] = True
    hide = inside if condition == "lungs_masked" else ~inside
    value = torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    return torch.where(hide, value.expand(x.shape[-3], h, w), x)


Transform = Callable[[torch.Tensor], torch.Tensor]


def masking_transform(condition: Condition, geometry: MaskGeometry, fill: torch.Tensor,
                      base: Transform | None) -> Transform | None:
    """The engine's evaluation transform followed by the mask (on the exact pixels the model sees)."""
    if condition == "original":
        return base

    def transform(img: torch.Tensor) -> torch.Tensor:
        return apply_mask(base(img) if base is not None else img, condition, geometry, fill)

    return transform


def shortcut_verdict(scores: dict[str, float], chance: float, higher_is_better: bool = True,
                     retain: float = RETAIN, min_margin: float = MIN_MARGIN) -> dict[str, Any]:
    """Margins over the majority baseline and the flag, from the primary metric per condition.

    Returns ``margin`` (original minus baseline, sign-corrected for lower-is-better metrics),
    ``retained`` (fraction of the margin kept with the lungs masked), ``retained_center_only``,
    ``flagged`` and a one-line ``verdict``.
    """
    sign = 1.0 if higher_is_better else -1.0
    full, masked = scores.get("original", math.nan), scores.get("lungs_masked", math.nan)
    center = scores.get("center_only", math.nan)
    margin = sign * (full - chance)
    out: dict[str, Any] = {"margin": margin, "retained": None, "retained_center_only": None, "flagged": False}
    if any(math.isnan(v) for v in (full, masked, chance)):
        return out | {"verdict": "undefined: the primary metric is not defined on these test rows"}
    if margin < min_margin:
        return out | {"verdict": f"not assessed: the model is less than {min_margin:g} above the majority "
                                 f"baseline, so there is no margin to keep"}
    out["retained"] = sign * (masked - chance) / margin
    if not math.isnan(center):
        out["retained_center_only"] = sign * (center - chance) / margin
    out["flagged"] = bool(out["retained"] >= retain)
    kept = f"keeps {100 * out['retained']:.0f}% of its margin over the majority baseline with the lungs masked"
    out["verdict"] = (f"FLAGGED: {kept} (>= {100 * retain:.0f}%): it may use shortcuts outside the lung fields"
                      if out["flagged"] else f"ok: {kept} (< {100 * retain:.0f}%)")
    return out
