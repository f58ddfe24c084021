"""torchvision MobileNetV2 / MobileNetV3-Large with MD-Conv in place of chosen depthwise convs.

MobileNetV2 layer numbering follows the rows of the MobileNetV2 paper's Table 2: ``layer1`` is
the stem conv, ``layer2``..``layer8`` the seven bottleneck rows (t, c, n, s) =
(1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1). So ``layer5`` --
the MD-Conv paper's best placement, which it describes as a stride-2 stage -- is the 64-channel
row, torchvision ``features.7``..``features.10``. (See the README for why this numbering.)

The params schemas live here, apart from the networks, so that registering the models imports no torch.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Table 2 row number -> torchvision `features` indices (row n repeated `n` times).
V2_LAYERS: dict[int, range] = {2: range(1, 2), 3: range(2, 4), 4: range(4, 7), 5: range(7, 11),
                               6: range(11, 14), 7: range(14, 17), 8: range(17, 18)}
V3_BLOCKS = range(1, 16)  # torchvision mobilenet_v3_large features.1..15 are the inverted-residual blocks

Kernel = Annotated[int, Field(ge=1, le=15)]
Ratio = Annotated[int, Field(ge=1)]
LayerRef = Union[int, str]


class MDConvOptions(BaseModel):
    """Kernel sizes and channel split of the MD-Conv operator."""

    model_config = ConfigDict(extra="forbid")

    kernel_sizes: tuple[Kernel, ...] = Field((3, 5), min_length=1, description="odd depthwise kernel sizes")
    split: tuple[Ratio, ...] | None = Field(None, description="channel ratio per kernel (default: equal)")

    @field_validator("kernel_sizes")
    @classmethod
    def _odd(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(k % 2 == 0 for k in v):
            raise ValueError(f"kernel sizes must be odd (size-preserving padding), got {v}")
        return v

    @model_validator(mode="after")
    def _split_matches(self) -> "MDConvOptions":
        if self.split is not None and len(self.split) != len(self.kernel_sizes):
            raise ValueError(f"split {self.split} needs one ratio per kernel size {self.kernel_sizes}")
        return self


def _layer_number(ref: LayerRef) -> int:
    n = ref if isinstance(ref, int) else int(ref[5:]) if ref.startswith("layer") and ref[5:].isdigit() else None
    if n not in V2_LAYERS:
        raise ValueError(f"unknown MobileNetV2 layer {ref!r}: use layer2..layer8 (or 2..8), the bottleneck rows "
                         "of the MobileNetV2 paper's Table 2 (layer1 is the stem conv)")
    return n


class MobileNetV2MDConvParams(MDConvOptions):
    """Which MobileNetV2 bottleneck layers get MD-Conv: ``"layer5"`` (default), ``"all"`` or a list."""

    stages: Union[LayerRef, list[LayerRef]] = Field(
        "layer5", description="'all', 'layerN' / N, or a list of them (N = MobileNetV2 Table 2 row, 2..8)")

    @field_validator("stages")
    @classmethod
    def _known(cls, v: LayerRef | list[LayerRef]) -> LayerRef | list[LayerRef]:
        if v != "all":
            refs = v if isinstance(v, list) else [v]
            if not refs:
                raise ValueError("stages is empty: name at least one layer (or use mobilenet_v2)")
            for ref in refs:
                _layer_number(ref)
        return v

    @property
    def layers(self) -> tuple[int, ...]:
        """The Table 2 row numbers that get MD-Conv, ascending."""
        if self.stages == "all":
            return tuple(V2_LAYERS)
        refs = self.stages if isinstance(self.stages, list) else [self.stages]
        return tuple(sorted({_layer_number(r) for r in refs}))


class MobileNetV3MDConvParams(MDConvOptions):
    """Which MobileNetV3-Large blocks get MD-Conv: ``"all"`` (default, the paper) or block indices 1..15."""

    stages: Union[Literal["all"], list[Annotated[int, Field(ge=1, le=15)]]] = Field(
        "all", description="'all' or a list of torchvision features indices 1..15")

    @property
    def blocks(self) -> tuple[int, ...]:
        return tuple(V3_BLOCKS) if self.stages == "all" else tuple(sorted(set(self.stages)))

