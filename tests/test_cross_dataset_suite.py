"""suites/cross_dataset.yaml end to end on miniature copies of its five archives: every external set
scored with the labels it annotates (the others masked, not negative), the leaderboard's external
columns, and each external mean AUC equal to sklearn's on the stored predictions' unmasked cells."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrbench.data.datasets.miniature import make_chestxray14
from cxrbench.data.datasets.miniature_archives import make_padchest, make_rsna
from cxrbench.data.datasets.miniature_chexpert import make_chexpert, make_mimic_cxr
from cxrbench.engine.runner import run_suite
from cxrbench.leaderboard.render import render_text
from cxrbench.leaderboard.table import build_boards, load_runs
from cxrbench.results.predictions import read_predictions
from cxrbench.suite.loader import load_suite
from tests.test_paper_suites_miniature import tiny_overrides

SUITE = Path(__file__).resolve().parents[1] / "suites" / "cross_dataset.yaml"
EXTERNAL = ("chexpert", "mimic", "padchest", "rsna")


def _mean_auc(pred) -> float:
    """Mean over labels of sklearn's AUC on each label's unmasked rows (labels with one class skipped)."""
    aucs = []
    for j in range(pred.y_true.shape[1]):
        known = pred.mask[:, j] if pred.mask is not None else np.ones(len(pred.y_true), bool)
        y = pred.y_true[known, j]
        if len(set(y)) == 2:
            aucs.append(roc_auc_score(y, pred.y_prob[known, j]))
    return float(np.mean(aucs)) if aucs else math.nan


def test_cross_dataset_suite_scores_each_archive_on_the_labels_it_has(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    roots = {"chexpert": make_chexpert(tmp_path / "chexpert"), "mimic": make_mimic_cxr(tmp_path / "mimic"),
             "padchest": make_padchest(tmp_path / "padchest"), "rsna": make_rsna(tmp_path / "rsna")}
    sets = [*tiny_overrides(SUITE, make_chestxray14(tmp_path / "nih")), "metrics.bootstrap=20",
            "external_test.1.split=all"]  # the miniature MIMIC test split is tiny
    sets += [f"external_test.{i}.dataset.root={roots[name]}" for i, name in enumerate(EXTERNAL)]
    outcome = run_suite(SUITE, sets, models=["resnet18"], results_root=tmp_path / "results", device="cpu")
    assert outcome.status == "complete", [(r.job_id, r.error) for r in outcome.records if r.status != "ok"]
    classes = list(load_suite(SUITE).task.classes)
    (rec,) = [r for r in outcome.store.records() if r.model == "resnet18"]
    assert set(rec.external) == set(EXTERNAL)
    for name in EXTERNAL:
        pred = read_predictions(outcome.store.dir / rec.external[name]["predictions_path"], classes, "multilabel").pred
        assert rec.external[name]["n"] == len(pred.y_true) > 0
        got, ref = rec.external[name]["metrics"]["mean_auc"], _mean_auc(pred)
        assert (math.isnan(got) and math.isnan(ref)) or got == pytest.approx(ref)
        if name == "rsna":  # RSNA annotates Pneumonia only: every other label is masked, not negative
            assert pred.mask is not None and pred.mask[:, classes.index("Pneumonia")].all()
            assert not np.delete(pred.mask, classes.index("Pneumonia"), axis=1).any()
    md = render_text(build_boards(load_runs(tmp_path / "results")), "markdown")
    header = {c.strip() for c in next(ln for ln in md.splitlines() if ln.startswith("|")).strip("|").split("|")}
    assert {f"mean_auc ext:{n}" for n in EXTERNAL} | {f"Δ {n}" for n in EXTERNAL} <= header
