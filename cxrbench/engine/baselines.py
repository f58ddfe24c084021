"""Trivial predictors scored on every fold's test split, so a reader sees what "91% accuracy" is worth.

``majority`` always predicts the most frequent training class (its probabilities are the training
class frequencies); ``stratified`` draws labels at random with the training class frequencies.
Both are fitted on the fold's training rows only.
"""

from __future__ import annotations

import numpy as np

from cxrbench.data.prepare import PreparedData
from cxrbench.metrics.scoring import score
from cxrbench.engine.external import baseline_external
from cxrbench.plugins import Registry
from cxrbench.results.predictions import predictions_csv
from cxrbench.results.records import JobRecord, job_id
from cxrbench.results.store import RunStore, now_iso
from cxrbench.specs import Predictions
from cxrbench.suite.schema import Suite

BASELINES = ("majority", "stratified")


def baseline_key(kind: str) -> str:
    """Leaderboard row name of a baseline."""
    return f"baseline_{kind}"


def baseline_predict(kind: str, train_y: np.ndarray, n: int, k: int, multilabel: bool,
                     rng: np.random.Generator, train_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, predictions) of ``n`` images from a ``majority`` or ``stratified`` predictor
    fitted on the training labels ``train_y`` only (multilabel: on the known entries of ``train_mask``)."""
    if multilabel:
        known = np.ones_like(train_y, dtype=bool) if train_mask is None else np.asarray(train_mask, dtype=bool)
        counted = known.sum(axis=0)
        prevalence = np.divide((train_y * known).sum(axis=0), counted, out=np.zeros(k), where=counted > 0) \
            if len(train_y) else np.zeros(k)
        if kind == "majority":
            pred = np.tile((prevalence > 0.5).astype(int), (n, 1))
            return np.tile(prevalence, (n, 1)), pred
        pred = (rng.random((n, k)) < prevalence).astype(int)
        return pred.astype(float), pred
    freq = np.bincount(train_y, minlength=k) / max(len(train_y), 1)
    if kind == "majority":
        return np.tile(freq, (n, 1)), np.full(n, int(np.argmax(freq)))
    pred = rng.choice(k, size=n, p=freq)
    return np.eye(k)[pred], pred


def baseline_records(suite: Suite, data: PreparedData, registry: Registry, store: RunStore,
                     done: set[str]) -> list[JobRecord]:
    """Score both baselines on each fold's test rows (first seed); skips ones already recorded."""
    labels = np.asarray(data.table.labels)
    mask = data.table.label_mask
    rows = lambda idx: None if mask is None else np.asarray(mask)[idx]  # noqa: E731
    multilabel = suite.task.type == "multilabel"
    k, seed = len(suite.task.classes), suite.seeds[0]
    out = []
    for fold in data.folds:
        for kind in BASELINES:
            jid = job_id(baseline_key(kind), fold.index, seed)
            if jid in done:
                continue
            rng = np.random.default_rng([seed, fold.index])
            prob, pred = baseline_predict(kind, labels[fold.train], len(fold.test), k, multilabel, rng,
                                          rows(fold.train))
            y_true = labels[fold.test]
            preds = Predictions(y_true, prob, pred, suite.task.type, tuple(suite.task.classes),
                                suite.task.positive_index, mask=rows(fold.test))
            patients = [data.table.patient_ids[i] for i in fold.test] if data.table.patient_ids else None
            scores = score(preds, suite.metrics.report, suite.metrics.primary, registry, suite.metrics.bootstrap,
                           suite.metrics.confidence, seed=seed, patients=patients)
            ids = [data.table.ids[i] for i in fold.test]
            path = store.write_bytes(store.predictions_path(jid), predictions_csv(preds, ids, patients))
            metrics = {k_: v for k_, v in scores["metrics"].items() if k_ != "loss"}
            record = JobRecord(job_id=jid, model=baseline_key(kind), model_name=kind, fold=fold.index, seed=seed,
                               kind="baseline", metrics=metrics, ci=scores["ci"], ci_unit=scores["ci_unit"],
                               confusion_matrix=scores["confusion_matrix"], class_report=scores["class_report"],
                               predictions_path=store.relative(path), n_train=len(fold.train),
                               n_val=len(fold.val), n_test=len(fold.test), synthetic=data.synthetic,
                               started_at=now_iso(), finished_at=now_iso(), model_config={"baseline": kind},
                               model_config_sha256=kind)
            if data.external:  # the same fitted predictor on each external test set
                train_y, train_mask = labels[fold.train], rows(fold.train)
                record.external = baseline_external(
                    suite, data, registry, store, jid, seed,
                    lambda n, rng: baseline_predict(kind, train_y, n, k, multilabel, rng, train_mask),
                    (seed, fold.index))
            store.write_record(record)
            out.append(record)
    return out
