"""Registers ``mobilenet_ft`` and ``mobilenet_lung`` with cxrbench (torch-free: networks are imported when built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrbench.hookspecs import hookimpl
from cxrbench.specs import BuildRequest, ModelSpec
from cxrbench_mobilenet_lung.params import CLASSIFIER, FIRST_CONV, MobileNetFTParams, MobileNetLungParams

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


def build_mobilenet_ft(request: BuildRequest) -> nn.Module:
    """:func:`cxrbench_mobilenet_lung.models.build_mobilenet_ft`, imported on call (it imports torch)."""
    from cxrbench_mobilenet_lung import models

    return models.build_mobilenet_ft(request)


def build_mobilenet_lung(request: BuildRequest) -> nn.Module:
    """:func:`cxrbench_mobilenet_lung.models.build_mobilenet_lung`, imported on call (it imports torch)."""
    from cxrbench_mobilenet_lung import models

    return models.build_mobilenet_lung(request)

PAPER = ("Liu, Yu & Tan: Deep Learning for Lung Disease Classification Using Transfer Learning and a "
         "Customized CNN Architecture with Attention (MobileNet-Lung), arXiv:2408.13180")
# stem, the seven bottleneck rows of the MobileNetV2 paper, the last 1x1 conv (as the built-in mobilenet_v2)
STAGES = ("features.0", "features.1", "features.2", "features.4", "features.7", "features.11",
          "features.14", "features.17", "features.18")
COMMON = dict(family="MobileNet", paper=PAPER, default_input_size=224, classifier=CLASSIFIER,
              first_conv=FIRST_CONV, stages=STAGES, cam_layer="features.18",
              weights_license="BSD-3-Clause (torchvision ImageNet-1k weights)", supports_pretrained=True)

MOBILENET_FT = ModelSpec(
    name="mobilenet_ft", alias_of="mobilenet_v2", build=build_mobilenet_ft, params_schema=MobileNetFTParams,
    notes="torchvision mobilenet_v2, classifier -> num_classes, every layer trainable (suite `freeze: none`); "
          "pretrained loads IMAGENET1K_V1 by default. dropout -> classifier dropout (default 0.2). "
          "3 classes: 2,227,715 params.", **COMMON)

MOBILENET_LUNG = ModelSpec(
    name="mobilenet_lung", build=build_mobilenet_lung, params_schema=MobileNetLungParams,
    notes="mobilenet_ft + one squeeze-and-excitation block (GAP -> FC -> ReLU -> FC -> sigmoid -> rescale, "
          "torchvision.ops.SqueezeExcitation) appended to the 32-channel stem as features.0.3; reduction 16 "
          "(2 hidden units, +162 params) by default. Pretrained MobileNetV2 weights load unchanged, the SE "
          "block is new (random init). 3 classes: 2,227,877 params.", **COMMON)


@hookimpl
def register_models() -> list[ModelSpec]:
    return [MOBILENET_FT, MOBILENET_LUNG]
