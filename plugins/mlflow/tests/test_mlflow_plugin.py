"""The MLflow plugin, end to end: a tiny suite run lands in a sqlite tracking store as one parent
run with a child run per job, with the job's params, epoch curves, test metrics and artifacts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cxrbench.engine.runner import run_suite
from cxrbench.plugins import Registry, load_plugin_manager, reset_registry
from cxrbench.results.records import JobRecord, RunInfo
from cxrbench.testing import failing_model_plugin

mlflow = pytest.importorskip("mlflow", reason="install the plugin: pip install -e plugins/mlflow")

from cxrbench_mlflow.config import artifact_location, sqlite_path, tracking_uri  # noqa: E402
from cxrbench_mlflow.convert import MAX_PARAM_VALUE, flatten, record_metrics  # noqa: E402
from cxrbench_mlflow.tracker import MlflowTracker  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
LIFECYCLE_HOOKS = ["on_epoch_end", "on_model_result", "on_run_end", "on_run_start"]


def write_suite(path: Path, name: str, models: list, epochs: int = 2) -> Path:
    suite = {
        "name": name,
        "task": {"type": "binary", "classes": ["normal", "pneumonia"]},
        "dataset": {"name": "synthetic_cxr", "options": {"n_samples": 80, "seed": 0}},
        "split": {"strategy": "ratio", "seed": 0},
        "input": {"image_size": 32, "channels": 1, "normalization": "dataset"},
        "models": models,
        "train": {"epochs": epochs, "batch_size": 16, "save_checkpoints": False,
                  "optimizer": {"name": "adam", "lr": 0.002}},
        "metrics": {"primary": "accuracy", "report": ["accuracy", "f1", "roc_auc"], "bootstrap": 20},
    }
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module (creating its tables takes seconds)."""
    db = tmp_path_factory.mktemp("mlflow") / "tracking.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
        mp.delenv("CXRBENCH_MLFLOW", raising=False)
        yield db


def client_for(db: Path):
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")


def runs_of(client, suite: str, run_id: str) -> tuple:
    exp = client.get_experiment_by_name(suite)
    assert exp is not None, f"no MLflow experiment {suite!r}"
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`cxrbench.run_id` = '{run_id}'")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    return exp, parents, children


