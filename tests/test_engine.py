"""The engine end to end on tiny suites: determinism, records, failures, resume, lifecycle hooks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import accuracy_score, roc_auc_score

from cxrbench.results.predictions import read_predictions
from cxrbench.engine.runner import run_suite
from cxrbench.hookspecs import hookimpl
from cxrbench.plugins import Registry, load_plugin_manager
from cxrbench.results.store import RunStore
from cxrbench.specs import DatasetSpec, MetricSpec, ModelSpec, SampleTable


class Recorder:
    """A plugin implementing every lifecycle hook, plus a failing model, a metric and a dataset."""

    def __init__(self):
        self.events: list[tuple] = []

    @hookimpl
    def on_run_start(self, run):
        self.events.append(("on_run_start", run.run_id, tuple(run.jobs)))

    @hookimpl
    def on_epoch_end(self, run, job, epoch, logs):
        self.events.append(("on_epoch_end", job, epoch, round(logs["train_loss"], 6)))

    @hookimpl
    def on_model_result(self, run, record):
        self.events.append(("on_model_result", record.job_id, record.status))

    @hookimpl
    def on_run_end(self, run, records, status):
        self.events.append(("on_run_end", status, len(records)))

    @hookimpl
    def register_models(self):
        def explode(request):
            raise RuntimeError("this model always fails to build")
        return [ModelSpec(name="exploding_net", build=explode, family="test", paper="none")]

    @hookimpl
    def register_metrics(self):
        return [MetricSpec(name="error_rate", fn=lambda p: float(np.mean(p.y_true != p.y_pred)),
                           higher_is_better=False, tasks=("binary", "multiclass"))]

    @hookimpl
    def register_datasets(self):
        def load(request):
            rng = np.random.default_rng(0)
            labels = np.arange(40) % 2
            return SampleTable(ids=[f"img{i}" for i in range(40)], labels=labels, class_names=["a", "b"],
                               load_image=lambda i, size: (rng.integers(0, 255, (size, size)) // (1 + labels[i]))
                               .astype(np.uint8), fingerprint="noise")
        return [DatasetSpec(name="noise_test", load=load, description="random noise", tasks=("binary",),
                            options_schema=NoiseOptions)]


class NoiseOptions(BaseModel):
    """The options the tiny suite's base sets (the noise dataset ignores them)."""

    model_config = ConfigDict(extra="forbid")
    n_samples: int = 40
    seed: int = 0


def registry_with(*plugins) -> Registry:
    return Registry(*load_plugin_manager(extra_plugins=plugins))


def run(suite, tmp_path, **kw):
    return run_suite(suite, results_root=tmp_path / "results", device="cpu", **kw)


def test_same_seed_gives_identical_metrics(suite_file, tmp_path):
    suite = suite_file(models=["lenet"], augment=[{"name": "hflip"}, {"name": "rotation", "degrees": 5}])
    a = run(suite, tmp_path).records[0]
    b = run(suite, tmp_path).records[0]
    assert a.status == b.status == "ok"
    assert a.metrics == b.metrics and a.curves["train_loss"] == b.curves["train_loss"]
    c = run(suite_file(models=["lenet"], seeds=[1]), tmp_path).records[0]
    assert c.curves["train_loss"] != a.curves["train_loss"]


def test_record_and_predictions_recompute_with_sklearn(suite_file, tmp_path):
    outcome = run(suite_file(models=["lenet"], train={"epochs": 2}), tmp_path)
    rec = outcome.records[0]
    assert rec.epochs_run == 2 and len(rec.curves["val_loss"]) == 2 and rec.best_epoch in (1, 2)
    header = outcome.store.read_header()
    assert header["synthetic"] is True and len(header["suite_sha256"]) == 64
    assert header["environment"]["torch"] and header["split_manifest_sha256"]
    splits = pd.read_csv(outcome.store.dir / "splits.csv")
    test_ids = set(splits[splits.split == "test"].sample_id)
    pred_df = pd.read_csv(outcome.store.dir / rec.predictions_path)
    assert set(pred_df.sample_id) == test_ids and len(pred_df) == rec.n_test
    pred = read_predictions(outcome.store.dir / rec.predictions_path, ["normal", "pneumonia"], "binary").pred
    assert rec.metrics["accuracy"] == pytest.approx(accuracy_score(pred.y_true, pred.y_pred), abs=1e-12)
    assert rec.metrics["roc_auc"] == pytest.approx(roc_auc_score(pred.y_true, pred.y_prob[:, 1]), abs=1e-6)
    lo, hi = rec.ci["accuracy"]
    assert lo <= rec.metrics["accuracy"] <= hi
    # no patient on two sides of the split
    sides = splits.groupby("patient_id").split.nunique()
    assert sides.max() == 1


