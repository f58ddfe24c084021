"""``metrics.threshold`` in the engine: fitted on validation only, applied once to test, recorded, recomputable."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm

from cxrbench.data.prepare import prepare_data
from cxrbench.data.splits import Fold
from cxrbench.results.predictions import read_predictions
from cxrbench.metrics.scoring import compute_metrics
from cxrbench.engine.batches import make_batches
from cxrbench.engine.jobs.train_eval import plan_jobs, train_job
from cxrbench.engine.runner import run_suite
from cxrbench.engine.thresholding import check_fold
from cxrbench.errors import SuiteError
from cxrbench.plugins import get_registry
from cxrbench.results.records import JobRecord
from cxrbench.suite.checks import check_suite
from cxrbench.suite.loader import load_suite

YOUDEN = {"threshold": {"rule": "youden"}}
LABELS = ["Atelectasis", "Cardiomegaly", "Effusion"]


def run(suite, tmp_path):
    outcome = run_suite(suite, results_root=tmp_path / "results", device="cpu")
    rec = next(r for r in outcome.records if r.kind == "model")
    assert rec.status == "ok", rec.error
    return outcome, rec


def record_predict_calls(monkeypatch) -> list[tuple[str, object]]:
    """Wrap Trainer.fit / predict: a list of ("fit-start" | "fit-end" | "val" | "test", predictions)."""
    from cxrbench.engine import trainer as trainer_mod

    calls: list[tuple[str, object]] = []
    real_fit, real_predict = trainer_mod.Trainer.fit, trainer_mod.Trainer.predict

    def fit(self):
        calls.append(("fit-start", None))
        out = real_fit(self)
        calls.append(("fit-end", None))
        return out

    def predict(self, idx, batch_size=None):
        out = real_predict(self, idx, batch_size)
        kind = "test" if np.array_equal(np.sort(idx), np.sort(self.fold.test)) else "val"
        assert kind == "test" or np.array_equal(np.sort(idx), np.sort(self.fold.val))
        calls.append((kind, out))
        return out

    monkeypatch.setattr(trainer_mod.Trainer, "fit", fit)
    monkeypatch.setattr(trainer_mod.Trainer, "predict", predict)
    return calls


def youden_candidates(truth: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Every ROC threshold (sklearn) reaching the maximum of sensitivity + specificity - 1."""
    fpr, tpr, thr = skm.roc_curve(truth, score, drop_intermediate=False)
    j = tpr - fpr
    return thr[j >= j.max() - 1e-12]


# -- (a) the threshold reads validation labels, never test labels -------------------------------------

def test_threshold_ignores_test_labels_and_follows_validation_labels(suite_file):
    suite = load_suite(suite_file(metrics=YOUDEN, train={"epochs": 2}))
    registry = get_registry()
    data = prepare_data(suite, registry)
    batches = make_batches(suite, data)
    job = plan_jobs(suite, len(data.folds))[0]
    fold = data.folds[0]

    def train(labels: torch.Tensor | None = None) -> JobRecord:
        b = batches if labels is None else replace(batches, labels=labels)
        return train_job(job, suite, data, b, registry, torch.device("cpu")).record

    base = train()
    flipped_test = batches.labels.clone()
    flipped_test[fold.test] = 1 - flipped_test[fold.test]
    rec = train(flipped_test)
    assert rec.threshold == base.threshold and rec.threshold["fitted_on"] == "val"
    assert rec.curves == base.curves  # training and model selection saw the same data
    assert rec.metrics["accuracy"] == pytest.approx(1 - base.metrics["accuracy"])  # the corruption reached test

    shuffled_val = batches.labels.clone()
    shuffled_val[fold.val] = 1 - shuffled_val[fold.val]
    rec = train(shuffled_val)
    assert rec.threshold["value"] != base.threshold["value"]


# -- (b) test rows are predicted once, after training and after the threshold ---------------------------

