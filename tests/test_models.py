"""Built-in baselines: registration, parameter counts against independent values, shapes."""

from __future__ import annotations

import pluggy
import pytest
import torch
import torch.nn as nn

import cxrbench.builtins.models as builtin_models
from cxrbench import hookspecs
from cxrbench.builtins.models import baseline_specs
from cxrbench.models import baselines
from cxrbench.models.lenet import LeNetParams
from cxrbench.models.shufflenet_v1 import ShuffleNetV1, ShuffleNetV1Params, ShuffleUnit
from cxrbench.models.cost import count_macs
from cxrbench.specs import BuildRequest, ModelSpec

SPECS = {s.name: s for s in baseline_specs()}
HEAVY = {"alexnet", "vgg11", "vgg16"}  # >50 M parameters: shapes checked on the meta device
EXPECTED = {"lenet", "alexnet", "vgg11", "vgg16", "resnet18", "resnet50", "densenet121", "squeezenet1_0",
            "squeezenet1_1", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
            "shufflenet_v1", "shufflenet_v2_x1_0"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny inputs; 2 OpenMP threads on a shared 2-core box are ~20x slower
    torch.set_flush_denormal(True)
    yield
    torch.set_num_threads(threads)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(name: str, num_classes: int, in_chans: int = 3, image_size: int = 64, meta: bool = False,
          **kw) -> nn.Module:
    spec = SPECS[name]
    req = BuildRequest(num_classes=num_classes, in_chans=in_chans, image_size=image_size,
                       params=kw.pop("params", spec.params_schema()), **kw)
    if meta:
        with torch.device("meta"):
            return spec.build(req)
    return spec.build(req)


def conv(cin: int, cout: int, k: int, groups: int = 1, bias: bool = False) -> int:
    return cin // groups * cout * k * k + (cout if bias else 0)


def linear(cin: int, cout: int) -> int:
    return cin * cout + cout


def bn(c: int) -> int:
    return 2 * c


# ---------------------------------------------------------------- registration and metadata

def test_hook_registers_every_baseline_with_complete_metadata():
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin_models)
    (specs,) = pm.hook.register_models()
    assert {s.name for s in specs} == EXPECTED
    for s in specs:
        assert isinstance(s, ModelSpec)
        assert s.family and s.paper and s.notes and s.default_input_size == 224, s.name
        assert s.first_conv and s.stages and s.cam_layer, s.name
        assert s.supports_pretrained == (s.name not in {"lenet", "shufflenet_v1"}), s.name
        if s.supports_pretrained:
            assert "BSD-3-Clause" in s.weights_license or "Apache-2.0" in s.weights_license, s.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_paths_are_modules_of_the_model(name):
    spec = SPECS[name]
    model = build(name, 3, in_chans=1, meta=True)
    for path in (spec.classifier, spec.first_conv, spec.cam_layer, *spec.stages):
        model.get_submodule(path)  # raises AttributeError if absent
    head = model.get_submodule(spec.classifier)
    assert head.weight.shape[0] == 3, "the classifier path must point at the layer producing the logits"
    assert model.get_submodule(spec.first_conv).in_channels == 1
    order = [n for n, _ in model.named_modules()]
    positions = [order.index(s) for s in spec.stages]
    assert positions == sorted(positions), "stages must be listed input to output"


# ---------------------------------------------------------------- parameter counts (independent values)

@pytest.mark.parametrize("name,num_classes,expected", [
    ("vgg16", 2, 134_268_738),
    ("resnet50", 14, 23_536_718),
    ("densenet121", 14, 6_968_206),
    ("mobilenet_v2", 14, 2_241_806),
    ("resnet18", 2, 11_177_538),
])
def test_parameter_counts_match_published_definitions(name, num_classes, expected):
    assert n_params(build(name, num_classes, meta=True)) == expected


def test_grey_input_only_changes_the_first_conv():
    # ResNet18 conv1 is 7x7x64 without bias: 1 channel instead of 3 saves 2*49*64 weights.
    assert n_params(build("resnet18", 2, 3, meta=True)) - n_params(build("resnet18", 2, 1, meta=True)) == 2 * 49 * 64