def test_crashing_plugin_model_is_recorded_failed_and_others_finish(suite_file, tmp_path):
    recorder = Recorder()
    reg = registry_with(recorder)
    outcome = run(suite_file(models=["exploding_net", "lenet"]), tmp_path, registry=reg)
    status = {r.model: r for r in outcome.records}
    assert status["exploding_net"].status == "failed"
    assert "this model always fails to build" in status["exploding_net"].error
    assert status["lenet"].status == "ok"
    assert outcome.status == "failed" and outcome.exit_code == 1
    on_disk = {r.job_id: r.status for r in outcome.store.records() if r.kind == "model"}
    assert on_disk == {"exploding_net__fold0__seed0": "failed", "lenet__fold0__seed0": "ok"}
    kinds = [e[0] for e in recorder.events]
    assert kinds[0] == "on_run_start" and kinds[-1] == "on_run_end"
    assert ("on_model_result", "exploding_net__fold0__seed0", "failed") in recorder.events
    assert [e for e in recorder.events if e[0] == "on_epoch_end"][0][1:3] == ("lenet__fold0__seed0", 1)
    assert recorder.events[-1] == ("on_run_end", "failed", 4)  # 2 models + 2 baselines


def test_plugin_metric_and_dataset_are_used(suite_file, tmp_path):
    reg = registry_with(Recorder())
    suite = suite_file(models=["lenet"], task={"type": "binary", "classes": ["a", "b"]},
                       dataset={"name": "noise_test", "options": {}},
                       metrics={"primary": "error_rate", "report": ["accuracy", "error_rate"]})
    rec = run(suite, tmp_path, registry=reg).records[0]
    assert rec.status == "ok"
    assert rec.metrics["error_rate"] == pytest.approx(1 - rec.metrics["accuracy"])


def test_kfold_runs_every_fold_without_patient_leakage(suite_file, tmp_path):
    outcome = run(suite_file(models=["lenet"], split={"strategy": "kfold", "folds": 3}), tmp_path)
    assert sorted(r.fold for r in outcome.records) == [0, 1, 2]
    splits = pd.read_csv(outcome.store.dir / "splits.csv")
    for _, fold in splits.groupby("fold"):
        assert fold.groupby("patient_id").split.nunique().max() == 1
    tests = splits[splits.split == "test"]
    assert tests.sample_id.is_unique  # each image is tested exactly once across folds


def test_multilabel_and_multiclass_run(suite_file, tmp_path):
    labels = ["Atelectasis", "Cardiomegaly", "Effusion"]
    ml = run(suite_file(task={"type": "multilabel", "classes": labels},
                        metrics={"primary": "mean_auc", "report": ["mean_auc", "f1"]}), tmp_path).records[0]
    assert ml.status == "ok", ml.error
    assert np.array(ml.confusion_matrix).shape == (3, 2, 2)
    mc = run(suite_file(task={"type": "multiclass", "classes": ["normal", "lobar", "diffuse"]},
                        metrics={"primary": "f1_weighted", "report": ["accuracy", "kappa"]}), tmp_path).records[0]
    assert mc.status == "ok", mc.error
    assert np.array(mc.confusion_matrix).sum() == mc.n_test


