"""suites/pneumonia_external.yaml end to end on miniature ChestX-ray2017 and RSNA copies: the
external columns on the leaderboard, with the hand-counted rows of each external set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cxrbench.data.datasets.miniature import make_kermany
from cxrbench.data.datasets.miniature_archives import RSNA_IMAGES, make_rsna
from cxrbench.engine.runner import run_suite
from cxrbench.leaderboard.render import render_text
from cxrbench.leaderboard.table import build_boards, load_runs
from tests.test_paper_suites_miniature import tiny_overrides

SUITE = Path(__file__).resolve().parents[1] / "suites" / "pneumonia_external.yaml"
CLASSES = [c for _, c, _ in RSNA_IMAGES.values()]
N_STRICT = sum(c != "No Lung Opacity / Not Normal" for c in CLASSES)  # 7: the 3 "not normal" are dropped
N_OPACITY = CLASSES.count("Lung Opacity")  # 3


def test_kermany_to_rsna_runs_and_the_leaderboard_shows_both_external_columns(tmp_path):
    kermany = tmp_path / "kermany"
    make_kermany(kermany)
    rsna = make_rsna(tmp_path / "rsna")
    sets = [*tiny_overrides(SUITE, kermany), f"external_test.0.dataset.root={rsna}",
            f"external_test.1.dataset.root={rsna}"]
    outcome = run_suite(SUITE, sets, models=["lrnet"], results_root=tmp_path / "results", device="cpu")
    assert outcome.status == "complete", [(r.job_id, r.error) for r in outcome.records if r.status != "ok"]
    (rec,) = [r for r in outcome.store.records() if r.model == "lrnet"]
    strict, every = rec.external["rsna"], rec.external["rsna_all"]
    assert strict["n"] == N_STRICT and strict["dropped"]["excluded"] == len(CLASSES) - N_STRICT
    assert every["n"] == len(CLASSES) and every["dropped"]["excluded"] == 0
    for name, n_pos in (("rsna", N_OPACITY), ("rsna_all", N_OPACITY)):
        pred = pd.read_csv(outcome.store.dir / rec.external[name]["predictions_path"])
        assert (pred.y_true == 1).sum() == n_pos
        auc = roc_auc_score(pred.y_true, pred.prob_pneumonia)
        assert rec.external[name]["metrics"]["roc_auc"] == pytest.approx(auc)

    boards = build_boards(load_runs(tmp_path / "results"))
    md = render_text(boards, "markdown")
    header = next(ln for ln in md.splitlines() if ln.startswith("|"))
    assert {"roc_auc ext:rsna", "Δ rsna", "roc_auc ext:rsna_all", "Δ rsna_all"} <= {
        c.strip() for c in header.strip("|").split("|")}
