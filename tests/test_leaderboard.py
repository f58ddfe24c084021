"""The leaderboard is a pure function of results/: aggregation, ordering, merge rules, formats."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrbench import hookimpl
from cxrbench.cli import main
from cxrbench.errors import ResultsError
from cxrbench.leaderboard.render import render_text
from cxrbench.leaderboard.table import build_boards, load_runs
from cxrbench.plugins import Registry
from cxrbench.plugins import load_plugin_manager as real_plugin_manager
from cxrbench.results.records import JobRecord, job_id
from cxrbench.results.store import RunStore
from cxrbench.results.view import RunView
from cxrbench.specs import MetricSpec


def fake_run(root: Path, run_id: str, results: dict[str, list[float]], protocol="p1", primary="accuracy",
             suite="s", synthetic=True, loss=None) -> RunStore:
    store = RunStore.create(root, suite, run_id)
    store.write_header({"run_id": run_id, "suite_name": suite, "protocol_sha256": protocol, "synthetic": synthetic,
                        "suite_path": "suites/x.yaml", "overrides": ["train.epochs=1", "dataset={name: y}"],
                        "suite_sha256": "abcdef0123456789",
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
    assert a.n == 3
    # three jobs without predictions CSVs: no CI (the old mean of the three CI bounds is gone)
    assert np.isnan(a.ci_low) and np.isnan(a.ci_high) and a.ci_method == "no CI"


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
    assert "Research benchmark, not clinical validation." in md
    assert boards[0].rows.reproduce[0] == ("cxrbench run suites/x.yaml --set train.epochs=1 "
                                          "--set 'dataset={name: y}' --models b  # protocol sha256 p1")


def test_cli_leaderboard_filters_and_errors(tmp_path, capsys):
    fake_run(tmp_path, "r1", {"a": [0.8]}, suite="s1")
    fake_run(tmp_path, "r2", {"z": [0.7]}, suite="s2")
    assert main(["leaderboard", "--results", str(tmp_path), "--suite", "s2", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [b["suite"] for b in out] == ["s2"] and out[0]["rows"][0]["model"] == "z"
    assert main(["leaderboard", "--results", str(tmp_path), "--suite", "nope"]) == 2
    assert "no runs found" in capsys.readouterr().err


def test_paper_comparison_flags_figures_outside_our_ci(tmp_path):
    store = fake_run(tmp_path, "r1", {"a": [0.8], "b": [0.6]})
    header = store.read_header()
    header["suite"]["reference"] = {"source": "paper X", "models": {"a": {"accuracy": 0.9, "params": 1000},
                                                                   "b": {"accuracy": 0.62}, "c": {"accuracy": 0.5}}}
    store.write_header(header)
    (board,) = build_boards(load_runs(tmp_path))
    comp = board.comparison().set_index(["model", "metric"])
    assert comp.loc[("a", "accuracy"), "diff"] == pytest.approx(-0.1)
    assert comp.loc[("a", "accuracy"), "ci_excludes_paper"]  # CI [0.75, 0.85] excludes 0.9
    assert not comp.loc[("b", "accuracy"), "ci_excludes_paper"]  # CI [0.55, 0.65] holds 0.62
    assert comp.loc[("a", "params"), "diff"] == 0
    assert "c" not in comp.index.get_level_values("model")  # in the paper, not run here: no row
    md = render_text([board], "markdown")
    assert "vs the paper: paper X" in md and "| c " not in md


def _pred_csv(path: Path, ids, y_true, y_pred):
    prob = np.eye(2)[y_pred] * 0.8 + 0.1
    pd.DataFrame({"sample_id": ids, "patient_id": "", "y_true": y_true, "y_pred": y_pred,
                  "prob_normal": prob[:, 0], "prob_pneumonia": prob[:, 1]}).to_csv(path, index=False)


def _three_models_run(root: Path) -> RunStore:
    """good (95% right), same (identical predictions) and coin (random) on the same 200 images."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    ids = [f"s{i}" for i in range(200)]
    good = np.where(rng.random(200) < 0.95, y, 1 - y)
    coin = rng.integers(0, 2, 200)
    store = RunStore.create(root, "s", "r1")
    store.write_header({"run_id": "r1", "suite_name": "s", "protocol_sha256": "p", "dataset": {"name": "d"},
                        "suite": {"metrics": {"primary": "accuracy", "report": ["accuracy"], "bootstrap": 400},
                                  "task": {"type": "binary", "classes": ["normal", "pneumonia"]},
                                  "dataset": {"name": "d"}, "reference": None}})
    order = np.random.default_rng(1).permutation(200)
    for name, pred in (("good", good), ("coin", coin), ("same", good)):
        if name == "coin":  # rows in another order are re-aligned by sample id
            _pred_csv(store.dir / f"{name}.csv", [ids[i] for i in order], y[order], pred[order])
        else:
            _pred_csv(store.dir / f"{name}.csv", ids, y, pred)
        store.write_record(JobRecord(job_id=job_id(name, 0, 0), model=name, model_name=name, fold=0, seed=0,
                                     metrics={"accuracy": float(np.mean(pred == y))}, predictions_path=f"{name}.csv",
                                     model_config_sha256="c"))
    return store