def test_resume_after_kill_skips_finished_model(suite_file, tmp_path):
    """Kill a real `cxrbench run` process after its first record, resume, and check no retraining."""
    suite = suite_file(models=["lenet", {"name": "lenet", "label": "lenet_slow"}],
                       train={"epochs": 1})
    slow = suite.read_text().replace("label: lenet_slow", "label: lenet_slow\n  train: {epochs: 400}")
    suite.write_text(slow)
    results = tmp_path / "results"
    env = dict(os.environ, CXRBENCH_RESULTS=str(results))
    proc = subprocess.Popen([sys.executable, "-m", "cxrbench.cli", "run", str(suite), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    deadline = time.time() + 120
    while time.time() < deadline and first is None:
        found = list(results.glob("tiny/*/records/lenet__fold0__seed0.json"))
        first = found[0] if found else None
        time.sleep(0.2)
    assert first is not None, "the first model never finished"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = first.read_text()
    run_dir = first.parent.parent
    assert not (run_dir / "records" / "lenet_slow__fold0__seed0.json").exists()
    outcome = run_suite(suite, ["models.1.train.epochs=1"], results_root=results, device="cpu",
                        resume=str(run_dir))
    assert outcome.skipped == ["lenet__fold0__seed0"]
    assert [r.job_id for r in outcome.records] == ["lenet_slow__fold0__seed0"]
    assert first.read_text() == before  # not retrained, not rewritten
    assert {r.job_id for r in RunStore(run_dir).records() if r.kind == "model"} == {
        "lenet__fold0__seed0", "lenet_slow__fold0__seed0"}
    assert RunStore(run_dir).read_header()["status"] == "complete"


def test_resume_refuses_a_different_protocol(suite_file, tmp_path):
    from cxrbench.errors import ResultsError

    outcome = run(suite_file(models=["lenet"]), tmp_path)
    with pytest.raises(ResultsError, match="different protocol"):
        run(suite_file(models=["lenet"], train={"batch_size": 8}), tmp_path, resume=str(outcome.store.dir))


def test_interrupt_keeps_finished_records(suite_file, tmp_path, monkeypatch):
    """Ctrl-C during the second model: the first model's record stays, the run says interrupted."""
    from cxrbench.engine.jobs.train_eval import TrainEvaluate

    real = TrainEvaluate.execute

    def execute_then_ctrl_c(self, job, *a, **k):
        if job.entry.key == "second":
            raise KeyboardInterrupt
        return real(self, job, *a, **k)

    monkeypatch.setattr(TrainEvaluate, "execute", execute_then_ctrl_c)
    outcome = run(suite_file(models=["lenet", {"name": "lenet", "label": "second"}]), tmp_path)
    assert outcome.status == "interrupted" and outcome.exit_code == 130
    assert [r.job_id for r in outcome.store.records() if r.kind == "model"] == ["lenet__fold0__seed0"]
    assert outcome.store.read_header()["status"] == "interrupted"


def test_baseline_rows_have_the_right_values(suite_file, tmp_path):
    outcome = run(suite_file(models=["lenet"], dataset={"name": "synthetic_cxr", "options": {"n_samples": 150}}),
                  tmp_path)
    records = {r.model: r for r in outcome.store.records()}
    splits = pd.read_csv(outcome.store.dir / "splits.csv")
    pred = pd.read_csv(outcome.store.dir / records["lenet"].predictions_path)
    test_ids = set(splits[splits.split == "test"].sample_id)
    assert set(pred.sample_id) == test_ids
    # the majority class is taken from training labels; its accuracy is that class's test share
    from cxrbench.data.loading import load_dataset
    from cxrbench.plugins import get_registry

    table = load_dataset(get_registry().dataset("synthetic_cxr"), "binary", ("normal", "pneumonia"), None,
                         {"n_samples": 150})
    label = dict(zip(table.ids, table.labels))
    train = [label[i] for i in splits[splits.split == "train"].sample_id]
    test = [label[i] for i in splits[splits.split == "test"].sample_id]
    majority = int(np.bincount(train).argmax())
    maj = records["baseline_majority"]
    assert maj.kind == "baseline"
    assert maj.metrics["accuracy"] == pytest.approx(np.mean(np.array(test) == majority))
    assert maj.metrics["roc_auc"] == pytest.approx(0.5)
    strat = records["baseline_stratified"]
    assert 0.0 <= strat.metrics["accuracy"] <= 1.0 and strat.n_test == len(test)


def test_metrics_do_not_depend_on_eval_batch_size(suite_file, tmp_path):
    a = run(suite_file(models=["resnet18"], train={"eval_batch_size": 1}), tmp_path).records[0]
    b = run(suite_file(models=["resnet18"], train={"eval_batch_size": 13}), tmp_path).records[0]
    assert a.status == b.status == "ok"
    for name, value in a.metrics.items():
        assert b.metrics[name] == pytest.approx(value, abs=1e-6), name


def test_test_split_is_only_predicted_after_training(suite_file, tmp_path, monkeypatch):
    """Model selection never reads test data: the only predict() on test rows comes after fit()."""
    from cxrbench.engine import trainer as trainer_mod

    calls: list[str] = []
    real_fit, real_predict = trainer_mod.Trainer.fit, trainer_mod.Trainer.predict

    def fit(self):
        calls.append("fit-start")
        out = real_fit(self)
        calls.append("fit-end")
        return out

    def predict(self, idx, batch_size=None):
        calls.append("test" if set(idx) == set(self.fold.test) else "val")
        return real_predict(self, idx, batch_size)

    monkeypatch.setattr(trainer_mod.Trainer, "fit", fit)
    monkeypatch.setattr(trainer_mod.Trainer, "predict", predict)
    run(suite_file(models=["lenet"], train={"epochs": 3}), tmp_path)
    assert calls == ["fit-start", "val", "val", "val", "fit-end", "test"]