def test_test_rows_are_predicted_once_after_training_and_threshold_fitting(suite_file, tmp_path, monkeypatch):
    calls = record_predict_calls(monkeypatch)
    run(suite_file(metrics=YOUDEN, train={"epochs": 3}), tmp_path)
    assert [c for c, _ in calls] == ["fit-start", "val", "val", "val", "fit-end", "val", "test"]


def test_fixed_rule_needs_no_extra_validation_pass(suite_file, tmp_path, monkeypatch):
    calls = record_predict_calls(monkeypatch)
    _, rec = run(suite_file(train={"epochs": 2}), tmp_path)
    assert [c for c, _ in calls] == ["fit-start", "val", "val", "fit-end", "test"]
    assert rec.threshold == {"rule": "fixed", "level": None, "value": 0.5, "fitted_on": None, "n_val": 0}


# -- (c) the fitted value and the test metrics against scikit-learn ---------------------------------------

def test_youden_threshold_and_test_metrics_match_sklearn(suite_file, tmp_path, monkeypatch):
    calls = record_predict_calls(monkeypatch)
    outcome, rec = run(suite_file(metrics={**YOUDEN, "report": ["accuracy", "f1", "precision", "recall",
                                                                 "specificity", "roc_auc"]}, train={"epochs": 2}),
                       tmp_path)
    val = calls[[c for c, _ in calls].index("fit-end") + 1][1]
    truth, score = (val.y_true == 1).astype(int), val.y_prob[:, 1]
    t = rec.threshold["value"]
    assert rec.threshold | {"value": None} == {"rule": "youden", "level": None, "value": None, "fitted_on": "val",
                                               "n_val": rec.n_val}
    best = youden_candidates(truth, score)
    assert t in best
    if len(best) == 1:
        assert t == best[0]

    df = pd.read_csv(outcome.store.dir / rec.predictions_path)
    y_hat = (df["prob_pneumonia"].to_numpy() >= t).astype(int)
    np.testing.assert_array_equal(df["y_pred"], y_hat)
    y = df["y_true"].to_numpy()
    expected = {"accuracy": skm.accuracy_score(y, y_hat), "f1": skm.f1_score(y, y_hat, zero_division=0),
                "precision": skm.precision_score(y, y_hat, zero_division=0),
                "recall": skm.recall_score(y, y_hat, zero_division=0),
                "specificity": skm.recall_score(y, y_hat, pos_label=0, zero_division=0),
                "roc_auc": skm.roc_auc_score(y, df["prob_pneumonia"])}
    for name, value in expected.items():
        assert rec.metrics[name] == pytest.approx(value, abs=1e-6), name
    pred = read_predictions(outcome.store.dir / rec.predictions_path, ["normal", "pneumonia"], "binary").pred
    again = compute_metrics(pred, list(expected), get_registry())
    assert again == pytest.approx({k: rec.metrics[k] for k in expected}, abs=1e-12)


def test_multilabel_thresholds_are_fitted_per_label(suite_file, tmp_path, monkeypatch):
    calls = record_predict_calls(monkeypatch)
    outcome, rec = run(suite_file(task={"type": "multilabel", "classes": LABELS},
                                  metrics={**YOUDEN, "primary": "mean_auc", "report": ["mean_auc", "f1", "accuracy"]}),
                       tmp_path)
    val = calls[[c for c, _ in calls].index("fit-end") + 1][1]
    values = rec.threshold["value"]
    assert len(values) == len(LABELS) and rec.threshold["n_val"] == rec.n_val
    for k, label in enumerate(LABELS):
        truth = val.y_true[:, k]
        if truth.min() == truth.max():
            assert label in rec.threshold["fallback"] and values[k] == 0.5
        else:
            assert label not in rec.threshold["fallback"] and values[k] in youden_candidates(truth, val.y_prob[:, k])
    df = pd.read_csv(outcome.store.dir / rec.predictions_path)
    for k, label in enumerate(LABELS):
        np.testing.assert_array_equal(df[f"pred_{label}"], (df[f"prob_{label}"] >= values[k]).astype(int))
    pred = read_predictions(outcome.store.dir / rec.predictions_path, LABELS, "multilabel").pred
    assert compute_metrics(pred, ["f1", "accuracy"], get_registry()) == pytest.approx(
        {"f1": rec.metrics["f1"], "accuracy": rec.metrics["accuracy"]}, abs=1e-12)