def test_groups_are_compare_models_letters_holm_and_p_vs_top_is_an_option(tmp_path):
    from cxrbench.metrics.aggregate import FoldPredictions
    from cxrbench.metrics.compare import compare_models
    from cxrbench.plugins import get_registry
    from cxrbench.results.predictions import read_predictions

    store = _three_models_run(tmp_path)
    (board,) = build_boards(load_runs(tmp_path))
    rows = board.rows.set_index("model")
    assert rows.loc["good", "group"] == rows.loc["same", "group"] == "a" and rows.loc["coin", "group"] == "b"
    assert rows.p_vs_top.isna().all() and board.family.adjust == "holm"
    tables = {m: [FoldPredictions(*(lambda s: (s.pred, s.sample_ids, s.patient_ids))(
        read_predictions(store.dir / f"{m}.csv", ["normal", "pneumonia"], "binary")))] for m in ("good", "coin", "same")}
    ref = compare_models(tables, get_registry().metric("accuracy").fn, n_resamples=400)
    assert board.family.letters == ref.letters
    assert [(p.a, p.b, p.p_adjusted) for p in board.family.pairs] == [(p.a, p.b, p.p_adjusted) for p in ref.pairs]
    md = render_text([board], "markdown")
    assert "| group" in md and "Holm" in md and "p vs #1" not in md
    data = json.loads(render_text([board], "json"))[0]
    assert {r["model"]: r["group"] for r in data["rows"]} == {"good": "a", "same": "a", "coin": "b"}
    assert data["comparisons"]["adjust"] == "holm"
    (bh,) = build_boards(load_runs(tmp_path), adjust="bh", p_vs_top=True)
    p = bh.rows.set_index("model").p_vs_top
    assert bh.family.adjust == "bh" and np.isnan(p.iloc[0]) and p["coin"] <= 0.005 and p.iloc[1:].notna().all()
    assert p.loc[[m for m in ("good", "same") if m != bh.rows.model[0]][0]] == 1.0  # identical predictions
    assert "p vs #1" in render_text([bh], "markdown")


class _MissRatePlugin:
    """A third-party metric where lower is better, under a name the core knows nothing about."""

    @hookimpl
    def register_metrics(self):
        miss = lambda p: float(np.mean(np.asarray(p.y_pred) != np.asarray(p.y_true)))  # noqa: E731
        return [MetricSpec("miss_rate", miss, higher_is_better=False)]


@pytest.fixture
def miss_rate_registry(monkeypatch, fresh_registry):
    """The process-wide registry, built with :class:`_MissRatePlugin` as an extra plugin."""
    import cxrbench.plugins as plugins

    real = plugins.load_plugin_manager
    monkeypatch.setattr(plugins, "load_plugin_manager",
                        lambda extra_plugins=(): real((*extra_plugins, _MissRatePlugin())))
    plugins.reset_registry()
    return plugins.get_registry()


def test_plugin_metric_declared_lower_is_better_ranks_ascending_with_down_arrow(tmp_path, miss_rate_registry):
    assert miss_rate_registry.metric("miss_rate").higher_is_better is False
    store = RunStore.create(tmp_path, "s", "r1")
    store.write_header({"run_id": "r1", "suite_name": "s", "protocol_sha256": "p", "dataset": {"name": "d"},
                        "suite": {"metrics": {"primary": "miss_rate", "report": ["miss_rate", "accuracy"]},
                                  "dataset": {"name": "d"}, "reference": None}})
    for model, miss in (("a", 0.30), ("b", 0.10), ("c", 0.20)):
        store.write_record(JobRecord(job_id=job_id(model, 0, 0), model=model, model_name=model, fold=0, seed=0,
                                     metrics={"miss_rate": miss, "accuracy": 1 - miss}, model_config_sha256="c"))
    (board,) = build_boards(load_runs(tmp_path))
    assert list(board.rows.model) == ["b", "c", "a"]  # the smallest miss rate first
    assert board.higher_is_better is False
    md = render_text([board], "markdown")
    assert "miss_rate ↓" in md and "accuracy ↑" in md and "miss_rate ↑" not in md
    # an explicit registry is what decides: without the plugin the metric is unknown (higher counts as better)
    (plain,) = build_boards(load_runs(tmp_path), registry=Registry(*real_plugin_manager()))
    assert list(plain.rows.model) == ["a", "c", "b"]


