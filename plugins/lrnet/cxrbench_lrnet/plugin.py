"""Registers ``lrnet`` with cxrbench (torch-free: the network is imported when a model is built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrbench.errors import WeightsError
from cxrbench.hookspecs import hookimpl
from cxrbench.specs import BuildRequest, ModelSpec
from cxrbench_lrnet.params import LRNetParams

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

PAPER = "Lu & Zheng, LR-Net: a lightweight residual network for pneumonia detection on ChestX-ray2017"


def build_lrnet(request: BuildRequest) -> nn.Module:
    """LR-Net from a validated :class:`LRNetParams` (random init; the paper trains from scratch)."""
    if request.pretrained:
        raise WeightsError("lrnet has no upstream pretrained weights (the paper trains it from scratch); "
                           "set pretrained: false or give a local weights file")
    from cxrbench_lrnet.model import LRNet

    p: LRNetParams = request.params  # validated by the core on every path
    return LRNet(
        num_classes=request.num_classes,
        in_chans=request.in_chans,
        stem_channels=p.stem_channels,
        stem_kernel=p.stem_kernel,
        stem_stride=p.stem_stride,
        stem_pool=p.stem_pool,
        widths=p.widths,
        depths=p.depths,
        strides=p.strides,
        norm=p.norm,
        dropout=request.dropout or 0.0,
    )


LRNET = ModelSpec(
    name="lrnet",
    build=build_lrnet,
    family="lrnet",
    paper=PAPER,
    default_input_size=224,
    params_schema=LRNetParams,
    classifier="fc",
    first_conv="stem.0",
    stages=("stem", "stages.0", "stages.1", "stages.2"),
    cam_layer="stages.2",
    weights_license="none (random init)",
    supports_pretrained=False,
    notes="Widths/depths reconstructed (the paper's figure is missing): stem 3x3 conv 24ch stride 1, "
          "three stages of a stride-2 depthwise-separable transition + 4 LR-Blocks at widths 48/96/128, "
          "biases and no BatchNorm; exactly 268,098 params and 732.0 M MACs (ptflops aten) for 2 classes "
          "at 3x224x224 vs the paper's 268,098 / 732.2 M 'FLOPs'.",
)


@hookimpl
def register_models() -> list[ModelSpec]:
    return [LRNET]
