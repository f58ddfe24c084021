"""The model contract: every path hands the builder a validated params instance; one name per cost figure."""

from __future__ import annotations

import json

import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field

from cxrbench import hookimpl
from cxrbench.cli import main
from cxrbench.engine.runner import run_suite
from cxrbench.models.cost import cost_fields
from cxrbench.plugins import Registry, load_plugin_manager
from cxrbench.specs import BuildRequest, ModelSpec


class WidthParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(6, ge=2)


class WidthNet(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, width: int):
        super().__init__()
        self.stem = nn.Conv2d(in_chans, width, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.stem(x)).flatten(1))


def build(req: BuildRequest) -> nn.Module:
    return WidthNet(req.in_chans, req.num_classes, req.params.width)  # the README's TinyNet way


class WidthPlugin:
    @staticmethod
    @hookimpl
    def register_models():
        return [ModelSpec(name="widthnet", build=build, family="toy", paper="-", default_input_size=16,
                          params_schema=WidthParams, classifier="fc", first_conv="stem", stages=("stem",))]


def test_profile_command_hands_the_builder_validated_params(monkeypatch, capsys):
    """`cxrbench profile MODEL` used to build with NoParams, so `req.params.width` raised AttributeError."""
    import cxrbench.plugins as plugins

    registry = Registry(*load_plugin_manager(extra_plugins=(WidthPlugin,)))
    monkeypatch.setattr(plugins, "get_registry", lambda: registry)
    assert main(["profile", "widthnet", "--num-classes", "3", "--in-chans", "1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    # hand count: conv 1*6*9+6 = 60, fc 6*3+3 = 21; MACs: conv 16*16*6*9 (+bias 16*16*6) + fc 6*3 (+3)
    assert row["params"] == row["trainable_params"] == 81
    assert row["macs"] == 16 * 16 * 6 * 9 + 16 * 16 * 6 + 6 * 3 + 3


def test_job_records_and_latency_records_name_cost_figures_alike(suite_file, tmp_path):
    registry = Registry(*load_plugin_manager(extra_plugins=(WidthPlugin,)))
    out = run_suite(suite_file(models=[{"name": "widthnet", "params": {"width": 4}}], metrics={"baselines": False}),
                    results_root=tmp_path, device="cpu", registry=registry)
    (rec,) = out.records
    model = WidthNet(1, 2, 4)
    expected = cost_fields(model, 32, 1)  # the fields a latency record carries (without the cross-check)
    assert {k: rec.cost[k] for k in expected} == expected
    assert set(rec.cost) == set(expected) | {"input"} and "params_trainable" not in rec.cost
    assert rec.cost["trainable_params"] == 4 * 9 + 4 + 4 * 2 + 2
