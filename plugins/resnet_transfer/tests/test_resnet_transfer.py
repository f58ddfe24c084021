"""ResNet transfer-learning registrations: heads, channel adaptation, ImageNet loading and freezing."""

from __future__ import annotations

import pickle
import time

import pytest
import torch
import torchvision

from cxrbench.errors import WeightsError
from cxrbench.models.hub import torch_hub_cached_path
from cxrbench.testing import request_for
from cxrbench_resnet_transfer.models import ResNet50TransferParams
from cxrbench_resnet_transfer.plugin import RESNET18_FINETUNE, RESNET18_SCRATCH, RESNET50_TRANSFER

SPECS = [RESNET50_TRANSFER, RESNET18_SCRATCH, RESNET18_FINETUNE]
# ImageNet models (1000 classes, published counts) minus the 1000-way fc plus a k-way fc.
RESNET18_1000, RESNET50_1000 = 11_689_512, 25_557_032


def n_params(model: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def head_swap(total_1000: int, features: int, k: int) -> int:
    return total_1000 - (features * 1000 + 1000) + (features * k + k)


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache and no network: only files we put there can be loaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # not torch.hub.set_dir: it outlives the test
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert torch.hub.get_dir() == str(tmp_path / "hub"), "torch.hub.set_dir was called elsewhere"
    return tmp_path / "hub"


@pytest.mark.parametrize("spec,classes,expected", [
    (RESNET50_TRANSFER, 3, head_swap(RESNET50_1000, 2048, 3)),
    (RESNET18_SCRATCH, 2, head_swap(RESNET18_1000, 512, 2)),
    (RESNET18_FINETUNE, 2, head_swap(RESNET18_1000, 512, 2)),
])
def test_param_counts(spec, classes, expected):
    assert n_params(spec.build(request_for(spec, num_classes=classes))) == expected


def test_published_counts_in_notes():
    assert head_swap(RESNET50_1000, 2048, 3) == 23_514_179
    assert head_swap(RESNET18_1000, 512, 2) == 11_177_538


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_shape(spec, in_chans):
    model = spec.build(request_for(spec, num_classes=3, in_chans=in_chans, image_size=64)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, in_chans, 64, 64)).shape == (2, 3)
    assert model.conv1.in_channels == in_chans


def test_one_channel_stem_has_a_third_of_the_weights():
    rgb = RESNET18_SCRATCH.build(request_for(RESNET18_SCRATCH, num_classes=2, in_chans=3))
    grey = RESNET18_SCRATCH.build(request_for(RESNET18_SCRATCH, num_classes=2, in_chans=1))
    assert n_params(rgb) - n_params(grey) == 64 * 2 * 7 * 7


def test_pretrained_loads_cached_file_and_adapts(hub_dir):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=1000).state_dict()
    path = torch_hub_cached_path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url)
    path.parent.mkdir(parents=True)
    torch.save(reference, path)
    model = RESNET18_FINETUNE.build(request_for(RESNET18_FINETUNE, num_classes=2, in_chans=1, pretrained=True))
    torch.testing.assert_close(model.conv1.weight, reference["conv1.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.layer4[1].conv2.weight, reference["layer4.1.conv2.weight"])
    torch.testing.assert_close(model.bn1.running_mean, reference["bn1.running_mean"])
    assert model.fc.weight.shape == (2, 512)


@pytest.mark.parametrize("spec", [RESNET50_TRANSFER, RESNET18_FINETUNE], ids=lambda s: s.name)
def test_pretrained_offline_fails_fast_with_the_file_to_fetch(spec, hub_dir):
    start = time.perf_counter()
    with pytest.raises(WeightsError, match=r"resnet(18|50)-[0-9a-f]+\.pth"):
        spec.build(request_for(spec, num_classes=2, pretrained=True))
    assert time.perf_counter() - start < 5


def test_resnet50_weights_version_is_validated(hub_dir):
    assert ResNet50TransferParams().imagenet_weights == "IMAGENET1K_V1"
    with pytest.raises(WeightsError, match="resnet50-11ad3fa6"):  # the V2 file
        RESNET50_TRANSFER.build(request_for(RESNET50_TRANSFER, num_classes=3, pretrained=True,
                                             params=ResNet50TransferParams(imagenet_weights="IMAGENET1K_V2")))
    with pytest.raises(ValueError):
        ResNet50TransferParams(imagenet_weights="V3")


def test_scratch_refuses_pretrained():
    assert not RESNET18_SCRATCH.supports_pretrained
    with pytest.raises(WeightsError, match="scratch"):
        RESNET18_SCRATCH.build(request_for(RESNET18_SCRATCH, num_classes=2, pretrained=True))


def test_finetune_backbone_freeze_leaves_only_fc():
    from cxrbench.models.factory import create_model

    model = create_model(RESNET18_FINETUNE, request_for(RESNET18_FINETUNE, num_classes=2), freeze="backbone")
    assert n_params(model, trainable=True) == 512 * 2 + 2
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}


def test_resnet50_early_stage_freeze():
    from cxrbench.models.factory import create_model

    model = create_model(RESNET50_TRANSFER, request_for(RESNET50_TRANSFER, num_classes=3), freeze="stages:3")
    frozen = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "bn1", "layer1", "layer2"}


# resnet50 goes through the same build_resnet as the resnet18s but takes ~10 s here: slow-marked.
@pytest.mark.parametrize("spec", [pytest.param(RESNET50_TRANSFER, marks=pytest.mark.slow), RESNET18_SCRATCH,
                                  RESNET18_FINETUNE], ids=lambda s: s.name)
def test_check_model_spec(spec):
    testing = pytest.importorskip("cxrbench.testing")
    testing.check_model_spec(spec)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_is_picklable(spec):
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_registered():
    from cxrbench.plugins import get_registry, reset_registry

    reset_registry()
    models = get_registry().models
    assert {models[s.name].plugin for s in SPECS} == {"resnet_transfer"}