def _fold_run(root: Path, recalls_by_fold: list[float], per_fold: int = 20, reference=None) -> RunStore:
    """One model, 5 folds (disjoint test rows, 2 images per patient), fold k's recall = recalls_by_fold[k]."""
    store = RunStore.create(root, "s", "r1")
    store.write_header({"run_id": "r1", "suite_name": "s", "protocol_sha256": "p", "synthetic": False,
                        "dataset": {"name": "d"},
                        "suite": {"metrics": {"primary": "recall", "report": ["recall"], "bootstrap": 500},
                                  "task": {"type": "binary", "classes": ["normal", "pneumonia"]},
                                  "dataset": {"name": "d"}, "reference": reference}})
    (store.dir / "predictions").mkdir(exist_ok=True)
    for fold, recall in enumerate(recalls_by_fold):
        ids = [f"f{fold}i{i}" for i in range(per_fold)]
        y = np.array([1] * (per_fold // 2) + [0] * (per_fold // 2))
        n_hit = int(round(recall * (per_fold // 2)))
        pred = np.where(y == 1, (np.arange(per_fold) < n_hit).astype(int), 0)
        prob = np.eye(2)[pred] * 0.8 + 0.1
        rel = f"predictions/m__fold{fold}.csv"
        pd.DataFrame({"sample_id": ids, "patient_id": [f"f{fold}p{i // 2}" for i in range(per_fold)],
                      "y_true": y, "y_pred": pred, "prob_normal": prob[:, 0], "prob_pneumonia": prob[:, 1]}
                     ).to_csv(store.dir / rel, index=False)
        store.write_record(JobRecord(job_id=job_id("m", fold, 0), model="m", model_name="m", fold=fold, seed=0,
                                     metrics={"recall": recall}, ci={"recall": [0.2, 0.2]},
                                     predictions_path=rel, model_config_sha256="c"))
    return store


def test_folds_ci_is_aggregate_of_pooled_out_of_fold_predictions(tmp_path):
    from cxrbench.metrics.aggregate import FoldPredictions, aggregate
    from cxrbench.plugins import get_registry
    from cxrbench.results.predictions import read_predictions

    store = _fold_run(tmp_path, [0.0, 0.2, 0.6, 0.8, 1.0],
                      reference={"source": "paper", "models": {"m": {"recall": 0.2}}})
    (board,) = build_boards(load_runs(tmp_path))
    row = board.rows.iloc[0]
    tables = [FoldPredictions(*(lambda s: (s.pred, s.sample_ids, s.patient_ids))(
        read_predictions(store.dir / f"predictions/m__fold{k}.csv", ["normal", "pneumonia"], "binary")), fold=k)
        for k in range(5)]
    ref = aggregate(tables, get_registry().metric("recall").fn, n_resamples=500, confidence=0.95, seed=0)
    assert (row.ci_low, row.ci_high) == (ref.low, ref.high)
    assert row.ci_low < 0.52 < row.ci_high and row.ci_high - row.ci_low > 0.1  # not the degenerate [0.2, 0.2]
    assert row.recall_point == pytest.approx(0.52)  # 26 of 50 positives, pooled
    assert row.ci_unit == "patient" and row.ci_n_units == 50
    comp = board.comparison().set_index(["model", "metric"])
    assert comp.loc[("m", "recall"), "ci_excludes_paper"]  # the record CIs [0.2, 0.2] would have held 0.2
    assert comp.loc[("m", "recall"), "ci_low"] == ref.low
    assert "pooled out-of-fold predictions of 5 folds" in ref.method and ref.method == board.ci_note()
    md = render_text([board], "markdown")
    data = json.loads(render_text([board], "json"))[0]
    assert ref.method in md and data["ci_method"] == ref.method and data["rows"][0]["ci_unit"] == "patient"
    from rich.console import Console

    from cxrbench.leaderboard.render import render_terminal

    console = Console(file=io.StringIO(), width=400)
    render_terminal([board], console)
    assert ref.method in console.file.getvalue()


def test_cli_significance_flags_reach_the_board(tmp_path, capsys):
    _three_models_run(tmp_path)
    assert main(["leaderboard", "--results", str(tmp_path), "--format", "json", "--adjust", "bh", "--p-vs-top"]) == 0
    data = json.loads(capsys.readouterr().out)[0]
    assert data["comparisons"]["adjust"] == "bh" and "Benjamini-Hochberg" in data["comparisons"]["method"]
    assert all(("p_vs_top" in r) for r in data["rows"]) and data["rows"][-1]["p_vs_top"] <= 0.005
    assert main(["leaderboard", "--results", str(tmp_path), "--format", "json", "--no-significance"]) == 0
    data = json.loads(capsys.readouterr().out)[0]
    assert data["comparisons"] is None and {r["group"] for r in data["rows"]} == {""}
    assert main(["leaderboard", "--results", str(tmp_path), "--alpha", "1.5"]) == 2
    assert "--alpha" in capsys.readouterr().err


def test_family_resamples_let_holm_reject_the_strictest_pair():
    from cxrbench.leaderboard.intervals import MAX_FAMILY_RESAMPLES, family_resamples

    for k in (2, 3, 10, 20):
        m = k * (k - 1) // 2
        b = family_resamples(1000, k, 0.05, "holm")
        assert b >= 1000 and (2 / (b + 1) <= 0.05 / m or b == MAX_FAMILY_RESAMPLES)
    assert family_resamples(1000, 10, 0.05, "holm") == 3600  # 45 pairs: 2 * ceil(2 * 45 / 0.05)
    assert family_resamples(1000, 10, 0.05, "none") == 1000
    assert family_resamples(1000, 100, 0.05, "bh") == MAX_FAMILY_RESAMPLES