def lenet_count(in_chans: int, num_classes: int, side: int) -> int:
    return (conv(in_chans, 6, 5, bias=True) + conv(6, 16, 5, bias=True) + linear(16 * side * side, 120)
            + linear(120, 84) + linear(84, num_classes))


def test_lenet_parameter_count_by_hand():
    # conv1 (pad 2) keeps 224; pool 112; conv2 (5x5) 108; pool 54 -> 16*54*54 features
    assert lenet_count(3, 2, 54) == 5_612_046  # the LR-Net paper's "5.6120M"
    assert n_params(build("lenet", 2, 3, image_size=224)) == 5_612_046
    # 64 px grey: 64 -> 32 -> 28 -> 14
    assert n_params(build("lenet", 14, 1, image_size=64)) == lenet_count(1, 14, 14)
    adaptive = build("lenet", 2, 3, image_size=224, params=LeNetParams(head="adaptive"))
    assert n_params(adaptive) == lenet_count(3, 2, 5) == 61_326


def shuffle_unit_count(cin: int, cout: int, groups: int, stride: int, group_first: bool = True) -> int:
    mid = cout // 4
    branch = cout - cin if stride == 2 else cout
    return (conv(cin, mid, 1, groups if group_first else 1) + bn(mid) + conv(mid, mid, 3, groups=mid) + bn(mid)
            + conv(mid, branch, 1, groups) + bn(branch))


def test_shufflenet_v1_unit_parameter_count_by_hand():
    # stride-1 unit, 240 channels, g=3, bottleneck 60:
    # 1x1 gconv 240*60/3 + BN 120 + 3x3 dw 60*9 + BN 120 + 1x1 gconv 60*240/3 + BN 480
    assert n_params(ShuffleUnit(240, 240, groups=3, stride=1)) == 4800 + 120 + 540 + 120 + 4800 + 480
    # first unit of stage 2: ungrouped 1x1 on 24 channels, branch outputs 240 - 24 = 216
    first = ShuffleUnit(24, 240, groups=3, stride=2, group_first=False)
    assert n_params(first) == 24 * 60 + 120 + 540 + 120 + 60 * 216 // 3 + 432
    y = first(torch.randn(2, 24, 16, 16))
    assert y.shape == (2, 240, 8, 8)


def test_shufflenet_v1_structure_and_total_count():
    model = ShuffleNetV1(num_classes=1000, in_chans=3, groups=3)
    stages = [model.stage2, model.stage3, model.stage4]
    assert [len(s) for s in stages] == [4, 8, 4]
    assert [s[-1].expand[0].out_channels for s in stages] == [240, 480, 960]
    assert model.stage2[0].compress[0].groups == 1 and model.stage3[0].compress[0].groups == 3
    assert all(isinstance(u.shuffle, nn.ChannelShuffle) and u.shuffle.groups == 3 for s in stages for u in s)
    expected = (conv(3, 24, 3) + bn(24)
                + shuffle_unit_count(24, 240, 3, 2, group_first=False) + 3 * shuffle_unit_count(240, 240, 3, 1)
                + shuffle_unit_count(240, 480, 3, 2) + 7 * shuffle_unit_count(480, 480, 3, 1)
                + shuffle_unit_count(480, 960, 3, 2) + 3 * shuffle_unit_count(960, 960, 3, 1)
                + linear(960, 1000))
    assert n_params(model) == expected == 1_865_728


def test_shufflenet_v1_complexity_matches_paper():
    # Zhang et al. 2017, Table 2: ShuffleNet 1x at 224 px, 137 / 143 MFLOPs (multiply-adds) for g=3 / g=1
    for groups, paper in ((3, 137e6), (1, 143e6)):
        macs = count_macs(ShuffleNetV1(1000, 3, groups), 224, 3)["macs"]
        assert abs(macs - paper) / paper < 0.01


def test_shufflenet_v1_shuffles_between_group_conv_and_depthwise():
    unit = ShuffleUnit(240, 240, groups=3, stride=1).eval()
    seen = {}
    unit.compress.register_forward_hook(lambda m, i, o: seen.setdefault("compressed", o))
    unit.depthwise.register_forward_hook(lambda m, i, o: seen.setdefault("dw_in", i[0]))
    with torch.no_grad():
        unit(torch.randn(1, 240, 8, 8))
    c = seen["compressed"]  # (1, 60, 8, 8): 3 groups of 20 -> channel j*3 + g comes from group g
    expected = c.view(1, 3, 20, 8, 8).transpose(1, 2).reshape(1, 60, 8, 8)
    assert torch.equal(seen["dw_in"], expected)