def test_suite_run_is_tracked_as_parent_and_job_runs(store, tmp_path):
    suite = write_suite(tmp_path / "suite.yaml", "mlflow_tiny",
                        ["lenet", {"name": "lenet", "label": "lenet2"}])
    outcome = run_suite(suite, results_root=tmp_path / "results", device="cpu")
    assert outcome.status == "complete"
    records = {r.job_id: r for r in outcome.records}
    client = client_for(store)
    exp, parents, children = runs_of(client, "mlflow_tiny", outcome.store.run_id)

    assert exp.artifact_location == (store.parent / "mlartifacts" / "mlflow_tiny").as_uri()
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["status"] == "complete"
    assert parent.data.params["suite.name"] == "mlflow_tiny"
    assert parent.data.params["synthetic"] == "true"
    assert sorted(children) == ["lenet2__fold0__seed0", "lenet__fold0__seed0"]
    majority = next(r for r in outcome.store.records() if r.model == "baseline_majority")
    assert parent.data.metrics["baseline_majority.test_accuracy"] == pytest.approx(majority.metrics["accuracy"])
    assert "run.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}

    for job, child in children.items():
        rec = records[job]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED" and child.data.tags["status"] == "ok"
        params = child.data.params
        assert params["name"] == "lenet" and params["model"] == rec.model
        assert params["train.optimizer.lr"] == "0.002" and params["train.epochs"] == "2"
        assert (params["fold"], params["seed"], params["dataset"]) == ("0", "0", "synthetic_cxr")
        history = client.get_metric_history(child.info.run_id, "val_loss")
        history = sorted(history, key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == pytest.approx(rec.curves["val_loss"])
        assert [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")] == [1, 2]
        metrics = child.data.metrics
        assert metrics["test_accuracy"] == pytest.approx(rec.metrics["accuracy"])
        assert metrics["test_roc_auc_ci_low"] == pytest.approx(rec.ci["roc_auc"][0])
        assert metrics["cost_params"] == rec.cost["params"] and metrics["cost_macs"] == rec.cost["macs"]

        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {f"{job}.csv", f"{job}.json", "confusion_matrix.json", "confusion_matrix.png",
                "curves.json"} <= artifacts
        got = Path(client.download_artifacts(child.info.run_id, f"{job}.csv", str(tmp_path)))
        pd.testing.assert_frame_equal(pd.read_csv(got), pd.read_csv(outcome.store.dir / rec.predictions_path))
        got = Path(client.download_artifacts(child.info.run_id, "confusion_matrix.json", str(tmp_path)))
        assert json.loads(got.read_text())["matrix"] == rec.confusion_matrix


def test_failed_job_is_a_failed_child_run_with_its_error(store, tmp_path):
    pm, infos = load_plugin_manager(extra_plugins=(failing_model_plugin(),))
    assert pm.has_plugin("mlflow"), "the MLflow plugin is loaded from its entry point"
    suite = write_suite(tmp_path / "suite.yaml", "mlflow_fail", ["exploding_net"], epochs=1)
    outcome = run_suite(suite, results_root=tmp_path / "results", device="cpu", registry=Registry(pm, infos))
    assert outcome.status == "failed"
    _, parents, children = runs_of(client_for(store), "mlflow_fail", outcome.store.run_id)
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    assert parents[0].data.tags["status"] == "failed"
    child = children["exploding_net__fold0__seed0"]
    assert child.info.status == "FAILED" and child.data.tags["status"] == "failed"
    assert "RuntimeError: this model always fails to build" in child.data.tags["error"]
    assert child.data.params["name"] == "exploding_net"
    assert not any(k.startswith("test_") for k in child.data.metrics)


def test_default_tracking_uri_is_sqlite_next_to_results(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "results" / "quickstart" / "20260101-000000-abcdef12"
    uri = tracking_uri(run_dir)
    assert uri == f"sqlite:///{tmp_path.resolve()}/results/mlflow.db"
    assert sqlite_path(uri) == tmp_path.resolve() / "results" / "mlflow.db"
    assert artifact_location(uri, "quickstart") == (tmp_path.resolve() / "results" / "mlartifacts" / "quickstart").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking_uri(run_dir) == "http://mlflow.example:5000"
    assert artifact_location("http://mlflow.example:5000", "quickstart") is None


def test_unusable_store_warns_and_never_raises(monkeypatch, tmp_path, caplog):
    """A store that cannot be opened costs one warning; every hook still returns normally."""
    monkeypatch.delenv("CXRBENCH_MLFLOW", raising=False)
    warnings = drive_hooks_against_unusable_store(monkeypatch, tmp_path, caplog)
    assert len(warnings) == 1 and "tracking is off for run r1" in warnings[0].getMessage()


def test_cxrbench_mlflow_0_switches_tracking_off(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("CXRBENCH_MLFLOW", "0")
    assert drive_hooks_against_unusable_store(monkeypatch, tmp_path, caplog) == []


def drive_hooks_against_unusable_store(monkeypatch, tmp_path, caplog) -> list:
    """Call every hook with a store under a path that is a file; return the warnings logged."""
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the database folder should be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    run = RunInfo("r1", tmp_path / "results" / "s" / "r1", "s", {"name": "s"}, ["m__fold0__seed0"])
    tracker = MlflowTracker()
    with caplog.at_level(logging.WARNING, logger="cxrbench_mlflow"):
        tracker.run_start(run)
        tracker.epoch_end(run, "m__fold0__seed0", 1, {"train_loss": 0.5})
        tracker.model_result(run, JobRecord("m__fold0__seed0", "m", "m", 0, 0))
        tracker.run_end(run, [], "complete")
    return [r for r in caplog.records if r.levelno == logging.WARNING]


def test_params_are_flat_strings_and_metrics_skip_nan():
    params = flatten({"name": "x", "params": {}, "train": {"optimizer": {"lr": 0.001}, "flag": True},
                      "dropout": None, "long": "a" * 7000, "sizes": [1, 2]})
    assert params == {"name": "x", "params": "{}", "train.optimizer.lr": "0.001", "train.flag": "true",
                      "dropout": "null", "long": "a" * (MAX_PARAM_VALUE - 3) + "...", "sizes": "[1, 2]"}
    rec = JobRecord("j", "m", "m", 0, 0, metrics={"accuracy": 0.75, "roc_auc": float("nan")},
                    ci={"accuracy": [0.5, 1.0]}, cost={"params": 10, "macs": 20, "counter": "ptflops"},
                    best_epoch=None, epochs_run=3)
    got = record_metrics(rec)
    assert "test_roc_auc" not in got and "best_epoch" not in got and "cost_counter" not in got
    assert {k: got[k] for k in ("test_accuracy", "test_accuracy_ci_low", "test_accuracy_ci_high",
                                "cost_params", "cost_macs", "epochs_run")} == \
        {"test_accuracy": 0.75, "test_accuracy_ci_low": 0.5, "test_accuracy_ci_high": 1.0,
         "cost_params": 10.0, "cost_macs": 20.0, "epochs_run": 3.0}


def test_cxrbench_plugins_lists_only_lifecycle_hooks(capsys):
    from cxrbench.cli import main

    reset_registry()
    try:
        assert main(["plugins", "--json"]) == 0
    finally:
        reset_registry()
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mlflow"]["error"] is None
    assert rows["mlflow"]["distribution"] == "cxrbench-mlflow"
    assert rows["mlflow"]["hooks"] == LIFECYCLE_HOOKS
