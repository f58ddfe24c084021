"""Params schemas and layout constants of ``mobilenet_ft`` / ``mobilenet_lung``, torch-free so that
registering the models (``cxrbench models``, ``validate``) imports no torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

STEM_CHANNELS = 32  # MobileNetV2's first conv (features.0: conv 3x3/2 + BN + ReLU6)
CLASSIFIER, FIRST_CONV = "classifier.1", "features.0.0"


class MobileNetFTParams(BaseModel):
    """Options of ``mobilenet_ft``."""

    model_config = ConfigDict(extra="forbid")

    imagenet_weights: Literal["IMAGENET1K_V1", "IMAGENET1K_V2"] = Field(
        "IMAGENET1K_V1", description="torchvision weights loaded when pretrained (V1 = the classic "
        "`pretrained=True`, 71.9 % top-1; V2 = newer recipe, 72.2 %)")


class MobileNetLungParams(MobileNetFTParams):
    """Options of ``mobilenet_lung``: adds the SE reduction ratio."""

    se_reduction: int = Field(16, ge=1, le=STEM_CHANNELS, description=(
        "SE bottleneck = 32 // se_reduction hidden units (16 -> 2, the SENet default ratio)"))
