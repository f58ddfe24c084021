"""The model factory (weights, head/first-conv adaptation, freezing, params) and the conformance check."""

from __future__ import annotations

import logging
import time
import types
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from cxrbench.builtins.models import baseline_specs
from cxrbench.errors import SuiteError, WeightsError
from cxrbench.hookspecs import hookimpl
from cxrbench.models import apply_frozen_bn_eval, baselines, create_model, hub, validate_params
from cxrbench.specs import BuildRequest
from cxrbench.testing import check_model_spec, check_plugin

SPECS = {s.name: s for s in baseline_specs()}
RESNET18 = SPECS["resnet18"]
RESNET18_PARAMS_2 = 11_177_538


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_num_threads(threads)


def req(num_classes: int = 2, in_chans: int = 3, **kw) -> BuildRequest:
    return BuildRequest(num_classes=num_classes, in_chans=in_chans, image_size=64, **kw)


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def resnet_3cls():
    torch.manual_seed(1)
    return RESNET18.build(req(3)).state_dict()


# ---------------------------------------------------------------- weights files

def assert_backbone_equal(state: dict, source: dict, skip: str = "fc.") -> None:
    keys = [k for k in source if not k.startswith(skip)]
    assert keys and all(torch.equal(state[k], source[k]) for k in keys)


def test_weights_round_trip_with_a_new_head(tmp_path, resnet_3cls, caplog):
    path = tmp_path / "r18.pth"
    torch.save(resnet_3cls, path)
    with caplog.at_level(logging.INFO, logger="cxrbench.models"):
        model = create_model(RESNET18, req(2), weights=str(path))
    state = model.state_dict()
    assert_backbone_equal(state, resnet_3cls)
    assert state["fc.weight"].shape == (2, 512)
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(info) == 1 and "re-initialised classifier 'fc'" in info[0] and str(path) in info[0]


def test_weights_round_trip_same_head_gives_same_outputs(tmp_path, resnet_3cls):
    path = tmp_path / "r18.pt"
    torch.save({"epoch": 3, "state_dict": resnet_3cls}, path)  # a training checkpoint
    model = create_model(RESNET18, req(3), weights=str(path)).eval()
    reference = RESNET18.build(req(3)).eval()
    reference.load_state_dict(resnet_3cls)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_safetensors_weights(tmp_path, resnet_3cls):
    path = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in resnet_3cls.items()}, str(path))
    state = create_model(RESNET18, req(14), weights=str(path)).state_dict()
    assert_backbone_equal(state, resnet_3cls)
    assert state["fc.bias"].shape == (14,)


def test_rgb_weights_into_grey_model_sum_the_first_conv(tmp_path, resnet_3cls):
    path = tmp_path / "r18.pth"
    torch.save({"model": resnet_3cls}, path)
    state = create_model(RESNET18, req(3, in_chans=1), weights=str(path)).state_dict()
    assert state["conv1.weight"].shape == (64, 1, 7, 7)
    assert torch.allclose(state["conv1.weight"], resnet_3cls["conv1.weight"].sum(dim=1, keepdim=True))
    assert_backbone_equal(state, resnet_3cls, skip="conv1.weight")


def test_grey_weights_into_rgb_model_repeat_over_three(tmp_path):
    grey = RESNET18.build(req(2, in_chans=1)).state_dict()
    path = tmp_path / "grey.pth"
    torch.save(grey, path)
    w = create_model(RESNET18, req(2, in_chans=3), weights=str(path)).state_dict()["conv1.weight"]
    assert torch.allclose(w, grey["conv1.weight"].repeat(1, 3, 1, 1) / 3)


