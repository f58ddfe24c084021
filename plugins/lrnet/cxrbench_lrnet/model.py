"""LR-Net (Lu & Zheng): a stem, stages of LR-Blocks, global average pooling and one linear layer.

The paper gives the block but not the widths/depths; :mod:`cxrbench_lrnet.params` holds the
reconstructed default (see the plugin README for how it was found).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn as nn

Norm = Literal["none", "bn"]


class DepthwiseSeparableConv(nn.Sequential):
    """3x3 depthwise conv then 1x1 pointwise conv.

    ``norm="none"``: both convs carry a bias. ``norm="bn"``: bias-free convs, each followed by
    BatchNorm (the MobileNet arrangement). No activation inside: the LR-Block places the ReLUs.
    """

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1, norm: Norm = "none"):
        bias = norm == "none"
        layers: list[nn.Module] = [nn.Conv2d(in_chans, in_chans, 3, stride, 1, groups=in_chans, bias=bias)]
        if not bias:
            layers.append(nn.BatchNorm2d(in_chans))
        layers.append(nn.Conv2d(in_chans, out_chans, 1, bias=bias))
        if not bias:
            layers.append(nn.BatchNorm2d(out_chans))
        super().__init__(*layers)


class LRBlock(nn.Module):
    """x -> DSConv -> ReLU -> DSConv -> (+x) -> ReLU, channels and size unchanged."""

    def __init__(self, chans: int, norm: Norm = "none"):
        super().__init__()
        self.conv1 = DepthwiseSeparableConv(chans, chans, norm=norm)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = DepthwiseSeparableConv(chans, chans, norm=norm)
        self.act2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.act1(self.conv1(x)))
        return self.act2(out + x)


class Transition(nn.Sequential):
    """Stride-2 depthwise-separable conv + ReLU that changes the width between stages."""

    def __init__(self, in_chans: int, out_chans: int, stride: int = 2, norm: Norm = "none"):
        super().__init__(DepthwiseSeparableConv(in_chans, out_chans, stride, norm), nn.ReLU(inplace=True))


class LRNet(nn.Module):
    """Stem (kxk conv + ReLU [+ 3x3/2 max-pool]) -> stages -> global average pool -> dropout -> fc.

    Stage ``i`` is an optional :class:`Transition` (present when the width changes or the stage
    has a stride) followed by ``depths[i]`` :class:`LRBlock` s of width ``widths[i]``.
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        stem_channels: int = 32,
        stem_kernel: int = 3,
        stem_stride: int = 2,
        stem_pool: bool = False,
        widths: Sequence[int] = (32, 64, 128),
        depths: Sequence[int] = (1, 1, 1),
        strides: Sequence[int] = (1, 2, 2),
        norm: Norm = "none",
        dropout: float = 0.0,
    ):
        super().__init__()
        if not len(widths) == len(depths) == len(strides):
            raise ValueError("widths, depths and strides must have the same length")
        bias = norm == "none"
        stem: list[nn.Module] = [nn.Conv2d(in_chans, stem_channels, stem_kernel, stem_stride, stem_kernel // 2, bias=bias)]
        if not bias:
            stem.append(nn.BatchNorm2d(stem_channels))
        stem.append(nn.ReLU(inplace=True))
        if stem_pool:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)

        stages: list[nn.Module] = []
        prev = stem_channels
        for width, depth, stride in zip(widths, depths, strides):
            layers: list[nn.Module] = []
            if width != prev or stride != 1:
                layers.append(Transition(prev, width, stride, norm))
            layers += [LRBlock(width, norm) for _ in range(depth)]
            stages.append(nn.Sequential(*layers))
            prev = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(prev, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.fc(self.dropout(x))
