"""ShuffleNet v1 (Zhang et al., CVPR 2018, arXiv:1707.01083), 1x width.

No library ships it; this follows the paper's Table 1 and Fig. 2: a 3x3 stride-2 stem with 24
channels and a 3x3 stride-2 max pool, then stages 2-4 of 4/8/4 units, global pooling and a
fully connected layer. A unit is 1x1 group conv -> BN -> ReLU -> channel shuffle -> 3x3
depthwise conv (stride 1 or 2) -> BN -> 1x1 group conv -> BN, then ReLU(x + branch) or, for
stride-2 units, ReLU(concat(avgpool3x3/2(x), branch)). Bottleneck width is 1/4 of the unit's
output; the first 1x1 conv of stage 2 is not grouped (its input has only 24 channels).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cxrbench.models.params import ShuffleNetV1Params  # noqa: F401 - re-exported

STAGE_REPEATS = (4, 8, 4)
STAGE_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
                  8: (384, 768, 1536)}
"""Output channels of stages 2-4 at 1x width, per number of groups (paper Table 1)."""


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class ShuffleUnit(nn.Module):
    """One ShuffleNet unit (paper Fig. 2b for stride 1, Fig. 2c for stride 2)."""

    def __init__(self, in_chans: int, out_chans: int, groups: int, stride: int, group_first: bool = True):
        super().__init__()
        if stride not in (1, 2) or (stride == 1 and in_chans != out_chans):
            raise ValueError("stride-1 units keep the channel count; stride must be 1 or 2")
        mid = out_chans // 4
        branch_out = out_chans - in_chans if stride == 2 else out_chans
        self.stride = stride
        self.compress = nn.Sequential(*_conv_bn(in_chans, mid, 1, groups=groups if group_first else 1),
                                      nn.ReLU(inplace=True))
        self.shuffle = nn.ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = nn.Sequential(*_conv_bn(mid, mid, 3, stride, groups=mid))
        self.expand = nn.Sequential(*_conv_bn(mid, branch_out, 1, groups=groups))
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(self.depthwise(self.shuffle(self.compress(x))))
        if self.stride == 2:
            return F.relu(torch.cat([self.shortcut(x), out], dim=1))
        return F.relu(x + out)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1 1x with ``groups`` groups; ``(B, in_chans, H, W)`` -> logits ``(B, num_classes)``."""

    def __init__(self, num_classes: int, in_chans: int = 3, groups: int = 3):
        super().__init__()
        self.conv1 = nn.Sequential(*_conv_bn(in_chans, 24, 3, stride=2), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 24
        for i, (reps, cout) in enumerate(zip(STAGE_REPEATS, STAGE_CHANNELS[groups]), start=2):
            units = [ShuffleUnit(cin, cout, groups, stride=2, group_first=i > 2)]
            units += [ShuffleUnit(cout, cout, groups, stride=1) for _ in range(reps - 1)]
            self.add_module(f"stage{i}", nn.Sequential(*units))
            cin = cout
        self.fc = nn.Linear(cin, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
