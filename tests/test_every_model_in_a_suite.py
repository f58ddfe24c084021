"""Every registered model (built-in and plugin) trains one step and evaluates inside a real suite."""

from __future__ import annotations

import numpy as np
import pytest

from cxrbench.engine.runner import run_suite
from cxrbench.plugins import get_registry

CASES = {
    "binary-1ch": dict(task={"type": "binary", "classes": ["normal", "pneumonia"]}, channels=1,
                       metrics={"primary": "accuracy", "report": ["accuracy", "roc_auc"], "bootstrap": 0}),
    "multiclass-3ch": dict(task={"type": "multiclass", "classes": ["normal", "lobar", "diffuse"]}, channels=3,
                           metrics={"primary": "accuracy", "report": ["accuracy", "f1"], "bootstrap": 0}),
    "multilabel14-3ch": dict(task={"type": "multilabel", "classes": [
        "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
        "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]}, channels=3,
        metrics={"primary": "mean_auc", "report": ["mean_auc", "f1"], "bootstrap": 0}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_registered_model_trains_and_evaluates(case, suite_file, tmp_path):
    cfg = CASES[case]
    models = sorted(get_registry().models)
    assert {"lenet", "vgg16", "shufflenet_v1", "lrnet", "mobilenet_lung", "mobilenetv2_mdconv"} <= set(models)
    suite = suite_file(models=models, task=cfg["task"], metrics=cfg["metrics"],
                       dataset={"name": "synthetic_cxr", "options": {"n_samples": 48}},
                       input={"image_size": 64, "channels": cfg["channels"], "normalization": "imagenet"},
                       train={"epochs": 1, "batch_size": 4, "max_steps_per_epoch": 1, "eval_batch_size": 16},
                       profile={"cost": False})
    outcome = run_suite(suite, results_root=tmp_path / "res", device="cpu")
    failed = {r.model: r.error for r in outcome.records if r.status != "ok"}
    assert not failed, failed
    k = len(cfg["task"]["classes"])
    for rec in outcome.records:
        cm = np.asarray(rec.confusion_matrix)
        assert cm.shape == ((k, 2, 2) if case.startswith("multilabel") else (k, k)), rec.model
        assert rec.n_test > 0 and rec.epochs_run == 1