def test_wrong_shapes_name_the_file_and_key(tmp_path, resnet_3cls):
    bad = dict(resnet_3cls)
    bad["layer2.0.conv1.weight"] = torch.zeros(128, 32, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(WeightsError, match=r"layer2\.0\.conv1\.weight") as err:
        create_model(RESNET18, req(3), weights=str(path))
    assert str(path) in str(err.value)


def test_missing_and_unexpected_keys_are_errors(tmp_path, resnet_3cls):
    bad = {k: v for k, v in resnet_3cls.items() if k != "layer4.1.bn2.weight"}
    bad["extra.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(WeightsError, match=r"missing keys: layer4\.1\.bn2\.weight.*unexpected keys: extra\.weight"):
        create_model(RESNET18, req(3), weights=str(path))


def test_unreadable_weights(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        create_model(RESNET18, req(2), weights=str(tmp_path / "nope.pth"))
    (tmp_path / "w.ckpt").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unsupported extension"):
        create_model(RESNET18, req(2), weights=str(tmp_path / "w.ckpt"))
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="cannot be read"):
        create_model(RESNET18, req(2), weights=str(tmp_path / "junk.pth"))


def test_local_weights_win_over_pretrained(tmp_path, resnet_3cls, monkeypatch):
    monkeypatch.setattr(baselines, "torchvision_state_dict", lambda arch: pytest.fail("must not fetch"))
    path = tmp_path / "r18.pth"
    torch.save(resnet_3cls, path)
    state = create_model(RESNET18, req(2, pretrained=True), weights=str(path)).state_dict()
    assert_backbone_equal(state, resnet_3cls)


# ---------------------------------------------------------------- pretrained without network

@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v1"])
@pytest.mark.parametrize("offline_env", [True, False])
def test_pretrained_offline_fails_fast_with_instructions(name, offline_env, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    if offline_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "host_reachable", lambda host, port=443, timeout=1.0: False)
    monkeypatch.setattr(hub, "_timm_cached_file", lambda *a: None)  # an empty HF cache
    start = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        SPECS[name].build(req(2, in_chans=1, pretrained=True))
    assert time.perf_counter() - start < 2
    msg = str(err.value)
    assert "could not be fetched" in msg and "weights: /path/to/file.pth" in msg and "cache" in msg
    assert ("HF_HUB_OFFLINE" in msg) == offline_env


def test_pretrained_from_torch_hub_cache_needs_no_network(monkeypatch, tmp_path):
    from torchvision.models import get_model_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "host_reachable", lambda *a, **k: pytest.fail("network probed"))
    upstream = RESNET18.build(req(1000)).state_dict()
    name = get_model_weights("resnet18").DEFAULT.url.rsplit("/", 1)[-1]
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(upstream, tmp_path / "hub" / "checkpoints" / name)
    state = RESNET18.build(req(2, in_chans=1, pretrained=True)).state_dict()
    assert torch.allclose(state["conv1.weight"], upstream["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(state["layer4.1.conv2.weight"], upstream["layer4.1.conv2.weight"])


def test_host_reachable_is_bounded():
    start = time.perf_counter()
    assert hub.host_reachable("unreachable.invalid", timeout=0.5) is False
    assert time.perf_counter() - start < 1.5


# ---------------------------------------------------------------- freezing

# ResNet18, 2 classes. conv1: 3*64*7*7 = 9408, bn1: 128.
# layer4: block 1 = 3x3 256->512 (1,179,648) + 3x3 512->512 (2,359,296) + 1x1 downsample 256->512
# (131,072) + three BN(512) (3*1024); block 2 = two 3x3 512->512 + two BN(512).
FC_2 = 512 * 2 + 2
LAYER4 = (1_179_648 + 2_359_296 + 131_072 + 3 * 1024) + (2 * 2_359_296 + 2 * 1024)


@pytest.mark.parametrize("freeze,expected", [
    ("none", RESNET18_PARAMS_2),
    ("backbone", FC_2),
    ("stages:0", RESNET18_PARAMS_2),
    ("stages:1", RESNET18_PARAMS_2 - 9408 - 128),  # conv1 and the stem's bn1 (before layer1)
    ("stages:4", LAYER4 + FC_2),
    ("stages:5", FC_2),
])
def test_freeze_policies_resnet18(freeze, expected):
    assert trainable(create_model(RESNET18, req(2), freeze=freeze)) == expected


def test_freeze_all_stages_covers_the_enclosing_container():
    # VGG11's stages are convs inside `features`: stages:5 freezes all of it, the three FC layers train.
    with torch.device("meta"):
        vgg = create_model(SPECS["vgg11"], req(2), freeze="stages:5")
    assert trainable(vgg) == (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 2 + 2)
    with torch.device("meta"):
        dense = create_model(SPECS["densenet121"], req(3), freeze="stages:5")
    assert trainable(dense) == 1024 * 3 + 3  # norm5 belongs to the last stage


def test_freeze_stem_of_mobilenet_v2():
    total = 2_241_806 - 1280 * 14 - 14 + 1280 * 2 + 2
    model = create_model(SPECS["mobilenet_v2"], req(2), freeze="stages:1")
    assert trainable(model) == total - (3 * 32 * 9 + 2 * 32)  # features.0: conv 3x3 3->32 + BN


@pytest.mark.parametrize("freeze", ["stages:6", "layers:2", "all"])
def test_bad_freeze_policy(freeze):
    with pytest.raises(SuiteError, match="resnet18"):
        create_model(RESNET18, req(2), freeze=freeze)


def test_frozen_batchnorm_stays_in_eval_mode():
    model = create_model(RESNET18, req(2), freeze="stages:1")
    model.train()
    apply_frozen_bn_eval(model)
    assert not model.bn1.training and model.layer1[0].bn1.training
    before = model.bn1.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(model.bn1.running_mean, before)
    assert not torch.equal(model.layer1[0].bn1.running_mean, torch.zeros(64))


# ---------------------------------------------------------------- params

def test_validate_params():
    assert validate_params(SPECS["lenet"], {"head": "adaptive"}).head == "adaptive"
    assert validate_params(SPECS["lenet"], None).head == "flatten"
    with pytest.raises(SuiteError, match=r"'lenet'.*head"):
        validate_params(SPECS["lenet"], {"head": "bogus"})
    with pytest.raises(SuiteError, match=r"'resnet18'.*depth"):
        validate_params(RESNET18, {"depth": 34})


# ---------------------------------------------------------------- conformance check

def test_conformance_check_passes_on_good_specs():
    check_model_spec(SPECS["lenet"])
    check_model_spec(RESNET18)


def _ignores_num_classes(request: BuildRequest) -> nn.Module:
    return RESNET18.build(replace(request, num_classes=5))


@pytest.mark.parametrize("broken,message", [
    (replace(SPECS["lenet"], classifier="head"), "classifier 'head' is not a module"),
    (replace(SPECS["lenet"], cam_layer="conv9"), "cam_layer 'conv9'"),
    (replace(SPECS["lenet"], paper=""), "paper"),
    (replace(RESNET18, build=_ignores_num_classes), r"output shape \(2, 5\)"),
    (replace(RESNET18, classifier="layer4"), "classifier .layer4. must be the layer producing the 2 logits"),
])
def test_conformance_check_fails_on_broken_specs(broken, message):
    with pytest.raises(AssertionError, match=message):
        check_model_spec(broken)


class _Unused(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(1, num_classes)
        self.spare = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x.mean((1, 2, 3)).unsqueeze(1))


def test_conformance_check_flags_unused_parameters():
    spec = replace(SPECS["lenet"], build=lambda r: _Unused(r.num_classes), first_conv=None, stages=(),
                   cam_layer=None, classifier="fc")
    with pytest.raises(AssertionError, match="spare.weight"):
        check_model_spec(spec)


def test_check_plugin():
    good = types.ModuleType("good_plugin")
    good.register_models = hookimpl(lambda: [SPECS["lenet"]])
    assert check_plugin(good) == ["lenet"]

    misnamed = types.ModuleType("misnamed_plugin")
    misnamed.register_model = hookimpl(lambda: [SPECS["lenet"]])
    with pytest.raises(AssertionError, match="register_model"):
        check_plugin(misnamed)

    undecorated = types.ModuleType("undecorated_plugin")
    undecorated.register_models = lambda: [SPECS["lenet"]]
    with pytest.raises(AssertionError, match="hookimpl"):
        check_plugin(undecorated)
