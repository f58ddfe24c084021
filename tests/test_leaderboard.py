"""The leaderboard is a pure function of results/: aggregation, ordering, merge rules, formats."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrbench.cli import main
from cxrbench.errors import ResultsError
from cxrbench.leaderboard.render import render_text
from cxrbench.leaderboard.table import build_boards, load_runs
from cxrbench.results.records import JobRecord, job_id
from cxrbench.results.store import RunStore


def fake_run(root: Path, run_id: str, results: dict[str, list[float]], protocol="p1", primary="accuracy",
             suite="s", synthetic=True, loss=None) -> RunStore:
    store = RunStore.create(root, suite, run_id)
    store.write_header({"run_id": run_id, "suite_name": suite, "protocol_sha256": protocol, "synthetic": synthetic,
                        "dataset": {"name": "synthetic_cxr"},
                        "suite": {"metrics": {"primary": primary, "report": ["accuracy", "loss"]},
                                  "dataset": {"name": "synthetic_cxr"}, "reference": None}})
    for model, values in results.items():
        for fold, v in enumerate(values):
            store.write_record(JobRecord(job_id=job_id(model, fold, 0), model=model, model_name=model, fold=fold,
                                         seed=0, metrics={"accuracy": v, "loss": 1 - v},
                                         ci={primary: [v - 0.05, v + 0.05]}, cost={"params": 1000, "macs": 2e6},
                                         model_config_sha256="c"))
    return store


def test_mean_std_and_order(tmp_path):
    fake_run(tmp_path, "r1", {"a": [0.8, 0.9, 0.7], "b": [0.95, 0.93, 0.97], "c": [0.5, 0.6, 0.55]})
    (board,) = build_boards(load_runs(tmp_path))
    assert list(board.rows.model) == ["b", "a", "c"]
    a = board.rows.set_index("model").loc["a"]
    assert a.accuracy_mean == pytest.approx(np.mean([0.8, 0.9, 0.7]))
    assert a.accuracy_std == pytest.approx(np.std([0.8, 0.9, 0.7], ddof=1))
    assert a.ci_low == pytest.approx(np.mean([0.75, 0.85, 0.65])) and a.n == 3


def test_lower_is_better_primary_sorts_ascending(tmp_path):
    fake_run(tmp_path, "r1", {"a": [0.8], "b": [0.9]}, primary="loss")
    (board,) = build_boards(load_runs(tmp_path))
    assert list(board.rows.model) == ["b", "a"]  # loss 0.1 < 0.2


def test_refuses_to_merge_different_protocols(tmp_path):
    fake_run(tmp_path, "r1", {"a": [0.8]}, protocol="p1")
    fake_run(tmp_path, "r2", {"a": [0.6]}, protocol="p2")
    with pytest.raises(ResultsError, match="different resolved suites"):
        build_boards(load_runs(tmp_path))
    (merged,) = build_boards(load_runs(tmp_path), merge=True)
    assert merged.rows.accuracy_mean[0] == pytest.approx(0.6)  # same job: the newer record wins
    (latest,) = build_boards(load_runs(tmp_path), latest=True)
    assert latest.runs == ["r2"]


def test_same_protocol_runs_merge_and_newest_job_wins(tmp_path):
    fake_run(tmp_path, "r1", {"a": [0.8, 0.7]})
    fake_run(tmp_path, "r2", {"a": [0.9]})  # re-ran fold 0 only
    (board,) = build_boards(load_runs(tmp_path))
    assert board.rows.accuracy_mean[0] == pytest.approx(np.mean([0.9, 0.7]))


def test_formats(tmp_path):
    fake_run(tmp_path, "r1", {"a": [0.8], "b": [0.9]})
    boards = build_boards(load_runs(tmp_path))
    data = json.loads(render_text(boards, "json"))
    assert data[0]["rows"][0]["model"] == "b" and data[0]["synthetic"] is True
    csv = pd.read_csv(io.StringIO(render_text(boards, "csv")))
    assert list(csv.model) == ["b", "a"] and csv.accuracy_mean.tolist() == [0.9, 0.8]
    md = render_text(boards, "markdown")
    assert "synthetic data, not clinical" in md and "| b " in md and "accuracy ↑" in md
    assert "<table" in render_text(boards, "html")
    assert "\\begin{tabular}" in render_text(boards, "latex")


def test_cli_leaderboard_filters_and_errors(tmp_path, capsys):
    fake_run(tmp_path, "r1", {"a": [0.8]}, suite="s1")
    fake_run(tmp_path, "r2", {"z": [0.7]}, suite="s2")
    assert main(["leaderboard", "--results", str(tmp_path), "--suite", "s2", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [b["suite"] for b in out] == ["s2"] and out[0]["rows"][0]["model"] == "z"
    assert main(["leaderboard", "--results", str(tmp_path), "--suite", "nope"]) == 2
    assert "no runs found" in capsys.readouterr().err
