"""Cost counting: parameters and MACs against hand counts, published figures and a second counter."""

from __future__ import annotations

from importlib.metadata import version

import pytest
import torch
import torch.nn as nn

from cxrbench.builtins.models import baseline_specs
from cxrbench.models.cost import count_macs, count_macs_flopcounter, count_params, model_cost
from cxrbench.specs import BuildRequest

SPECS = {s.name: s for s in baseline_specs()}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_num_threads(threads)


def test_count_params_total_and_trainable():
    model = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 2))
    model[0].requires_grad_(False)
    assert count_params(model) == (10 * 5 + 5 + 5 * 2 + 2, 5 * 2 + 2)


def test_lenet_macs_by_hand():
    # conv/linear multiply-accumulates plus one add per output for the bias; ReLU/pooling not counted
    conv1 = 224 * 224 * 6 * (3 * 5 * 5 + 1)    # padding 2 keeps 224 x 224
    conv2 = 108 * 108 * 16 * (6 * 5 * 5 + 1)   # after pooling to 112, a valid 5x5 conv gives 108
    fcs = (16 * 54 * 54 + 1) * 120 + (120 + 1) * 84 + (84 + 1) * 2
    cost = model_cost(SPECS["lenet"], num_classes=2, in_chans=3, input_size=224)
    assert cost["macs"] == conv1 + conv2 + fcs  # 56.7 M; the LR-Net paper reports 56.2 M
    assert cost["params"] == cost["trainable_params"] == 5_612_046
    assert cost["flops"] == 2 * cost["macs"]
    assert cost["weights_bytes_fp32"] == 4 * 5_612_046


def test_cost_record_documents_the_counter():
    cost = model_cost(SPECS["resnet18"], num_classes=2, in_chans=3, input_size=64)
    assert cost["counter"] == "ptflops" and cost["counter_backend"] == "aten"
    assert cost["counter_version"] == version("ptflops")
    assert "FLOPs = 2 x MACs" in cost["convention"]
    # BN running mean/var add 2 floats per BN channel to the state dict (resnet18: 4800 BN channels)
    assert cost["state_dict_bytes_fp32"] - cost["weights_bytes_fp32"] == 4 * 2 * 4800


@pytest.mark.parametrize("name,paper_mmacs,tolerance", [
    ("resnet50", 16_395, 0.02),
    ("densenet121", 11_405, 0.02),
    ("mobilenet_v2", 1_223, 0.03),
])
def test_macs_at_448_match_the_md_conv_paper(name, paper_mmacs, tolerance):
    cost = model_cost(SPECS[name], num_classes=14, in_chans=3, input_size=448)
    assert abs(cost["macs"] / 1e6 - paper_mmacs) / paper_mmacs < tolerance


def test_ptflops_aten_agrees_with_torch_flop_counter():
    model = SPECS["resnet18"].build(BuildRequest(num_classes=2))
    ptflops_macs = count_macs(model, 224, 3)["macs"]
    torch_macs = count_macs_flopcounter(model, 224, 3)
    assert abs(ptflops_macs - torch_macs) / torch_macs < 0.01
    assert abs(ptflops_macs / 1e6 - 1_813.6) < 1  # the measurement in environment-notes.md


def test_count_macs_leaves_the_model_alone():
    model = SPECS["mobilenet_v2"].build(BuildRequest(num_classes=3, in_chans=1)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_macs(model, 64, 1)
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics untouched too


def test_count_macs_falls_back_to_cpu_for_ops_without_meta_kernel():
    class NeedsData(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            if x.sum().item() > -1:  # data-dependent: impossible on the meta device
                return self.fc(x.mean((2, 3)))
            return self.fc(x.amax((2, 3)))

    assert count_macs(NeedsData(), 8, 4)["macs"] == 4 * 3 + 3
