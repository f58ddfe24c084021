"""External test sets: every trained model (and baseline) scored on other datasets through a label map."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from cxrbench.data.datasets.miniature import make_chestxray14
from cxrbench.data.external import load_external, relabel
from cxrbench.data.loading import load_dataset
from cxrbench.engine.runner import run_suite
from cxrbench.errors import DatasetError, SuiteError
from cxrbench.leaderboard.render import render_text
from cxrbench.leaderboard.table import build_boards, load_runs
from cxrbench.plugins import get_registry
from cxrbench.suite.loader import load_suite
from tests.conftest import write_suite

NIH_MAP = {"Pneumonia": "pneumonia", "Infiltration": "pneumonia", "No Finding": "normal", "Effusion": "normal",
           "Cardiomegaly": None}
SYNTH2 = {"name": "synth2", "dataset": {"name": "synthetic_cxr", "options": {"n_samples": 60, "seed": 3}},
          "classes": ["healthy", "sick"], "label_map": {"healthy": "normal", "sick": "pneumonia"}}

# Miniature ChestX-ray14 (miniature.CXR14_ROWS + the truncated 00000020_000, "No Finding") under NIH_MAP,
# worked out by hand: Cardiomegaly rows 001_000/001_001/001_002/016_000 are excluded, 012_000
# (Effusion|Infiltration) is ambiguous, Hernia/Mass|Nodule/Atelectasis/Pneumothorax|.../Edema/Fibrosis/
# Nodule rows match nothing, the truncated No Finding image is unreadable.
NIH_PNEUMONIA = {"00000003_001.png", "00000009_000.png", "00000019_000.png"}
NIH_NORMAL = {"00000002_000.png", "00000005_000.png", "00000006_000.png", "00000011_000.png", "00000013_000.png",
              "00000013_001.png", "00000014_000.png", "00000015_000.png", "00000018_000.png"}
NIH_DROPPED = {"excluded": 4, "unmatched": 7, "ambiguous": 1, "unreadable": 1}
MODELS = ("lenet", "lenet_pool")


def suite_dict(cxr14: Path, **changes) -> dict:
    return dict(
        models=["lenet", {"name": "lenet", "label": "lenet_pool", "params": {"head": "adaptive"}}],
        train={"epochs": 2}, metrics={"bootstrap": 20},
        external_test=[{"name": "nih", "dataset": {"name": "chestxray14", "root": str(cxr14)}, "split": "all",
                        "label_map": NIH_MAP}, SYNTH2],
        **changes)


@pytest.fixture(scope="module")
def cxr14(tmp_path_factory) -> Path:
    return make_chestxray14(tmp_path_factory.mktemp("cxr14") / "nih")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cxr14):
    """One run: two models on synthetic_cxr, scored on the miniature ChestX-ray14 and a second synthetic set."""
    os.environ["CXRBENCH_MLFLOW"] = "0"
    tmp = tmp_path_factory.mktemp("ext_run")
    suite = write_suite(tmp / "suite.yaml", **suite_dict(cxr14))
    outcome = run_suite(suite, results_root=tmp / "results", device="cpu")
    assert outcome.status == "complete", [r.error for r in outcome.records]
    return outcome


def _records(outcome):
    return {r.model: r for r in outcome.store.records()}


def test_every_model_and_baseline_is_scored_on_every_external_set_like_sklearn(finished):
    records = _records(finished)
    assert set(records) == {*MODELS, "baseline_majority", "baseline_stratified"}
    synth = load_dataset(get_registry().dataset("synthetic_cxr"), "binary", (), None, {"n_samples": 60, "seed": 3})
    synth_truth = dict(zip(synth.ids, synth.labels.tolist()))
    for model, rec in records.items():
        assert set(rec.external) == {"nih", "synth2"}, model
        for name, entry in rec.external.items():
            df = pd.read_csv(finished.store.dir / entry["predictions_path"])
            assert entry["predictions_path"] == f"external/{name}/{rec.job_id}.csv"
            assert len(df) == entry["n"] == (12 if name == "nih" else 60)
            assert accuracy_score(df.y_true, df.y_pred) == pytest.approx(entry["metrics"]["accuracy"], abs=1e-9)
            assert f1_score(df.y_true, df.y_pred, zero_division=0) == pytest.approx(entry["metrics"]["f1"], abs=1e-9)
            assert roc_auc_score(df.y_true, df.prob_pneumonia) == pytest.approx(entry["metrics"]["roc_auc"], abs=1e-6)
            assert set(entry["ci"]) == {"accuracy", "f1", "roc_auc"}  # bootstrap: 20
            if name == "nih":  # labels from the hand-worked map
                truth = {Path(i).name: y for i, y in zip(df.sample_id, df.y_true)}
                assert truth == {**dict.fromkeys(NIH_NORMAL, 0), **dict.fromkeys(NIH_PNEUMONIA, 1)}
            else:  # renamed classes: healthy -> normal (0), sick -> pneumonia (1)
                assert dict(zip(df.sample_id, df.y_true)) == synth_truth
    # the two trained models differ, so do their external predictions
    a, b = (pd.read_csv(finished.store.dir / records[m].external["nih"]["predictions_path"]) for m in MODELS)
    assert not np.allclose(a.prob_pneumonia, b.prob_pneumonia)
    # the majority baseline predicts the training split's majority class everywhere
    main = load_dataset(get_registry().dataset("synthetic_cxr"), "binary", (), None, {"n_samples": 120, "seed": 0})
    label_of = dict(zip(main.ids, main.labels.tolist()))
    splits = pd.read_csv(finished.store.dir / "splits.csv")
    train_majority = int(np.argmax(np.bincount([label_of[i] for i in splits.query("split == 'train'").sample_id])))
    maj = pd.read_csv(finished.store.dir / records["baseline_majority"].external["synth2"]["predictions_path"])
    assert set(maj.y_pred) == {train_majority}


def test_dropped_rows_match_the_hand_count(finished, cxr14):
    for rec in _records(finished).values():
        nih = rec.external["nih"]
        assert nih["dropped"] == NIH_DROPPED and nih["n_rows"] == 25 and nih["n"] == 12 and nih["rows"] == "all"
        assert rec.external["synth2"]["dropped"] == dict.fromkeys(NIH_DROPPED, 0)
    header = finished.store.read_header()["dataset"]["external_test"]
    assert [(h["name"], h["n"], h["dropped"]) for h in header] == [("nih", 12, NIH_DROPPED),
                                                                    ("synth2", 60, dict.fromkeys(NIH_DROPPED, 0))]
    # split: test keeps the official test rows only (8 in the miniature copy)
    suite = load_suite(write_suite(cxr14.parent / "test_split.yaml", **suite_dict(cxr14)))
    cfg = suite.external_test[0].model_copy(update={"split": "test"})
    ext = load_external(0, cfg, suite, get_registry())
    assert (ext.rows, ext.n_rows, len(ext)) == ("test", 8, 5)
    assert ext.dropped == {"excluded": 1, "unmatched": 2, "ambiguous": 0, "unreadable": 0}
    assert sorted(Path(i).name for i, y in zip(ext.ids, ext.labels) if y == 1) == ["00000003_001.png",
                                                                                    "00000019_000.png"]
    assert ext.images.shape == (5, 1, 32, 32)


def test_relabel_rules_single_label_and_multilabel():
    single = relabel(np.array([0, 1, 2, 1, 0]), ["a", "b", "c"], False, {"A": "normal", "b": "pneumonia", "c": None},
                     "binary", ["normal", "pneumonia"])
    assert single.keep.tolist() == [0, 1, 3, 4] and single.labels.tolist() == [0, 1, 1, 0]
    assert single.dropped["excluded"] == 1
    hot = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]])
    multi = relabel(hot, ["X", "Y", "Z"], True, {"X": "L1", "Y": "L2", "Z": None}, "multilabel", ["L1", "L2"])
    assert multi.keep.tolist() == [0, 2, 3] and multi.labels.tolist() == [[1, 0], [1, 1], [0, 0]]
    with pytest.raises(SuiteError, match=r"suite label\(s\) \['L2'\]"):
        relabel(hot, ["X", "Y", "Z"], True, {"X": "L1"}, "multilabel", ["L1", "L2"])


def test_unmapped_or_unknown_label_is_a_clear_error_before_training(tmp_path, cxr14):
    results = tmp_path / "results"
    unmapped = {**SYNTH2, "label_map": {"healthy": "normal"}}
    suite = write_suite(tmp_path / "a.yaml", external_test=[unmapped])
    with pytest.raises(SuiteError, match=r"external_test\[0\] 'synth2': label_map does not say what to do with "
                                         r"source class\(es\) \['sick'\]"):
        run_suite(suite, results_root=results, device="cpu")
    typo = {"name": "nih", "dataset": {"name": "chestxray14", "root": str(cxr14)},
            "label_map": {"Pnemonia": "pneumonia", "No Finding": "normal"}}
    suite = write_suite(tmp_path / "b.yaml", external_test=[SYNTH2, typo])
    with pytest.raises(SuiteError, match=r"external_test\[1\] 'nih': label_map names source class\(es\) "
                                         r"\['Pnemonia'\]"):
        run_suite(suite, results_root=results, device="cpu")
    missing = {**typo, "dataset": {"name": "chestxray14", "root": str(tmp_path / "nowhere")}}
    suite = write_suite(tmp_path / "c.yaml", external_test=[missing])
    with pytest.raises(DatasetError, match=r"(?s)external_test\[0\] 'nih': dataset 'chestxray14': .*does not exist.*"
                                        r"--set external_test\.0\.dataset\.root=PATH"):
        run_suite(suite, results_root=results, device="cpu")
    assert not results.exists()  # nothing trained, no run folder
    with pytest.raises(SuiteError, match="external_test names must be unique"):
        load_suite(write_suite(tmp_path / "d.yaml", external_test=[SYNTH2, SYNTH2]))


def _markdown_rows(text: str) -> dict[str, dict[str, str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]
    return {r["model"]: r for r in rows}


def test_leaderboard_shows_external_columns_and_the_drop(finished):
    root = finished.store.dir.parent.parent
    boards = build_boards(load_runs(root))
    records = _records(finished)
    md = render_text(boards, "markdown")
    rows = _markdown_rows(md)
    assert "external minus internal" in md
    for model in (*MODELS, "baseline_majority"):
        rec = records[model]
        for name in ("nih", "synth2"):
            ext = rec.external[name]["metrics"]["accuracy"]
            assert float(rows[model][f"accuracy ext:{name}"]) == round(ext, 4)  # markdown: numbers re-parsed
            assert float(rows[model][f"Δ {name}"]) == round(ext - rec.metrics["accuracy"], 4)
    data = json.loads(render_text(boards, "json"))[0]
    assert data["external"] == ["nih", "synth2"]
    by_model = {r["model"]: r for r in data["rows"]}
    for model in MODELS:
        rec = records[model]
        for name in ("nih", "synth2"):
            for metric in ("accuracy", "f1", "roc_auc"):
                value = rec.external[name]["metrics"][metric]
                assert by_model[model][f"ext:{name}:{metric}_mean"] == pytest.approx(value)
                assert by_model[model][f"delta:{name}:{metric}"] == pytest.approx(value - rec.metrics[metric])
    csv = pd.read_csv(pd.io.common.StringIO(render_text(boards, "csv")))
    assert {"ext:nih:roc_auc_mean", "ext:synth2:f1_ci_low", "delta:synth2:accuracy", "ext:nih:n"} <= set(csv.columns)
    assert not math.isnan(csv.set_index("model").loc["lenet", "ext:nih:roc_auc_mean"])


@pytest.mark.slow
@pytest.mark.ray
def test_ray_run_ships_external_sets_and_matches_local(tmp_path, cxr14):
    ray = pytest.importorskip("ray")
    from cxrbench.engine.executors.ray import _ray_temp_dir

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=_ray_temp_dir(), log_to_driver=False)
    try:
        suite = write_suite(tmp_path / "s.yaml", **suite_dict(cxr14))
        local = run_suite(suite, results_root=tmp_path / "r", device="cpu")
        remote = run_suite(suite, results_root=tmp_path / "r", device="cpu", executor="ray")
    finally:
        ray.shutdown()
    a, b = ({r.job_id: r for r in o.store.records() if r.kind == "model"} for o in (local, remote))
    assert set(a) == set(b) and a
    for job in a:
        for name in ("nih", "synth2"):
            x, y = a[job].external[name], b[job].external[name]
            assert x["metrics"] == y["metrics"] and x["dropped"] == y["dropped"]
            assert (local.store.dir / x["predictions_path"]).read_bytes() == \
                (remote.store.dir / y["predictions_path"]).read_bytes()


def test_external_ci_is_the_bootstrap_of_the_stored_predictions(finished):
    """The board's external CI is recomputed from the jobs' external CSVs, not averaged from records."""
    from cxrbench.metrics.aggregate import FoldPredictions, aggregate_replicates
    from cxrbench.results.view import RunView

    root = finished.store.dir.parent.parent
    board = build_boards(load_runs(root))[0]
    view = RunView(finished.store)
    registry = get_registry()
    cfg = view.header["suite"]["metrics"]
    for model in MODELS:
        recs = [r for r in view.records if r.model == model and r.status == "ok"]
        row = board.rows.set_index("model").loc[model]
        for name in ("nih", "synth2"):
            tables = []
            for rec in recs:
                stored = view.predictions(rec, name)
                tables.append(FoldPredictions(stored.pred, stored.sample_ids, stored.patient_ids, rec.fold, rec.seed))
            ref = aggregate_replicates(tables, registry.metric("accuracy").fn, cfg["bootstrap"], cfg["confidence"])
            assert (row[f"ext:{name}:accuracy_ci_low"], row[f"ext:{name}:accuracy_ci_high"]) == \
                pytest.approx((ref.low, ref.high))
            assert ref.low <= row[f"ext:{name}:accuracy_mean"] <= ref.high


def test_without_label_map_the_vocabulary_names_match(tmp_path):
    """No label_map: classes of the same (vocabulary) name map to each other; a source class the suite
    lacks is an error for a single-label suite, and left out for a multilabel one."""
    from types import SimpleNamespace

    from cxrbench.data.external import identity_map

    multi = SimpleNamespace(task=SimpleNamespace(classes=["Effusion", "Pleural_Thickening"]))
    table = SimpleNamespace(class_names=["Pleural Effusion", "pleural thickening", "Hernia"])
    assert identity_map(table, "multilabel", multi) == {"Pleural Effusion": "Effusion",
                                                        "pleural thickening": "Pleural_Thickening"}
    binary = SimpleNamespace(task=SimpleNamespace(classes=["normal", "pneumonia"]))
    assert identity_map(SimpleNamespace(class_names=["NORMAL", "Pneumonia"]), "binary", binary) == {
        "NORMAL": "normal", "Pneumonia": "pneumonia"}
    with pytest.raises(SuiteError, match="source class 'covid' is not one of the suite's classes"):
        identity_map(SimpleNamespace(class_names=["normal", "covid"]), "multiclass", binary)
