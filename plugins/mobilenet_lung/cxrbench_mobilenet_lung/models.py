"""MobileNet-FT and MobileNet-Lung: torchvision MobileNetV2, the latter with an SE block after the stem."""

from __future__ import annotations

import torch.nn as nn
from torchvision.ops import SqueezeExcitation

from cxrbench.models.adapt import load_adapted, replace_first_conv
from cxrbench.models.hub import torchvision_state_dict
from cxrbench.specs import BuildRequest

from cxrbench_mobilenet_lung.params import (  # noqa: F401 - re-exported
    CLASSIFIER,
    FIRST_CONV,
    STEM_CHANNELS,
    MobileNetFTParams,
    MobileNetLungParams,
)



def mobilenet_v2(request: BuildRequest, weights_version: str) -> nn.Module:
    """torchvision MobileNetV2 with ``num_classes`` outputs, ``in_chans`` inputs, optional ImageNet weights.

    ``request.dropout`` replaces the classifier's dropout (torchvision default 0.2). Pretrained
    weights are adapted as the core adapts a local file (head re-initialised, first conv summed
    over RGB for one channel).
    """
    from torchvision.models import get_model

    kwargs = {} if request.dropout is None else {"dropout": request.dropout}
    model = get_model("mobilenet_v2", weights=None, num_classes=request.num_classes, **kwargs)
    if request.in_chans != 3:
        replace_first_conv(model, FIRST_CONV, request.in_chans)
    if request.pretrained:
        load_adapted(model, torchvision_state_dict("mobilenet_v2", weights_version), classifier=CLASSIFIER,
                     first_conv=FIRST_CONV, source=f"torchvision mobilenet_v2 {weights_version}")
    return model


def add_stem_se(model: nn.Module, reduction: int) -> nn.Module:
    """Append an SE block to MobileNetV2's stem (``features.0`` becomes conv, BN, ReLU6, SE).

    Appending inside ``features.0`` keeps every pretrained key (``features.0.0``, ``features.0.1``,
    ``features.1`` ...) where it was; only ``features.0.3.*`` is new.
    """
    model.features[0].append(SqueezeExcitation(STEM_CHANNELS, max(1, STEM_CHANNELS // reduction)))
    return model


def build_mobilenet_ft(request: BuildRequest) -> nn.Module:
    """MobileNet-FT: MobileNetV2, classifier resized (all layers trainable: suite ``freeze: none``)."""
    return mobilenet_v2(request, request.params.imagenet_weights)


def build_mobilenet_lung(request: BuildRequest) -> nn.Module:
    """MobileNet-Lung: MobileNet-FT plus a squeeze-and-excitation block after the first conv layer."""
    params: MobileNetLungParams = request.params  # validated by the core on every path
    return add_stem_se(mobilenet_v2(request, params.imagenet_weights), params.se_reduction)
