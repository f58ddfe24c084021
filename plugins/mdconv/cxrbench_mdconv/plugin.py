"""Registers ``mobilenetv2_mdconv`` and ``mobilenetv3_mdconv`` with cxrbench (torch-free: networks are imported when built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrbench.hookspecs import hookimpl
from cxrbench.specs import BuildRequest, ModelSpec
from cxrbench_mdconv.params import MobileNetV2MDConvParams, MobileNetV3MDConvParams

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


def build_mobilenetv2_mdconv(request: BuildRequest) -> nn.Module:
    """:func:`cxrbench_mdconv.models.build_mobilenetv2_mdconv`, imported on call (it imports torch)."""
    from cxrbench_mdconv import models

    return models.build_mobilenetv2_mdconv(request)


def build_mobilenetv3_mdconv(request: BuildRequest) -> nn.Module:
    """:func:`cxrbench_mdconv.models.build_mobilenetv3_mdconv`, imported on call (it imports torch)."""
    from cxrbench_mdconv import models

    return models.build_mobilenetv3_mdconv(request)

PAPER = ("Hu et al., Learning to Recognize Chest-Xray Images Faster and More Efficiently Based on "
         "Multi-Kernel Depthwise Convolution, IEEE Access 8, 2020, doi:10.1109/ACCESS.2020.2974242")

MOBILENETV2_MDCONV = ModelSpec(
    name="mobilenetv2_mdconv", build=build_mobilenetv2_mdconv, family="MobileNet", paper=PAPER,
    default_input_size=448, params_schema=MobileNetV2MDConvParams, classifier="classifier.1",
    first_conv="features.0.0",
    stages=("features.0", "features.1", "features.2", "features.4", "features.7", "features.11",
            "features.14", "features.17", "features.18"),
    cam_layer="features.18", weights_license="none (random init)", supports_pretrained=False,
    notes="torchvision mobilenet_v2 whose depthwise 3x3 convs in params.stages (default layer5 = MobileNetV2 "
          "Table 2 row 5, the stride-2 64-channel bottleneck, features.7-10) are MD-Conv [3x3, 5x5] split 1:1. "
          "14 classes at 448 px: 2,252,558 params, 1,206.4 M MACs (ptflops aten) vs the paper's 2.3 M / "
          "1,241 M. Random (MSRA) init as in the paper. dropout -> classifier dropout (default 0.2).")

MOBILENETV3_MDCONV = ModelSpec(
    name="mobilenetv3_mdconv", build=build_mobilenetv3_mdconv, family="MobileNet", paper=PAPER,
    default_input_size=448, params_schema=MobileNetV3MDConvParams, classifier="classifier.3",
    first_conv="features.0.0",
    stages=("features.0", "features.1", "features.2", "features.4", "features.7", "features.13", "features.16"),
    cam_layer="features.16", weights_license="none (random init)", supports_pretrained=False,
    notes="torchvision mobilenet_v3_large with every block's depthwise conv (3x3 or 5x5 originally) replaced by "
          "MD-Conv [3x3, 5x5] split 1:1, as the paper's 'all layers' MobileNetV3. 14 classes at 448 px: 4,213,630 params, 873.5 M MACs (ptflops aten; plain: 4,219,966 / 853.1 M, paper 865 M). "
          "Random (MSRA) init. dropout -> classifier dropout (default 0.2).")


@hookimpl
def register_models() -> list[ModelSpec]:
    return [MOBILENETV2_MDCONV, MOBILENETV3_MDCONV]