# ---------------------------------------------------------------- every baseline, every head and channel count

@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("in_chans", [1, 3])
def test_baselines_build_with_logits_of_the_right_shape(name, in_chans):
    for k in (2, 3, 14):
        task = "multilabel" if k == 14 else "multiclass"
        if name in HEAVY:
            model = build(name, k, in_chans, task=task, meta=True)
            out = model(torch.empty(2, in_chans, 64, 64, device="meta"))
        else:
            model = build(name, k, in_chans, task=task).eval()
            with torch.no_grad():
                out = model(torch.randn(2, in_chans, 64, 64))
            assert torch.isfinite(out).all()
        assert out.shape == (2, k), (name, in_chans, k)


@pytest.mark.parametrize("name", ["alexnet"])
def test_heavy_baseline_real_forward_at_64px(name):
    model = build(name, 3, 1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 3)


def test_no_softmax_inside_logits_can_be_negative():
    torch.manual_seed(0)
    model = build("resnet18", 3).eval()
    with torch.no_grad():
        model.fc.bias.fill_(-10.0)  # raw logits follow the bias; a softmax/sigmoid output could not go negative
        out = model(torch.randn(4, 3, 64, 64))
    assert (out < 0).all() and not torch.allclose(out.sum(1), torch.ones(4))


def test_squeezenet_final_relu_dropped_for_multilabel_only():
    assert isinstance(build("squeezenet1_1", 3, task="multiclass", meta=True).classifier[2], nn.ReLU)
    assert isinstance(build("squeezenet1_1", 14, task="multilabel", meta=True).classifier[2], nn.Identity)


def test_dropout_reaches_the_architecture():
    vgg = build("vgg16", 2, dropout=0.1, meta=True)
    assert [m.p for m in vgg.modules() if isinstance(m, nn.Dropout)] == [0.1, 0.1]
    assert build("mobilenet_v2", 2, dropout=0.3, meta=True).classifier[0].p == 0.3
    assert build("mobilenet_v1", 2, dropout=0.3, meta=True).drop_rate == 0.3
    assert build("densenet121", 2, dropout=0.2, meta=True).features.denseblock1.denselayer1.drop_rate == 0.2


def test_shufflenet_v1_groups_param():
    model = build("shufflenet_v1", 2, params=ShuffleNetV1Params(groups=8), meta=True)
    assert model.stage4[-1].expand[0].out_channels == 1536


def test_torchvision_pretrained_weights_are_adapted(monkeypatch):
    import torchvision

    upstream = torchvision.models.resnet18().state_dict()  # stands in for the ImageNet download
    monkeypatch.setattr(baselines, "torchvision_state_dict", lambda arch: upstream)
    model = build("resnet18", 2, in_chans=1, pretrained=True)
    state = model.state_dict()
    assert torch.allclose(state["conv1.weight"], upstream["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(state["layer3.1.conv2.weight"], upstream["layer3.1.conv2.weight"])
    assert state["fc.weight"].shape == (2, 512)


def test_pretrained_not_offered_where_no_upstream_weights():
    from cxrbench.errors import WeightsError

    with pytest.raises(WeightsError, match="no upstream pretrained weights"):
        build("shufflenet_v1", 2, pretrained=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_baseline_passes_the_conformance_check(name):
    from cxrbench.testing import check_model_spec

    check_model_spec(SPECS[name])


def test_weights_without_module_versions_load_into_mnasnet():
    """torchvision's MNASNet needs its module version when loading: a plain dict (a file saved by
    hand, or read back without ``_metadata``) gets the model's own versions and loads exactly."""
    import torchvision

    from cxrbench.models.adapt import load_adapted

    src = torchvision.models.mnasnet0_5(num_classes=2).eval()
    plain = {k: v.clone() for k, v in src.state_dict().items()}  # no _metadata
    dst = torchvision.models.mnasnet0_5(num_classes=2).eval()
    load_adapted(dst, plain, classifier="classifier.1", first_conv="layers.0", source="test")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))
