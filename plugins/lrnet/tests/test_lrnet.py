"""LR-Net plugin: the reconstruction hits the paper's cost, and the block does what the paper says."""

from __future__ import annotations

import pickle

import pytest
import torch
from pydantic import ValidationError

from cxrbench.errors import WeightsError
from cxrbench.testing import request_for
from cxrbench_lrnet.model import LRBlock
from cxrbench_lrnet.params import LRNetParams
from cxrbench_lrnet.plugin import LRNET, build_lrnet

PAPER_PARAMS = 268_098
PAPER_MACS = 732.2e6
MAC_TOLERANCE = 0.001  # relative; the reconstruction is 732.02 M (-0.025 %)


def hand_count(in_chans: int, classes: int, size: int, norm: str = "none",
               c0: int = 24, widths=(48, 96, 128), depths=(4, 4, 4)) -> tuple[int, int]:
    """(params, ptflops-aten MACs) from the layout arithmetic alone.

    Stem 3x3 stride 1; every stage starts with a stride-2 depthwise-separable transition.
    A DS conv a->b: 9a depthwise + ab pointwise weights, plus a + b biases (norm none) or
    2a + 2b BatchNorm affine params (norm bn). aten MACs = weights (+ biases) per output pixel.
    """
    def ds(a: int, b: int) -> tuple[int, int]:
        w = 9 * a + a * b
        return (w + a + b, w + a + b) if norm == "none" else (w + 2 * a + 2 * b, w)

    stem_w = 9 * in_chans * c0
    params, macs = (stem_w + c0, (stem_w + c0) * size * size) if norm == "none" else \
        (stem_w + 2 * c0, stem_w * size * size)
    prev, n = c0, size
    for c, d in zip(widths, depths):
        n = (n - 1) // 2 + 1
        tp, tm = ds(prev, c)
        bp, bm = ds(c, c)
        params += tp + 2 * d * bp
        macs += (tm + 2 * d * bm) * n * n
        prev = c
    fc = prev * classes + classes
    return params + fc, macs + fc


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_hand_formula_gives_the_paper_count():
    assert hand_count(3, 2, 224)[0] == PAPER_PARAMS


@pytest.mark.parametrize("in_chans,classes", [(3, 2), (1, 2), (3, 14), (1, 3)])
def test_param_count_matches_hand_formula(in_chans, classes):
    model = build_lrnet(request_for(LRNET, num_classes=classes, in_chans=in_chans))
    assert n_params(model) == hand_count(in_chans, classes, 224)[0]


def test_default_has_exactly_the_paper_param_count():
    assert n_params(build_lrnet(request_for(LRNET, num_classes=2, in_chans=3))) == PAPER_PARAMS


def test_batchnorm_variant_param_count():
    model = build_lrnet(request_for(LRNET, num_classes=2, params=LRNetParams(norm="bn")))
    assert n_params(model) == hand_count(3, 2, 224, norm="bn")[0]


def test_macs_match_hand_count_and_paper():
    ptflops = pytest.importorskip("ptflops")
    model = build_lrnet(request_for(LRNET, num_classes=2, in_chans=3)).eval()
    macs, params = ptflops.get_model_complexity_info(model, (3, 224, 224), as_strings=False,
                                                     print_per_layer_stat=False, backend="aten")
    assert params == PAPER_PARAMS
    assert macs == hand_count(3, 2, 224)[1]
    assert abs(macs / PAPER_MACS - 1) < MAC_TOLERANCE


def test_lr_block_has_identity_skip_and_final_relu():
    block = LRBlock(8).eval()
    for p in block.conv2.parameters():  # second DS conv outputs 0 -> block(x) = relu(x)
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_lr_block_is_two_depthwise_separable_convs():
    block = LRBlock(16)
    convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.groups) for c in convs] == [((3, 3), 16), ((1, 1), 1)] * 2


@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_shape_small_input(in_chans):
    model = build_lrnet(request_for(LRNET, num_classes=3, in_chans=in_chans, image_size=64, dropout=0.2)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, in_chans, 64, 64)).shape == (2, 3)


def test_params_are_validated():
    assert LRNetParams().widths == (48, 96, 128)
    with pytest.raises(ValidationError):
        LRNetParams(widths=(8, 16))  # three stages
    with pytest.raises(ValidationError):
        LRNetParams(depths=(0, 1, 1))
    with pytest.raises(ValidationError):
        LRNetParams(unknown=1)


def test_custom_layout_is_built():
    p = LRNetParams(stem_channels=8, widths=(8, 16, 32), depths=(1, 2, 1))
    model = build_lrnet(request_for(LRNET, num_classes=2, params=p))
    assert n_params(model) == hand_count(3, 2, 224, c0=8, widths=(8, 16, 32), depths=(1, 2, 1))[0]


def test_pretrained_is_refused():
    assert not LRNET.supports_pretrained
    with pytest.raises(WeightsError):
        build_lrnet(request_for(LRNET, num_classes=2, pretrained=True))


def test_spec_paths_exist():
    model = build_lrnet(request_for(LRNET, num_classes=2))
    modules = dict(model.named_modules())
    assert isinstance(modules[LRNET.first_conv], torch.nn.Conv2d)
    assert isinstance(modules[LRNET.classifier], torch.nn.Linear)
    assert all(s in modules for s in (*LRNET.stages, LRNET.cam_layer))


def test_spec_is_picklable():
    assert pickle.loads(pickle.dumps(LRNET)) == LRNET


def test_check_model_spec():
    testing = pytest.importorskip("cxrbench.testing")
    testing.check_model_spec(LRNET)


def test_registered():
    from cxrbench.plugins import get_registry, reset_registry

    reset_registry()
    assert get_registry().models["lrnet"].plugin == "lrnet"


def test_tests_run_on_one_thread():
    """The core's shared autouse fixture, imported by this plugin's conftest, is active."""
    import torch

    assert torch.get_num_threads() == 1