def test_specificity_rule_reaches_its_level_on_validation(suite_file, tmp_path, monkeypatch):
    calls = record_predict_calls(monkeypatch)
    rule = {"threshold": {"rule": "specificity", "level": 0.8}}
    outcome, rec = run(suite_file(metrics=rule, train={"epochs": 2}), tmp_path)
    val = calls[[c for c, _ in calls].index("fit-end") + 1][1]
    t, neg = rec.threshold["value"], val.y_true == 0
    assert rec.threshold["level"] == 0.8
    assert np.mean(val.y_prob[neg, 1] < t) >= 0.8
    lower = val.y_prob[:, 1][val.y_prob[:, 1] < t]
    if lower.size:  # the next validation score down would flag too many negatives
        assert np.mean(val.y_prob[neg, 1] < lower.max()) < 0.8
    df = pd.read_csv(outcome.store.dir / rec.predictions_path)
    np.testing.assert_array_equal(df["y_pred"], (df["prob_pneumonia"] >= t).astype(int))


# -- the default reproduces the argmax ----------------------------------------------------------------

def test_default_fixed_half_keeps_the_argmax_and_other_fixed_values_apply(suite_file, tmp_path):
    outcome, rec = run(suite_file(), tmp_path)
    df = pd.read_csv(outcome.store.dir / rec.predictions_path)
    prob = df[["prob_normal", "prob_pneumonia"]].to_numpy()
    np.testing.assert_array_equal(df["y_pred"], prob.argmax(axis=1))
    untied = prob[:, 0] != prob[:, 1]
    assert untied.all()  # no exact 50/50 tie here, so argmax == (prob_pos >= 0.5) on every row
    np.testing.assert_array_equal(df["y_pred"], (prob[:, 1] >= 0.5).astype(int))

    outcome, rec = run(suite_file(metrics={"threshold": {"value": 0.3}}), tmp_path)
    assert rec.threshold["value"] == 0.3 and rec.threshold["fitted_on"] is None
    df = pd.read_csv(outcome.store.dir / rec.predictions_path)
    np.testing.assert_array_equal(df["y_pred"], (df["prob_pneumonia"] >= 0.3).astype(int))


# -- (d) a fitted threshold does not depend on the evaluation batch size -----------------------------------

def test_thresholded_metrics_do_not_depend_on_eval_batch_size(suite_file, tmp_path):
    _, a = run(suite_file(metrics=YOUDEN, train={"eval_batch_size": 1}), tmp_path)
    _, b = run(suite_file(metrics=YOUDEN, train={"eval_batch_size": 13}), tmp_path)
    assert b.threshold["value"] == pytest.approx(a.threshold["value"], abs=1e-6)
    for name, value in a.metrics.items():
        assert b.metrics[name] == pytest.approx(value, abs=1e-6), name


# -- configuration errors, before any work ------------------------------------------------------------------

def _check(path) -> None:
    check_suite(load_suite(path), get_registry(), str(path))


def test_schema_rejects_a_level_the_rule_does_not_use(suite_file):
    with pytest.raises(SuiteError, match=r"metrics\.threshold.*needs a level"):
        load_suite(suite_file(metrics={"threshold": {"rule": "sensitivity"}}))
    with pytest.raises(SuiteError, match=r"metrics\.threshold.*only used by"):
        load_suite(suite_file(metrics={"threshold": {"rule": "youden", "level": 0.9}}))
    with pytest.raises(SuiteError, match=r"metrics\.threshold\.rule"):
        load_suite(suite_file(metrics={"threshold": {"rule": "f1"}}))


