"""Conformance at scale (slow): the kit on a fixed sample of timm architectures and on every
torchvision classification model, parameter counts and MACs.

Run with ``pytest -m slow tests/test_namespaces_conformance.py``. Each model is resolved through
the registry (``timm:`` / ``torchvision:``), checked by :func:`cxrbench.testing.check_model_spec`
(1 and 3 channels, 2 and 3 classes, freeze, weights round trip) at 64 px (or its fixed size), and
costed: parameters equal ``sum(p.numel())`` (torchvision: also its weights' documented
``num_params`` at 1000 classes), MACs counted by ptflops (the counter's caveats per family are in
the README, section Cost).
"""

from __future__ import annotations

import pytest
import torch

from cxrbench.models.cost import cost_fields
from cxrbench.models.factory import build_model
from cxrbench.plugins import get_registry
from cxrbench.testing import check_model_spec

SIZE = 64
SIZES = {"inception_v3": 96}
"""Architectures whose stem needs more than SIZE px (inception_v3: at least 75)."""
TIMM_CNN = [
    "resnet18", "resnet50d", "resnext26ts", "seresnext26d_32x4d", "res2net50_26w_4s", "resnest14d", "densenet121",
    "efficientnet_b0", "efficientnetv2_rw_t", "efficientnet_lite0", "mobilenetv2_100", "mobilenetv3_small_100",
    "mobilenetv4_conv_small", "mixnet_s", "ghostnet_100", "regnetx_002", "regnety_002", "rexnet_100",
    "convnext_atto", "convnextv2_atto", "hrnet_w18_small", "dla34", "dpn68", "vgg11_bn", "inception_v3",
    "cspresnet50", "repvgg_a0", "mnasnet_100", "lcnet_050", "tinynet_a", "selecsls42b", "nf_resnet26",
]
TIMM_VIT = [
    "vit_tiny_patch16_224", "deit_tiny_patch16_224", "deit_tiny_distilled_patch16_224", "deit3_small_patch16_224",
    "cait_xxs24_224", "xcit_nano_12_p16_224", "pit_ti_224", "eva02_tiny_patch14_224", "flexivit_small",
    "swin_tiny_patch4_window7_224",
]
TIMM_HYBRID = [
    "levit_128s", "coat_tiny", "coatnet_nano_rw_224", "mobilevit_xxs", "mobilevitv2_050", "efficientformer_l1",
    "edgenext_xx_small", "convit_tiny", "poolformer_s12", "fastvit_t8", "repvit_m1", "tiny_vit_5m_224",
]
TIMM_SAMPLE = TIMM_CNN + TIMM_VIT + TIMM_HYBRID


def _torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return tvm.list_models(module=tvm)


def _check(name: str) -> None:
    spec = get_registry().model(name)
    size = spec.fixed_input_size or SIZES.get(name.partition(":")[2], SIZE)
    check_model_spec(spec, num_classes=(2, 3), in_chans=(1, 3), image_size=size)
    model = build_model(spec, num_classes=3, in_chans=1, image_size=size)
    cost = cost_fields(model, size, 1)
    assert cost["params"] == sum(p.numel() for p in model.parameters())
    assert "macs_error" not in cost and cost["macs"] > 0, cost


def test_the_sample_has_fifty_architectures_of_every_kind():
    import timm

    assert len(TIMM_SAMPLE) == len(set(TIMM_SAMPLE)) == 54
    assert all(timm.is_model(n) for n in TIMM_SAMPLE)


@pytest.mark.slow
@pytest.mark.parametrize("arch", TIMM_SAMPLE)
def test_timm_architecture_conforms(arch):
    _check(f"timm:{arch}")


@pytest.mark.slow
@pytest.mark.parametrize("arch", _torchvision_names())
def test_torchvision_model_conforms(arch):
    import torchvision.models as tvm

    _check(f"torchvision:{arch}")
    from cxrbench.models.tv_zoo import AUX

    weights = list(tvm.get_model_weights(arch))
    if weights and arch not in AUX:  # built without the auxiliary heads, which the documented count includes
        spec = get_registry().model(f"torchvision:{arch}")
        try:  # the documented parameter count of the ImageNet model (1000 classes, 3 channels)
            with torch.device("meta"):
                model = build_model(spec, num_classes=1000, in_chans=3, image_size=224)
        except (NotImplementedError, RuntimeError):
            model = build_model(spec, num_classes=1000, in_chans=3, image_size=224)
        assert sum(p.numel() for p in model.parameters()) == weights[0].meta["num_params"]
