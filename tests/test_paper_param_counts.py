"""Parameter counts the papers quote, reproduced by the registered models (independent figures:
torchvision's documented counts with ImageNet 1000-class heads, and the papers' own tables)."""

from __future__ import annotations

import pytest
import torch

from cxrbench.models.factory import create_model
from cxrbench.plugins import get_registry
from cxrbench.models.cost import count_params
from cxrbench.specs import BuildRequest


@pytest.mark.parametrize("name, classes, size, expected", [
    ("squeezenet1_0", 1000, 224, 1_248_424),   # MobileNet-Lung: "SqueezeNet 1.25M"
    ("resnet18", 1000, 224, 11_689_512),       # "ResNet18 11.7M"
    ("vgg11", 1000, 224, 132_863_336),         # "VGG11 132.9M"
    ("densenet121", 1000, 224, 7_978_856),     # "DenseNet121 7.98M"
    ("mobilenet_v2", 1000, 224, 3_504_872),    # "MobileNetV2 3.5M"
    ("lenet", 2, 224, 5_612_046),              # LR-Net table: "LeNet 5.6120M"
])
def test_paper_parameter_counts(name, classes, size, expected):
    spec = get_registry().model(name)
    with torch.device("meta"):
        model = create_model(spec, BuildRequest(num_classes=classes, in_chans=3, image_size=size,
                                                params=spec.params_schema()))
    assert count_params(model)[0] == expected
