"""The xrv models inside suites: the core applies their preprocessing, zero-shot runs end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import cxrbench_xrv.plugin
from cxrbench.engine.runner import run_suite
from cxrbench.errors import SuiteError
from cxrbench.plugins import Registry, load_plugin_manager
from cxrbench.results.view import RunView
from cxrbench.suite.checks import check_suite
from cxrbench.suite.loader import load_suite

from test_xrv import _cached_weights  # noqa: E402

NAME = "xrv-densenet121-res224-rsna"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXRBENCH_MLFLOW", "0")
    pm, infos = load_plugin_manager()
    if not any(p is cxrbench_xrv.plugin for p in pm.get_plugins()):  # not installed: load it by hand
        pm, infos = load_plugin_manager(extra_plugins=(cxrbench_xrv.plugin,))
    return Registry(pm, infos)


def suite(tmp_path, cache, *, epochs=0, size=224, pretrained=True, channels=1):
    data = {
        "name": "xrv_zero_shot", "task": {"type": "binary", "classes": ["normal", "pneumonia"]},
        "dataset": {"name": "synthetic_cxr", "options": {"n_samples": 40, "seed": 0}},
        "input": {"image_size": size, "channels": channels},   # normalization stays the suite default (imagenet)
        "models": [{"name": NAME, "pretrained": pretrained, "params": {"cache_dir": str(cache)}}],
        "train": {"epochs": epochs, "batch_size": 8}, "seeds": [0],
        "metrics": {"primary": "roc_auc", "report": ["accuracy", "roc_auc"], "bootstrap": 20},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("changes,match", [
    ({"size": 64}, r"input.image_size: model 'xrv-densenet121-res224-rsna' .* takes 224"),
    ({"channels": 3}, r"input.channels: .* takes 1"),
    ({"pretrained": False}, r"train.epochs: 0 evaluates without training"),
])
def test_suite_check_refuses_before_any_work(tmp_path, env, changes, match):
    path = suite(tmp_path, tmp_path / "xrv", **changes)
    with pytest.raises(SuiteError, match=match):
        check_suite(load_suite(path), env, str(path))


def test_random_init_takes_any_size(tmp_path, env):
    path = suite(tmp_path, tmp_path / "xrv", size=32, pretrained=False, epochs=1, channels=3)
    check_suite(load_suite(path), env, str(path))  # no weights to honour: no size or channel rule


def test_zero_shot_run_scores_the_pretrained_head(tmp_path, env):
    cache = tmp_path / "xrv"
    src = _cached_weights(NAME, cache)
    outcome = run_suite(suite(tmp_path, cache), results_root=tmp_path / "results", device="cpu", registry=env)
    assert outcome.status == "complete"
    (rec,) = [r for r in outcome.records if r.kind == "model"]
    assert rec.status == "ok" and rec.epochs_run == 0
    assert rec.input["normalization"] == "model: torchxrayvision [-1024, 1024]"
    assert rec.input["mean"] == [0.5] and rec.input["std"] == [1 / 2048]
    # by hand: the run's test images, mapped to [-1024, 1024], through the source network's Pneumonia output
    view = RunView.open(outcome.store.dir, registry=env)
    pred = pd.read_csv(outcome.store.dir / rec.predictions_path, dtype={"sample_id": str})
    x = view.pixels().uint8(pred.sample_id.tolist()).float() / 255 * 2048 - 1024
    with torch.no_grad():
        expected = torch.sigmoid(src(x)[:, 8]).numpy()
    np.testing.assert_allclose(pred.prob_pneumonia, expected, atol=1e-5)
