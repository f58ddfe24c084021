"""LeNet-5 (LeCun et al. 1998) adapted to RGB/grey inputs of any size."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cxrbench.models.params import LeNetParams  # noqa: F401 - re-exported


def _feature_side(image_size: int) -> int:
    side = (image_size // 2 - 4) // 2  # conv1 keeps the size (padding 2), pool, conv2 (5x5), pool
    if side < 1:
        raise ValueError(f"LeNet needs inputs of at least 12 px, got {image_size}")
    return side


class LeNet5(nn.Module):
    """conv5x5(6, pad 2)-ReLU-maxpool2 -> conv5x5(16)-ReLU-maxpool2 -> fc120-ReLU-fc84-ReLU-fc(K).

    ReLU and max pooling replace the original sigmoid-like units and trainable subsampling.
    """

    def __init__(self, num_classes: int, in_chans: int = 3, image_size: int = 32, head: str = "flatten"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        side = 5 if head == "adaptive" else _feature_side(image_size)
        self.pool = nn.AdaptiveAvgPool2d(5) if head == "adaptive" else nn.Identity()
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.pool(x), 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))
