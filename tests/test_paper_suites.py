"""Every shipped suite validates, and runs end to end on the synthetic override (tiny and short)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrbench.cli import main
from cxrbench.engine.runner import run_suite
from cxrbench.suite.loader import load_suite

SUITES = sorted((Path(__file__).resolve().parents[1] / "suites").glob("*.yaml"))


def test_suites_are_shipped():
    names = {p.stem for p in SUITES}
    assert {"quickstart", "pneumonia_binary", "pneumonia_subtype", "lung_3class", "chestxray14_mdconv",
            "chestxray14_mdconv_chestmnist", "resnet18_transfer", "edge_latency"} <= names


def test_cxrbench_validate_passes_on_every_suite(capsys):
    assert main(["validate", *map(str, SUITES)]) == 0
    assert capsys.readouterr().out.count("ok ") == len(SUITES)


def tiny_synthetic_overrides(path: Path) -> list[str]:
    suite = load_suite(path)
    sets = ["dataset={name: synthetic_cxr, options: {n_samples: 60}}", "input.image_size=64",
            "input.cache_size=null", "train.epochs=1", "train.batch_size=8", "train.max_steps_per_epoch=1",
            "train.save_checkpoints=false", "metrics.bootstrap=20", "profile.latency.enabled=false"]
    if suite.split.strategy == "kfold":
        sets.append("split.folds=2")
    if suite.split.strategy == "official":
        sets.append("split.strategy=ratio")  # synthetic data has no official split unless asked
    if suite.external_test:
        sets.append("external_test=[]")  # the external datasets are not here either
    for i, m in enumerate(suite.models):
        if m.pretrained:
            sets.append(f"models.{i}.pretrained=false")  # no network here
    return sets


TRAINING_SUITES = [p for p in SUITES if p.stem != "quickstart" and not load_suite(p).profile.only]
"""Profile-only suites (edge_latency) train nothing: tests/test_edge_latency_suite.py runs them."""


@pytest.mark.parametrize("path", TRAINING_SUITES, ids=lambda p: p.stem)
def test_suite_runs_on_the_synthetic_override(path, tmp_path):
    outcome = run_suite(path, tiny_synthetic_overrides(path), results_root=tmp_path, device="cpu")
    assert outcome.status == "complete", [(r.job_id, r.error) for r in outcome.records if r.status != "ok"]
    header = outcome.store.read_header()
    assert header["synthetic"] is True
    suite = load_suite(path)
    folds = 2 if suite.split.strategy == "kfold" else 1
    assert len(outcome.records) == len(suite.models) * folds * len(suite.seeds)
