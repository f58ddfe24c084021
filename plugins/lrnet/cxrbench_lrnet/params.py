"""Validated LR-Net options; the defaults are the reconstructed paper layout (see README)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Width = Annotated[int, Field(ge=1, le=4096)]
Depth = Annotated[int, Field(ge=1, le=32)]
Stride = Literal[1, 2]
N_STAGES = 3


class LRNetParams(BaseModel):
    """LR-Net layout. Three stages, each ``[stride-2 DS transition] + depth x LR-Block``.

    The number of stages is fixed at three so that ``ModelSpec.stages`` (used for
    ``freeze: stages:N``) always names the modules that exist.
    """

    model_config = ConfigDict(extra="forbid")

    stem_channels: Width = 24
    stem_kernel: Literal[1, 3, 5, 7] = 3
    stem_stride: Stride = 1
    stem_pool: bool = Field(False, description="3x3/2 max-pool after the stem conv")
    widths: tuple[Width, ...] = (48, 96, 128)
    depths: tuple[Depth, ...] = (4, 4, 4)
    strides: tuple[Stride, ...] = Field((2, 2, 2), description="stride of each stage's transition")
    norm: Literal["none", "bn"] = Field(
        "none", description="'none': convs with bias, no BatchNorm (matches the paper's 268,098 parameters); "
        "'bn': bias-free convs each followed by BatchNorm")

    @model_validator(mode="after")
    def _three_stages(self) -> "LRNetParams":
        for name in ("widths", "depths", "strides"):
            if len(getattr(self, name)) != N_STAGES:
                raise ValueError(f"{name} needs exactly {N_STAGES} values (one per stage), got {getattr(self, name)}")
        return self
