"""Score a trained model (or a baseline) on the suite's external test sets (:mod:`cxrbench.data.external`).

Each set gets the suite's metrics with bootstrap CIs (the same :func:`score` as the internal test
split) and a predictions CSV in the one format, at ``<run>/external/<name>/<job>.csv``.
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any, Callable

import numpy as np
import torch

from cxrbench.data.external import ExternalSet
from cxrbench.data.prepare import PreparedData
from cxrbench.metrics.scoring import score
from cxrbench.engine.batches import Batches, label_tensor
from cxrbench.engine.trainer import Trainer
from cxrbench.plugins import Registry
from cxrbench.results.predictions import predictions_csv
from cxrbench.results.store import RunStore
from cxrbench.specs import Predictions
from cxrbench.suite.schema import Suite

def external_batches(ext: ExternalSet, batches: Batches, task: str) -> Batches:
    """The external set as model input: the main data's normalisation and evaluation transform."""
    with warnings.catch_warnings():  # arrays from Ray's object store are read-only; rows are only copied out
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        images = torch.from_numpy(ext.images)
    labels = label_tensor(ext.labels, ext.mask, task)
    return Batches(images, labels, batches.mean, batches.std, None, batches.eval_transform)


def _scored(ext: ExternalSet, pred: Predictions, suite: Suite, registry: Registry, seed: int,
            seconds: float) -> tuple[dict[str, Any], bytes]:
    """The record entry and the predictions CSV bytes of one set."""
    m = suite.metrics
    scores = score(pred, m.report, m.primary, registry, m.bootstrap, m.confidence, seed=seed,
                   patients=ext.patient_ids)
    csv = predictions_csv(pred, ext.ids, ext.patient_ids)
    entry = {"dataset": ext.dataset, "rows": ext.rows, "n": len(ext), "n_rows": ext.n_rows,
             "dropped": dict(ext.dropped), "metrics": scores["metrics"], "ci": scores["ci"],
             "ci_unit": scores["ci_unit"],
             "confusion_matrix": scores["confusion_matrix"], "seconds": seconds, "predictions_path": None}
    return entry, csv


def evaluate_external(trainer: Trainer, data: PreparedData, batches: Batches, suite: Suite, registry: Registry,
                      seed: int, threshold: dict[str, Any] | None = None
                      ) -> tuple[dict[str, dict[str, Any]], dict[str, bytes]]:
    """The trained model of ``trainer`` on every external set: record entries and CSV bytes, by name.

    ``threshold`` is the job's validation-fitted decision threshold, applied as on the internal test set.
    """
    from cxrbench.engine.thresholding import apply_decision_threshold

    entries, csvs = {}, {}
    for ext in data.external:
        t0 = time.perf_counter()
        view = copy.copy(trainer)  # same model and settings, other rows
        view.data = external_batches(ext, batches, suite.task.type)
        pred = apply_decision_threshold(view.predict(np.arange(len(ext))), threshold)
        entries[ext.name], csvs[ext.name] = _scored(ext, pred, suite, registry, seed, time.perf_counter() - t0)
    return entries, csvs


def baseline_external(suite: Suite, data: PreparedData, registry: Registry, store: RunStore, job: str, seed: int,
                      predict: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]],
                      rng_key: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """A baseline (``predict(n, rng) -> (prob, pred)``, fitted on training rows) on every external set."""
    out = {}
    for i, ext in enumerate(data.external):
        rng = np.random.default_rng([*rng_key, 1000 + i])  # its own stream: internal baseline rows unchanged
        prob, y_pred = predict(len(ext), rng)
        pred = Predictions(ext.labels, prob, y_pred, suite.task.type, tuple(suite.task.classes),
                           suite.task.positive_index, mask=ext.mask)
        entry, csv = _scored(ext, pred, suite, registry, seed, 0.0)
        entry["metrics"] = {k: v for k, v in entry["metrics"].items() if k != "loss"}
        path = store.write_bytes(store.external_predictions_path(ext.name, job), csv)
        out[ext.name] = entry | {"predictions_path": store.relative(path)}
    return out
