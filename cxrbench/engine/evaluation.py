"""Scores for one set of predictions, and the predictions file anyone can recompute them from."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench.metrics.bootstrap import bootstrap_ci
from cxrbench.metrics.classification import classification_report, confusion_matrix, per_label_auc
from cxrbench.plugins import Registry
from cxrbench.specs import Predictions


def compute_metrics(pred: Predictions, names: list[str], registry: Registry) -> dict[str, float]:
    """``{name: value}`` for each metric name (``nan`` where undefined)."""
    out = {}
    for name in dict.fromkeys(names):
        value = registry.metric(name).fn(pred)
        out[name] = float(value) if value is not None else math.nan
    return out


def score(pred: Predictions, names: list[str], primary: str, registry: Registry, n_boot: int,
          confidence: float, seed: int) -> dict[str, Any]:
    """Metrics, bootstrap CIs (every bootstrappable metric), confusion matrix and per-class report."""
    metrics = compute_metrics(pred, [primary, *names, "loss"], registry)
    ci = {}
    for name in dict.fromkeys([primary, *names]):
        spec = registry.metric(name)
        if n_boot > 0 and spec.bootstrappable:
            lo, hi = bootstrap_ci(spec.fn, pred, n_resamples=n_boot, confidence=confidence, seed=seed)
            ci[name] = [float(lo), float(hi)]
    out = {"metrics": metrics, "ci": ci, "confusion_matrix": confusion_matrix(pred).tolist(),
           "class_report": classification_report(pred)}
    if pred.task == "multilabel":
        out["class_report"] = {**out["class_report"], "per_label_auc": per_label_auc(pred)}
    return out


def write_predictions(path: Path, pred: Predictions, ids: list[str], patients: list[str] | None) -> None:
    """CSV: sample_id, patient_id, then true label(s), predicted label(s) and one prob_ column per class.

    Single-label tasks: ``y_true``/``y_pred`` are class indices into ``class_names`` (order of the
    ``prob_*`` columns). Multilabel: ``true_<label>``, ``pred_<label>`` (0/1) and ``prob_<label>``.
    """
    cols: dict[str, Any] = {"sample_id": ids, "patient_id": patients or [""] * len(ids)}
    names = list(pred.class_names)
    if pred.task == "multilabel":
        for j, name in enumerate(names):
            cols[f"true_{name}"] = pred.y_true[:, j]
        for j, name in enumerate(names):
            cols[f"pred_{name}"] = pred.y_pred[:, j]
    else:
        cols["y_true"] = pred.y_true
        cols["y_pred"] = pred.y_pred
    for j, name in enumerate(names):
        cols[f"prob_{name}"] = pred.y_prob[:, j]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    pd.DataFrame(cols).to_csv(tmp, index=False, float_format="%.8g")
    tmp.replace(path)


def read_predictions(path: Path, class_names: list[str], task: str, positive: int = 1) -> Predictions:
    """Load a predictions CSV back into :class:`Predictions` (to recompute any metric)."""
    df = pd.read_csv(path)
    prob = df[[f"prob_{c}" for c in class_names]].to_numpy(dtype=np.float64)
    if task == "multilabel":
        y_true = df[[f"true_{c}" for c in class_names]].to_numpy(dtype=int)
        y_pred = df[[f"pred_{c}" for c in class_names]].to_numpy(dtype=int)
    else:
        y_true, y_pred = df["y_true"].to_numpy(dtype=int), df["y_pred"].to_numpy(dtype=int)
    return Predictions(y_true, prob, y_pred, task, tuple(class_names), positive)
