"""The decision threshold of a job: fitted on its fold's validation rows, applied unchanged to test.

Binary tasks threshold the positive-class probability, multilabel tasks each label's sigmoid (one
threshold per label); multiclass predictions are always the argmax, so no threshold applies. The
rule and its level come from the suite's ``metrics.threshold``; the fitting itself is
:mod:`cxrbench.metrics.thresholds`. The default (``fixed`` at 0.5) leaves the trainer's predictions
untouched: binary argmax of the softmax (the same as ``prob_pos >= 0.5`` except for an exact 50/50
tie, which goes to the first class) and multilabel ``prob >= 0.5``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np

from cxrbench.data.splits import Fold
from cxrbench.errors import SuiteError
from cxrbench.metrics.thresholds import (DEFAULT_THRESHOLD, apply_threshold, fit_threshold, fit_thresholds_per_label,
                                         missing_for_rule)
from cxrbench.specs import Predictions
from cxrbench.suite.schema import Suite, ThresholdConfig
from cxrbench.suite.threshold_checks import FIELD, threshold_problems

def check_fold(suite: Suite, fold: Fold, labels: np.ndarray) -> None:
    """Raise :class:`SuiteError` (before any training) when the threshold cannot be fitted on this fold.

    ``labels`` are the labels of every row (``(N,)`` or ``(N, K)``); only ``fold.val``'s are read.
    """
    problems = threshold_problems(suite)
    if problems:
        raise SuiteError("; ".join(problems))
    cfg = suite.metrics.threshold
    if cfg.rule == "fixed" or suite.task.type == "multiclass":
        return
    if len(fold.val) == 0:
        raise SuiteError(f"{FIELD}: rule {cfg.rule!r} is fitted on validation rows, but fold {fold.index} has "
                         f"none; give the split a validation set or use rule: fixed")
    if suite.task.type == "multilabel":
        return  # a label the rule cannot be fitted on keeps 0.5 (recorded as a fallback)
    missing = missing_for_rule(cfg.rule, np.asarray(labels)[fold.val] == suite.task.positive_index)
    if missing:
        raise SuiteError(f"{FIELD}: rule {cfg.rule!r} needs {missing} among fold {fold.index}'s "
                         f"{len(fold.val)} validation rows")


def _prob_and_truth(pred: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Scores and 0/1 truth the threshold acts on: ``(N,)`` for binary, ``(N, K)`` for multilabel."""
    prob, y = np.asarray(pred.y_prob, dtype=np.float64), np.asarray(pred.y_true)
    if pred.task == "binary":
        return prob[:, pred.positive], (y == pred.positive).astype(np.int64)
    return prob, y.astype(np.int64)


def fit_decision_threshold(cfg: ThresholdConfig, val: Predictions | None, task: str,
                           class_names: tuple[str, ...]) -> dict[str, Any] | None:
    """The threshold to record for a job: ``rule``, ``level``, ``value``, ``fitted_on``, ``n_val``.

    ``val`` holds the trained model's validation predictions (None for ``fixed``, which needs none).
    Multilabel ``value`` is one threshold per label, and ``fallback`` names the labels the rule
    could not be fitted on (they keep 0.5). Returns None for multiclass.
    """
    if task == "multiclass":
        return None
    if cfg.rule == "fixed":
        return {"rule": "fixed", "level": None, "value": float(cfg.value), "fitted_on": None, "n_val": 0}
    if val is None:
        raise ValueError(f"rule {cfg.rule!r} needs validation predictions")
    prob, truth = _prob_and_truth(val)
    out: dict[str, Any] = {"rule": cfg.rule, "level": cfg.level}
    if task == "binary":
        return out | {"value": fit_threshold(cfg.rule, truth, prob, cfg.level), "fitted_on": "val",
                      "n_val": int(len(truth))}
    fitted = fit_thresholds_per_label(cfg.rule, truth, prob, cfg.level, fallback=np.nan, mask=val.mask)
    values = np.where(np.isnan(fitted), DEFAULT_THRESHOLD, fitted)
    return out | {"value": [float(v) for v in values], "fitted_on": "val", "n_val": int(len(truth)),
                  "fallback": [class_names[k] for k in np.flatnonzero(np.isnan(fitted))]}


def apply_decision_threshold(pred: Predictions, threshold: dict[str, Any] | None) -> Predictions:
    """``pred`` with ``y_pred`` recomputed from its probabilities at the recorded threshold.

    Binary: the positive class where ``prob_pos >= value``; multilabel: label ``k`` where
    ``prob_k >= value[k]``. None (multiclass) and the default fixed 0.5 return ``pred`` unchanged.
    """
    if threshold is None or (threshold["rule"] == "fixed" and threshold["value"] == DEFAULT_THRESHOLD):
        return pred
    prob, _ = _prob_and_truth(pred)
    hit = apply_threshold(prob, np.asarray(threshold["value"], dtype=np.float64))
    if pred.task == "binary":
        other = 1 - pred.positive
        return replace(pred, y_pred=np.where(hit == 1, pred.positive, other).astype(np.int64))
    return replace(pred, y_pred=hit)


def threshold_for_job(suite: Suite, fold: Fold, predict: Callable[[np.ndarray], Predictions]) -> dict[str, Any] | None:
    """Fit the job's threshold after training: predicts the validation rows only when the rule needs them."""
    cfg, task = suite.metrics.threshold, suite.task.type
    val = predict(fold.val) if task != "multiclass" and cfg.rule != "fixed" else None
    return fit_decision_threshold(cfg, val, task, tuple(suite.task.classes))
