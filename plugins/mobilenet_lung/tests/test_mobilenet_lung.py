"""MobileNet-FT / MobileNet-Lung: head size, the SE block after the stem, and pretrained loading."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
import torchvision
from pydantic import ValidationError

from cxrbench.errors import WeightsError
from cxrbench.models.hub import torch_hub_cached_path
from cxrbench.testing import request_for
from cxrbench_mobilenet_lung.models import MobileNetLungParams
from cxrbench_mobilenet_lung.plugin import MOBILENET_FT, MOBILENET_LUNG

SPECS = [MOBILENET_FT, MOBILENET_LUNG]
MOBILENET_V2_1000 = 3_504_872  # torchvision's published ImageNet count
LAST_CHANNELS = 1280


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def ft_count(k: int) -> int:
    return MOBILENET_V2_1000 - (LAST_CHANNELS * 1000 + 1000) + LAST_CHANNELS * k + k


def se_count(channels: int, hidden: int) -> int:
    return (channels * hidden + hidden) + (hidden * channels + channels)  # two 1x1 "FC" convs with bias


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # not torch.hub.set_dir: it outlives the test
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert torch.hub.get_dir() == str(tmp_path / "hub"), "torch.hub.set_dir was called elsewhere"
    return tmp_path / "hub"


def test_param_counts():
    assert n_params(MOBILENET_FT.build(request_for(MOBILENET_FT, num_classes=3))) == ft_count(3) == 2_227_715
    assert n_params(MOBILENET_LUNG.build(request_for(MOBILENET_LUNG, num_classes=3))) == ft_count(3) + se_count(32, 2) == 2_227_877


@pytest.mark.parametrize("reduction,hidden", [(1, 32), (4, 8), (16, 2), (32, 1)])
def test_se_reduction_sets_hidden_width(reduction, hidden):
    model = MOBILENET_LUNG.build(request_for(MOBILENET_LUNG, num_classes=3, params=MobileNetLungParams(se_reduction=reduction)))
    assert model.features[0][3].fc1.out_channels == hidden
    assert n_params(model) == ft_count(3) + se_count(32, hidden)


def test_se_sits_after_the_stem_and_rescales_channels():
    torch.manual_seed(0)
    model = MOBILENET_LUNG.build(request_for(MOBILENET_LUNG, num_classes=3)).eval()
    conv, bn, act, se = model.features[0]
    assert isinstance(conv, torch.nn.Conv2d) and conv.out_channels == 32 and isinstance(act, torch.nn.ReLU6)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        stem = act(bn(conv(x)))
        pooled = stem.mean((2, 3))
        hidden = F.relu(pooled @ se.fc1.weight.flatten(1).T + se.fc1.bias)
        scale = torch.sigmoid(hidden @ se.fc2.weight.flatten(1).T + se.fc2.bias)
        torch.testing.assert_close(model.features[0](x), stem * scale[:, :, None, None])


def test_lung_keeps_every_mobilenet_key():
    ft = set(MOBILENET_FT.build(request_for(MOBILENET_FT, num_classes=3)).state_dict())
    lung = set(MOBILENET_LUNG.build(request_for(MOBILENET_LUNG, num_classes=3)).state_dict())
    assert ft < lung and all(k.startswith("features.0.3.") for k in lung - ft)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_shape(spec, in_chans):
    model = spec.build(request_for(spec, num_classes=3, in_chans=in_chans, image_size=64, dropout=0.1)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, in_chans, 64, 64)).shape == (2, 3)
    assert model.classifier[0].p == 0.1


def test_pretrained_loads_cached_file_into_lung(hub_dir):
    torch.manual_seed(1)
    reference = torchvision.models.mobilenet_v2(num_classes=1000).state_dict()
    path = torch_hub_cached_path(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url)
    path.parent.mkdir(parents=True)
    torch.save(reference, path)
    model = MOBILENET_LUNG.build(request_for(MOBILENET_LUNG, num_classes=3, in_chans=1, pretrained=True))
    sd = model.state_dict()
    torch.testing.assert_close(sd["features.0.0.weight"], reference["features.0.0.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(sd["features.17.conv.2.weight"], reference["features.17.conv.2.weight"])
    assert sd["classifier.1.weight"].shape == (3, LAST_CHANNELS)
    assert "features.0.3.fc1.weight" in sd


def test_pretrained_offline_fails_fast(hub_dir):
    with pytest.raises(WeightsError, match=r"mobilenet_v2-b0353104\.pth"):
        MOBILENET_LUNG.build(request_for(MOBILENET_LUNG, num_classes=3, pretrained=True))


def test_params_validated():
    assert MobileNetLungParams().se_reduction == 16
    for bad in ({"se_reduction": 0}, {"se_reduction": 64}, {"extra": 1}, {"imagenet_weights": "V9"}):
        with pytest.raises(ValidationError):
            MobileNetLungParams(**bad)


def test_full_finetune_trains_everything():
    from cxrbench.models.factory import create_model

    model = create_model(MOBILENET_LUNG, request_for(MOBILENET_LUNG, num_classes=3), freeze="none")
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_is_picklable_and_paths_exist(spec):
    assert pickle.loads(pickle.dumps(spec)).name == spec.name
    modules = dict(spec.build(request_for(spec, num_classes=3)).named_modules())
    assert isinstance(modules[spec.first_conv], torch.nn.Conv2d)
    assert isinstance(modules[spec.classifier], torch.nn.Linear)
    assert all(s in modules for s in (*spec.stages, spec.cam_layer))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_check_model_spec(spec):
    testing = pytest.importorskip("cxrbench.testing")
    testing.check_model_spec(spec)


def test_registered():
    from cxrbench.plugins import get_registry, reset_registry

    reset_registry()
    models = get_registry().models
    assert {models[s.name].plugin for s in SPECS} == {"mobilenet_lung"}
