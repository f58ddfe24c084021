"""Params schema of ``resnet50_transfer``, torch-free so that registering the models imports no torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ImagenetVersion = Literal["IMAGENET1K_V1", "IMAGENET1K_V2"]


class ResNet50TransferParams(BaseModel):
    """Options of ``resnet50_transfer``."""

    model_config = ConfigDict(extra="forbid")

    imagenet_weights: ImagenetVersion = Field(
        "IMAGENET1K_V1", description="torchvision weights loaded when pretrained: V1 (76.1 % top-1, the "
        "classic `pretrained=True` the paper would have used) or V2 (80.9 %, newer recipe)")
