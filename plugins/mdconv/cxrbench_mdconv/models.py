"""Builders of MobileNetV2 / MobileNetV3-Large with MD-Conv (params in :mod:`cxrbench_mdconv.params`)."""

from __future__ import annotations

import torch.nn as nn

from cxrbench.errors import WeightsError
from cxrbench.models.adapt import replace_first_conv
from cxrbench.specs import BuildRequest
from cxrbench_mdconv.mdconv import replace_depthwise
from cxrbench_mdconv.params import (  # noqa: F401 - re-exported
    V2_LAYERS,
    V3_BLOCKS,
    MDConvOptions,
    MobileNetV2MDConvParams,
    MobileNetV3MDConvParams,
)


def _torchvision(arch: str, request: BuildRequest) -> nn.Module:
    if request.pretrained:
        raise WeightsError(f"{arch} with MD-Conv has no upstream weights (the paper trains from scratch with "
                           "MSRA init); give a local file with `weights:` or set `pretrained: false`")
    from torchvision.models import get_model

    kwargs = {} if request.dropout is None else {"dropout": request.dropout}
    model = get_model(arch, weights=None, num_classes=request.num_classes, **kwargs)
    if request.in_chans != 3:
        replace_first_conv(model, "features.0.0", request.in_chans)
    return model


def build_mobilenetv2_mdconv(request: BuildRequest) -> nn.Module:
    """MobileNetV2 (random init) with MD-Conv in the bottleneck layers named by ``params.stages``."""
    p: MobileNetV2MDConvParams = request.params  # validated by the core on every path
    model = _torchvision("mobilenet_v2", request)
    for layer in p.layers:
        for i in V2_LAYERS[layer]:
            replace_depthwise(model.features[i], p.kernel_sizes, p.split)
    return model


def build_mobilenetv3_mdconv(request: BuildRequest) -> nn.Module:
    """MobileNetV3-Large (random init) with MD-Conv in the blocks named by ``params.stages`` (all by default)."""
    p: MobileNetV3MDConvParams = request.params
    model = _torchvision("mobilenet_v3_large", request)
    for i in p.blocks:
        replace_depthwise(model.features[i], p.kernel_sizes, p.split)
    return model
