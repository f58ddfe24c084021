"""Scores for one set of predictions: the suite's metrics, their bootstrap CIs, the confusion matrix.

CIs are cluster-bootstrapped (:func:`~cxrbench.metrics.bootstrap.cluster_bootstrap`): patients are
resampled when the rows carry patient ids, images otherwise (then the numbers equal the image
bootstrap for the same seed).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from cxrbench.metrics.bootstrap import cluster_bootstrap, cluster_codes
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
          confidence: float, seed: int, patients: Sequence[Hashable] | None = None) -> dict[str, Any]:
    """Metrics, bootstrap CIs (every bootstrappable metric), confusion matrix and per-class report.

    ``ci[name] = [low, high]``; ``ci_unit`` = ``{unit, n_units, n_resamples, confidence}`` says what
    was resampled (``patients``: one id per row, None or missing ids -> images).
    """
    metrics = compute_metrics(pred, [primary, *names, "loss"], registry)
    ci = {}
    for name in dict.fromkeys([primary, *names]):
        spec = registry.metric(name)
        if n_boot > 0 and spec.bootstrappable:
            b = cluster_bootstrap(spec.fn, pred, patients, n_resamples=n_boot, confidence=confidence, seed=seed)
            ci[name] = [float(b.low), float(b.high)]
    _, n_units, unit = cluster_codes(patients, len(pred.y_true))
    out = {"metrics": metrics, "ci": ci,
           "ci_unit": {"unit": unit, "n_units": int(n_units), "n_resamples": max(int(n_boot), 0),
                       "confidence": float(confidence)},
           "confusion_matrix": confusion_matrix(pred).tolist(), "class_report": classification_report(pred)}
    if pred.task == "multilabel":
        out["class_report"] = {**out["class_report"], "per_label_auc": per_label_auc(pred)}
    return out
