"""torchvision ResNets with a new ``num_classes`` head, an ``in_chans`` stem and optional ImageNet weights."""

from __future__ import annotations

import torch.nn as nn

from cxrbench.errors import WeightsError
from cxrbench.models.adapt import load_adapted, replace_first_conv
from cxrbench.models.hub import torchvision_state_dict
from cxrbench.specs import BuildRequest

from cxrbench_resnet_transfer.params import ImagenetVersion, ResNet50TransferParams  # noqa: F401 - re-exported



def build_resnet(request: BuildRequest, arch: str, version: str | None) -> nn.Module:
    """torchvision ``arch`` with ``fc`` resized and ``conv1`` taking ``in_chans`` channels.

    ``version`` is the ImageNet weights version loaded when ``request.pretrained`` (None: the model
    has none to offer and a pretrained request raises :class:`WeightsError`). Pretrained weights
    are adapted as the core adapts a local file: ``fc`` re-initialised, ``conv1`` summed over RGB
    for one channel. ResNets have no dropout, so ``request.dropout`` is ignored.
    """
    from torchvision.models import get_model

    model = get_model(arch, weights=None, num_classes=request.num_classes)
    if request.in_chans != 3:
        replace_first_conv(model, "conv1", request.in_chans)
    if request.pretrained:
        if version is None:
            raise WeightsError(f"this registration of {arch} is trained from scratch; use its fine-tuned "
                               "sibling for ImageNet weights, or set `pretrained: false`")
        load_adapted(model, torchvision_state_dict(arch, version), classifier="fc", first_conv="conv1",
                     source=f"torchvision {arch} {version}")
    return model


def build_resnet50_transfer(request: BuildRequest) -> nn.Module:
    """ResNet-50 for Feng, Wu & Li (ImageNet weights when pretrained, new head)."""
    params: ResNet50TransferParams = request.params  # validated by the core on every path
    return build_resnet(request, "resnet50", params.imagenet_weights)


def build_resnet18_scratch(request: BuildRequest) -> nn.Module:
    """ResNet-18, random init (course report task 1.1); refuses pretrained weights."""
    return build_resnet(request, "resnet18", None)


def build_resnet18_finetune(request: BuildRequest) -> nn.Module:
    """ResNet-18 with torchvision's ImageNet weights when pretrained (course report task 1.2)."""
    return build_resnet(request, "resnet18", "IMAGENET1K_V1")
