"""Registers ``resnet50_transfer``, ``resnet18_scratch`` and ``resnet18_finetune`` with cxrbench (torch-free: networks are imported when built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrbench.hookspecs import hookimpl
from cxrbench.specs import BuildRequest, ModelSpec
from cxrbench_resnet_transfer.params import ResNet50TransferParams

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


def build_resnet50_transfer(request: BuildRequest) -> nn.Module:
    """:func:`cxrbench_resnet_transfer.models.build_resnet50_transfer`, imported on call (it imports torch)."""
    from cxrbench_resnet_transfer import models

    return models.build_resnet50_transfer(request)


def build_resnet18_scratch(request: BuildRequest) -> nn.Module:
    """:func:`cxrbench_resnet_transfer.models.build_resnet18_scratch`, imported on call (it imports torch)."""
    from cxrbench_resnet_transfer import models

    return models.build_resnet18_scratch(request)


def build_resnet18_finetune(request: BuildRequest) -> nn.Module:
    """:func:`cxrbench_resnet_transfer.models.build_resnet18_finetune`, imported on call (it imports torch)."""
    from cxrbench_resnet_transfer import models

    return models.build_resnet18_finetune(request)

FENG = "Feng, Wu & Li: ImageNet-pretrained ResNet50 transfer learning for normal / bacterial / viral pneumonia"
COURSE = "ResNet-18 from scratch vs fine-tuned for pneumonia on ChestX-ray2017 (course report)"
STAGES = ("conv1", "layer1", "layer2", "layer3", "layer4")
TV_LICENSE = "BSD-3-Clause (torchvision ImageNet-1k weights)"
COMMON = dict(family="ResNet", default_input_size=224, classifier="fc", first_conv="conv1", stages=STAGES,
              cam_layer="layer4")

RESNET50_TRANSFER = ModelSpec(
    name="resnet50_transfer", alias_of="resnet50", build=build_resnet50_transfer, paper=FENG, params_schema=ResNet50TransferParams,
    weights_license=TV_LICENSE, supports_pretrained=True,
    notes="torchvision resnet50 (v1.5), fc -> num_classes (3 in the paper). Pretrained: IMAGENET1K_V1 by "
          "default (params.imagenet_weights). The paper freezes 'early layers' without saying how many: "
          "set `freeze: stages:N` in the suite (stages conv1, layer1..layer4; e.g. stages:3 freezes the stem, "
          "layer1 and layer2). 3 classes: 23,514,179 params.", **COMMON)

RESNET18_SCRATCH = ModelSpec(
    name="resnet18_scratch", alias_of="resnet18", build=build_resnet18_scratch, paper=COURSE + ", task 1.1",
    weights_license="none (random init)", supports_pretrained=False,
    notes="torchvision resnet18, torchvision's random init, fc -> num_classes; pretrained is refused "
          "(that is resnet18_finetune). 2 classes: 11,177,538 params.", **COMMON)

RESNET18_FINETUNE = ModelSpec(
    name="resnet18_finetune", alias_of="resnet18", build=build_resnet18_finetune, paper=COURSE + ", task 1.2",
    weights_license=TV_LICENSE, supports_pretrained=True,
    notes="torchvision resnet18 with IMAGENET1K_V1 weights when pretrained, new fc; the paper trains only "
          "fc: use `freeze: backbone` in the suite. 2 classes: 11,177,538 params (1,026 trainable when frozen).",
    **COMMON)


@hookimpl
def register_models() -> list[ModelSpec]:
    return [RESNET50_TRANSFER, RESNET18_SCRATCH, RESNET18_FINETUNE]