def test_check_rejects_thresholds_on_multiclass_and_fitting_without_validation(suite_file):
    multiclass = {"type": "multiclass", "classes": ["normal", "lobar", "diffuse"]}
    with pytest.raises(SuiteError, match=r"metrics\.threshold\.rule: thresholds do not apply to multiclass"):
        _check(suite_file(task=multiclass, metrics=YOUDEN))
    with pytest.raises(SuiteError, match=r"metrics\.threshold\.rule: .*multiclass"):
        _check(suite_file(task=multiclass, metrics={"threshold": {"value": 0.3}}))
    _check(suite_file(task=multiclass))  # the default is fine
    no_val = {"strategy": "ratio", "ratios": {"train": 0.85, "val": 0.0, "test": 0.15}}
    with pytest.raises(SuiteError, match=r"metrics\.threshold\.rule: rule 'youden' .* split\.ratios\.val is 0"):
        _check(suite_file(split=no_val, metrics=YOUDEN))
    _check(suite_file(split=no_val))  # fixed needs no validation rows
    with pytest.raises(SuiteError, match=r"split\.val_fraction is 0"):
        _check(suite_file(split={"strategy": "kfold", "folds": 3, "val_fraction": 0.0}, metrics=YOUDEN))


def test_a_fold_the_rule_cannot_be_fitted_on_fails_before_training(suite_file):
    suite = load_suite(suite_file(metrics=YOUDEN))
    labels = np.array([0, 1, 0, 1, 1, 1])
    fold = Fold(0, np.array([0, 1]), np.array([], dtype=int), np.array([2, 3]))
    with pytest.raises(SuiteError, match="fold 0 has none"):
        check_fold(suite, fold, labels)
    with pytest.raises(SuiteError, match="needs both classes among fold 0's 2 validation rows"):
        check_fold(suite, Fold(0, np.array([0, 1]), np.array([4, 5]), np.array([2, 3])), labels)
    check_fold(suite, Fold(0, np.array([0, 1]), np.array([3, 2]), np.array([4, 5])), labels)
    sens = load_suite(suite_file(metrics={"threshold": {"rule": "sensitivity", "level": 0.9}}))
    check_fold(sens, Fold(0, np.array([0, 1]), np.array([4, 5]), np.array([2, 3])), labels)  # positives only: fine
    spec = load_suite(suite_file(metrics={"threshold": {"rule": "specificity", "level": 0.9}}))
    with pytest.raises(SuiteError, match="needs a negative"):
        check_fold(spec, Fold(0, np.array([0, 1]), np.array([4, 5]), np.array([2, 3])), labels)


def test_old_records_without_a_threshold_still_load():
    data = JobRecord("m__fold0__seed0", "m", "m", 0, 0).to_dict()
    data.pop("threshold")
    assert JobRecord.from_dict(data).threshold is None


def test_multilabel_labels_the_rule_cannot_use_keep_half_and_are_named():
    from cxrbench.engine.thresholding import apply_decision_threshold, fit_decision_threshold
    from cxrbench.specs import Predictions
    from cxrbench.suite.schema import ThresholdConfig

    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])  # label b: no positives; c: no negatives
    prob = np.array([[0.7, 0.1, 0.9], [0.2, 0.3, 0.8], [0.4, 0.2, 0.6], [0.3, 0.1, 0.7]])
    val = Predictions(y, prob, (prob >= 0.5).astype(int), "multilabel", ("a", "b", "c"))
    got = fit_decision_threshold(ThresholdConfig(rule="youden"), val, "multilabel", ("a", "b", "c"))
    assert got == {"rule": "youden", "level": None, "value": [0.4, 0.5, 0.5], "fitted_on": "val", "n_val": 4,
                   "fallback": ["b", "c"]}
    np.testing.assert_array_equal(apply_decision_threshold(val, got).y_pred, [[1, 0, 1], [0, 0, 1], [1, 0, 1],
                                                                               [0, 0, 1]])
    got = fit_decision_threshold(ThresholdConfig(rule="specificity", level=1.0), val, "multilabel", ("a", "b", "c"))
    # b has negatives only: every one must score below t, so t sits just above the highest (0.3)
    assert got["value"][:2] == [0.4, np.nextafter(0.3, 1)] and got["fallback"] == ["c"]
