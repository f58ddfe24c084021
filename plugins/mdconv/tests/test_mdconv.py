"""MD-Conv operator and the MobileNets built with it: structure, hand counts and the paper's cost."""

from __future__ import annotations

import pickle

import pytest
import torch
import torchvision
from pydantic import ValidationError

from cxrbench.errors import WeightsError
from cxrbench.testing import request_for
from cxrbench_mdconv.mdconv import MDConv, split_channels
from cxrbench_mdconv.models import MobileNetV2MDConvParams, MobileNetV3MDConvParams
from cxrbench_mdconv.plugin import MOBILENETV2_MDCONV, MOBILENETV3_MDCONV

SPECS = [MOBILENETV2_MDCONV, MOBILENETV3_MDCONV]
MOBILENET_V2_14 = 3_504_872 - (1280 * 1000 + 1000) + (1280 * 14 + 14)  # torchvision's ImageNet count, 14-way head
MOBILENET_V3L_14 = 5_483_032 - (1280 * 1000 + 1000) + (1280 * 14 + 14)
# MobileNetV2 Table 2 row 5 = bottleneck (t=6, c=64, n=4, s=2): expanded widths 32*6, then 64*6 three times.
LAYER5_HIDDEN = [192, 384, 384, 384]
# MobileNetV3-Large (Table 1 of its paper): (expanded width, depthwise kernel) of the 15 blocks.
V3_BLOCKS = [(16, 3), (64, 3), (72, 3), (72, 5), (120, 5), (120, 5), (240, 3), (200, 3), (184, 3), (184, 3),
             (480, 3), (672, 3), (672, 5), (960, 5), (960, 5)]
PAPER_PARAMS, PAPER_MACS = 2.3e6, 1241e6


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def mdconv_delta(channels: int, old_kernel: int = 3) -> int:
    """Weights gained when a k x k depthwise conv becomes MD-Conv [3, 5] split 1:1 (even channels)."""
    return channels // 2 * 9 + channels // 2 * 25 - channels * old_kernel**2


def test_operator_param_count_by_hand():
    assert n_params(MDConv(64, (3, 5))) == 32 * 9 + 32 * 25
    assert n_params(MDConv(48, (3, 5, 7), split=(2, 1, 1))) == 24 * 9 + 12 * 25 + 12 * 49


def test_split_channels():
    assert split_channels(64, (1, 1)) == [32, 32]
    assert split_channels(33, (1, 1)) == [17, 16]  # remainder to the first group, as timm
    assert split_channels(48, (2, 1, 1)) == [24, 12, 12]
    with pytest.raises(ValueError):
        split_channels(2, (1, 1, 1))


@pytest.mark.parametrize("stride,size,out", [(1, 15, 15), (2, 15, 8), (2, 16, 8)])
def test_operator_keeps_size_at_any_stride(stride, size, out):
    y = MDConv(6, (3, 5), stride=stride)(torch.randn(2, 6, size, size))
    assert y.shape == (2, 6, out, out)


def test_operator_uses_both_kernel_sizes():
    """An impulse spreads over 3x3 in the first half of the channels and 5x5 in the second."""
    conv = MDConv(4, (3, 5))
    for c in conv.convs:
        torch.nn.init.ones_(c.weight)
    x = torch.zeros(1, 4, 11, 11)
    x[..., 5, 5] = 1
    with torch.no_grad():
        support = (conv(x)[0] != 0).sum((1, 2))
    assert support.tolist() == [9, 9, 25, 25]


@pytest.mark.parametrize("channels", [8, 9])
def test_operator_matches_timm_mixed_conv(channels):
    from timm.layers import MixedConv2d

    ours, ref = MDConv(channels, (3, 5)), MixedConv2d(channels, channels, [3, 5], depthwise=True)
    with torch.no_grad():
        for mine, theirs in zip(ours.convs, ref.values()):
            mine.weight.copy_(theirs.weight)
        x = torch.randn(2, channels, 9, 9)
        torch.testing.assert_close(ours(x), ref(x))


def _mdconvs(model: torch.nn.Module) -> dict[str, MDConv]:
    return {n: m for n, m in model.named_modules() if isinstance(m, MDConv)}


