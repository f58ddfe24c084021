"""MD-Conv (Hu et al., IEEE Access 2020): a depthwise conv whose channel groups use different kernels."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


def split_channels(channels: int, ratios: Sequence[int]) -> list[int]:
    """``channels`` divided in proportion to ``ratios``; the rounding remainder goes to the first group.

    With equal ratios this is timm's ``MixedConv2d`` split. Raises ``ValueError`` when a group
    would be empty.
    """
    total = sum(ratios)
    splits = [channels * r // total for r in ratios]
    splits[0] += channels - sum(splits)
    if min(splits) < 1:
        raise ValueError(f"cannot split {channels} channels in ratios {tuple(ratios)}: a group would be empty")
    return splits


class MDConv(nn.Module):
    """Multi-kernel depthwise conv: channel group ``i`` gets a ``kernel_sizes[i]`` depthwise conv.

    Each group is padded to keep the spatial size (the same output size for every kernel at any
    stride); the group outputs are concatenated in order. ``split`` gives the channel ratios
    (default: equal). timm's ``MixedConv2d(depthwise=True)`` is the equal-split special case;
    this module exists because the paper's split ratio is a parameter here.
    """

    def __init__(self, channels: int, kernel_sizes: Sequence[int] = (3, 5), split: Sequence[int] | None = None,
                 stride: int = 1, dilation: int = 1, bias: bool = False):
        super().__init__()
        if split is not None and len(split) != len(kernel_sizes):
            raise ValueError(f"split {tuple(split)} needs one ratio per kernel size {tuple(kernel_sizes)}")
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel sizes must be odd to keep the size, got {tuple(kernel_sizes)}")
        self.channels = channels
        self.kernel_sizes = tuple(kernel_sizes)
        self.stride = stride
        self.splits = split_channels(channels, split or [1] * len(kernel_sizes))
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, k, stride, padding=dilation * (k - 1) // 2, dilation=dilation, groups=c, bias=bias)
            for c, k in zip(self.splits, self.kernel_sizes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.splits, dim=1)
        return torch.cat([conv(part) for conv, part in zip(self.convs, parts)], dim=1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_sizes={self.kernel_sizes}, splits={self.splits}, stride={self.stride}"


def is_depthwise(module: nn.Module) -> bool:
    """A plain depthwise ``nn.Conv2d`` (one group per channel, channels unchanged)."""
    return (isinstance(module, nn.Conv2d) and module.groups > 1
            and module.groups == module.in_channels == module.out_channels)


def replace_depthwise(block: nn.Module, kernel_sizes: Sequence[int], split: Sequence[int] | None = None) -> int:
    """Replace every depthwise conv inside ``block`` by an :class:`MDConv`; return how many.

    Stride, dilation and bias are kept; the new kernels get the MSRA (Kaiming, fan-out) init the
    paper trains from, as torchvision's MobileNets initialise their own depthwise convs.
    """
    targets = [(name, m) for name, m in block.named_modules() if is_depthwise(m)]
    for name, conv in targets:
        md = MDConv(conv.in_channels, kernel_sizes, split, conv.stride[0], conv.dilation[0], conv.bias is not None)
        for c in md.convs:
            nn.init.kaiming_normal_(c.weight, mode="fan_out")
            if c.bias is not None:
                nn.init.zeros_(c.bias)
        block.set_submodule(name, md)
    return len(targets)
