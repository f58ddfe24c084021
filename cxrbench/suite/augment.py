"""The suite's ``augment:`` steps (one pydantic model per step, told apart by ``name``) and the
strict base every suite section shares (unknown keys rejected)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RandomResizedCrop(Strict):
    name: Literal["random_resized_crop"]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)


class RandomCrop(Strict):
    name: Literal["random_crop"]
    padding: int = 0


class HorizontalFlip(Strict):
    name: Literal["hflip"]
    p: float = Field(0.5, ge=0, le=1)


class VerticalFlip(Strict):
    name: Literal["vflip"]
    p: float = Field(0.5, ge=0, le=1)


class Rotation(Strict):
    name: Literal["rotation"]
    degrees: float = Field(10, ge=0, le=180)


class Affine(Strict):
    name: Literal["affine"]
    degrees: float = Field(0, ge=0, le=180)
    translate: tuple[float, float] | None = None
    scale: tuple[float, float] | None = None


class ColorJitter(Strict):
    name: Literal["color_jitter"]
    brightness: float = Field(0.0, ge=0)
    contrast: float = Field(0.0, ge=0)


AugmentStep = Annotated[
    Union[RandomResizedCrop, RandomCrop, HorizontalFlip, VerticalFlip, Rotation, Affine, ColorJitter],
    Field(discriminator="name"),
]