def test_default_is_layer5_the_stride2_64_channel_row():
    model = MOBILENETV2_MDCONV.build(request_for(MOBILENETV2_MDCONV, num_classes=14))
    md = _mdconvs(model)  # in module order
    assert list(md) == [f"features.{i}.conv.1.0" for i in (7, 8, 9, 10)]
    assert [m.channels for m in md.values()] == LAYER5_HIDDEN
    assert [m.stride for m in md.values()] == [2, 1, 1, 1]
    assert model.features[10].conv[2].out_channels == 64
    assert n_params(model) == MOBILENET_V2_14 + sum(mdconv_delta(c) for c in LAYER5_HIDDEN)


def test_stage_selection():
    layers = lambda s: MobileNetV2MDConvParams(stages=s).layers  # noqa: E731
    assert layers("layer5") == layers(5) == layers(["layer5"]) == (5,)
    assert layers("all") == (2, 3, 4, 5, 6, 7, 8)
    assert layers([7, "layer5"]) == (5, 7)
    model = MOBILENETV2_MDCONV.build(request_for(MOBILENETV2_MDCONV, num_classes=2, params=MobileNetV2MDConvParams(stages="all")))
    assert len(_mdconvs(model)) == 17  # every inverted-residual block
    for bad in ("layer1", "layer9", 0, "conv5", []):
        with pytest.raises(ValidationError):
            MobileNetV2MDConvParams(stages=bad)


def test_kernel_and_split_params():
    p = MobileNetV2MDConvParams(kernel_sizes=(3, 5, 7), split=(2, 1, 1))
    md = _mdconvs(MOBILENETV2_MDCONV.build(request_for(MOBILENETV2_MDCONV, num_classes=2, params=p)))
    assert [m.splits for m in md.values()][0] == [96, 48, 48]
    for bad in ({"kernel_sizes": (3, 4)}, {"split": (1, 1, 1)}, {"kernel_sizes": ()}, {"oops": 1}):
        with pytest.raises(ValidationError):
            MobileNetV2MDConvParams(**bad)


def test_v3_all_blocks_replaced_hand_count():
    model = MOBILENETV3_MDCONV.build(request_for(MOBILENETV3_MDCONV, num_classes=14))
    md = _mdconvs(model)
    assert [m.channels for m in md.values()] == [c for c, _ in V3_BLOCKS]
    assert n_params(model) == MOBILENET_V3L_14 + sum(mdconv_delta(c, k) for c, k in V3_BLOCKS)
    part = MOBILENETV3_MDCONV.build(request_for(MOBILENETV3_MDCONV, num_classes=14, params=MobileNetV3MDConvParams(stages=[1, 4])))
    assert len(_mdconvs(part)) == 2


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_shape(spec, in_chans):
    model = spec.build(request_for(spec, num_classes=14, in_chans=in_chans, task="multilabel", image_size=64)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, in_chans, 64, 64)).shape == (2, 14)


def test_paper_cost_at_448():
    """14 classes at 448 px: within 5 % of the paper's 2.3 M params and 1,241 M MACs; the MAC increase over
    plain MobileNetV2 is exactly the extra depthwise weights times the layer's 28x28 output."""
    ptflops = pytest.importorskip("ptflops")

    def macs(model):
        return ptflops.get_model_complexity_info(model.eval(), (3, 448, 448), as_strings=False,
                                                 print_per_layer_stat=False, backend="aten")[0]

    model = MOBILENETV2_MDCONV.build(request_for(MOBILENETV2_MDCONV, num_classes=14, image_size=448))
    ours = macs(model)
    assert abs(n_params(model) / PAPER_PARAMS - 1) < 0.05
    assert abs(ours / PAPER_MACS - 1) < 0.05
    plain = macs(torchvision.models.mobilenet_v2(num_classes=14))
    assert ours - plain == sum(mdconv_delta(c) for c in LAYER5_HIDDEN) * 28 * 28


def test_pretrained_refused():
    for spec in SPECS:
        assert not spec.supports_pretrained
        with pytest.raises(WeightsError):
            spec.build(request_for(spec, num_classes=2, pretrained=True))


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
    assert {models[s.name].plugin for s in SPECS} == {"mdconv"}
