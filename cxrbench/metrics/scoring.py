"""Scores for one set of predictions: the suite's metrics, their bootstrap CIs, the confusion matrix."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from cxrbench.metrics.bootstrap import bootstrap_ci
from cxrbench.metrics.classification import classification_report, confusion_matrix, per_label_auc
from cxrbench.specs import Predictions

if TYPE_CHECKING:  # pragma: no cover
    from cxrbench.plugins import Registry


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
