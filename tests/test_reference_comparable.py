"""The paper's figures beside ours measured at another input size / channels / classes are marked
not comparable (n/c), never diffed, in every leaderboard format that shows them and in the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from cxrbench.leaderboard.render import comparison_frame, render_terminal, render_text
from cxrbench.leaderboard.table import build_boards, load_runs
from cxrbench.results.records import JobRecord, job_id
from cxrbench.results.store import RunStore
from cxrbench.suite.loader import load_suite, reference_mismatch, resolved_dict

REFERENCE = {"source": "Hu et al. 2020 at 448 px", "models": {"lenet": {"accuracy": 0.9, "macs": 5_000_000}}}


@pytest.fixture
def paper_suite(suite_file) -> Path:
    return suite_file(input={"image_size": 448, "channels": 1, "normalization": "dataset"}, reference=REFERENCE)


def test_the_reference_setting_is_the_suite_as_written(paper_suite):
    plain = load_suite(paper_suite).reference
    assert (plain.image_size, plain.channels, plain.num_classes) == (448, 1, 2)
    small = load_suite(paper_suite, ["input.image_size=32", "input.channels=3"])
    assert small.input.image_size == 32
    assert (small.reference.image_size, small.reference.channels, small.reference.num_classes) == (448, 1, 2)


def test_mismatch_wording():
    suite = {"input": {"image_size": 32, "channels": 3}, "task": {"classes": ["a", "b"]}}
    assert reference_mismatch({"image_size": 448, "channels": 3, "num_classes": 2}, suite) == \
        "ours at 32 px, paper 448 px"
    assert reference_mismatch({"image_size": 32, "channels": 1, "num_classes": 14}, suite) == \
        "ours 3 channel(s), paper 1 channel(s); ours 2 classes, paper 14 classes"
    assert reference_mismatch({"image_size": None}, suite) == ""  # an old run: nothing recorded, nothing claimed
    assert reference_mismatch(None, suite) == ""


def _run(root: Path, suite_path: Path, overrides: list[str]) -> RunStore:
    suite = load_suite(suite_path, overrides)
    store = RunStore.create(root, suite.name, "r1")
    store.write_header({"run_id": "r1", "suite_name": suite.name, "protocol_sha256": "p", "synthetic": False,
                        "suite_path": str(suite_path), "overrides": overrides, "dataset": {"name": "synthetic_cxr"},
                        "suite": resolved_dict(suite)})
    store.write_record(JobRecord(job_id=job_id("lenet", 0, 0), model="lenet", model_name="lenet", fold=0, seed=0,
                                 metrics={"accuracy": 0.7, "f1": 0.6, "roc_auc": 0.8}, ci={"accuracy": [0.6, 0.8]},
                                 cost={"params": 1000, "macs": 3_000_000}, model_config_sha256="c"))
    return store


def test_ours_at_another_size_is_not_diffed(paper_suite, tmp_path):
    _run(tmp_path, paper_suite, ["input.image_size=32"])
    (board,) = build_boards(load_runs(tmp_path), significance=False)
    comp = board.comparison().set_index(["model", "metric"])
    for metric, ours in (("accuracy", 0.7), ("macs", 3_000_000)):
        row = comp.loc[("lenet", metric)]
        assert row.ours == pytest.approx(ours) and math.isnan(row["diff"]) and not row.ci_excludes_paper
        assert row.not_comparable == "ours at 32 px, paper 448 px"
    shown = comparison_frame(board).set_index("metric")
    assert list(shown["diff"]) == ["n/c (ours at 32 px, paper 448 px)"] * 2
    assert shown.loc["macs", "ours"] == "3,000,000" and shown.loc["macs", "paper"] == "5,000,000"
    for fmt in ("markdown", "html"):
        text = render_text([board], fmt)
        assert text.count("n/c (ours at 32 px, paper 448 px)") == 2, fmt
        assert "not comparable, n/c: ours at 32 px, paper 448 px" in text
        assert "-2,000,000" not in text and "-0.2000" not in text
    (data,) = json.loads(render_text([board], "json"))
    assert data["reference_mismatch"] == "ours at 32 px, paper 448 px"
    assert [c["not_comparable"] for c in data["comparison"]] == ["ours at 32 px, paper 448 px"] * 2
    assert [c["diff"] for c in data["comparison"]] == [None, None]
    from rich.console import Console

    console = Console(record=True, width=250)
    render_terminal([board], console)
    assert console.export_text().count("n/c (ours at 32 px, paper 448 px)") == 2


def test_same_setting_is_still_diffed(paper_suite, tmp_path):
    _run(tmp_path, paper_suite, ["train.epochs=1"])
    (board,) = build_boards(load_runs(tmp_path), significance=False)
    shown = comparison_frame(board).set_index("metric")
    assert shown.loc["accuracy", "diff"] == "-0.2000" and shown.loc["macs", "diff"] == "-2,000,000"
    assert board.reference_mismatch == ""


def test_report_marks_the_comparison(paper_suite, tmp_path):
    from cxrbench.report import build_report

    store = _run(tmp_path, paper_suite, ["input.image_size=32"])
    page = build_report(store.dir, gradcam=False, device="cpu").read_text()
    section = page[page.index('id="paper-comparison"'):]
    section = section[:section.index("</section>")]
    assert section.count("n/c (ours at 32 px, paper 448 px)") == 2
    assert "not comparable\n(n/c): ours at 32 px, paper 448 px" in section
