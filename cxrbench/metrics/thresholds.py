"""Decision thresholds for binary (and per-label multilabel) tasks, fitted on validation predictions.

The engine fits a threshold on the validation split and applies it unchanged to test; these are
pure functions of the arrays they are given. A threshold ``t`` predicts positive when
``prob >= t``. Rules:

* ``fixed``: ``level`` if given, else 0.5.
* ``youden``: maximises Youden's J = sensitivity + specificity - 1 over the ROC thresholds (the
  distinct validation scores). Ties go to the threshold closest to 0.5, then to the higher one.
* ``sensitivity``: the highest threshold whose validation sensitivity is ``>= level`` (a screening
  operating point: as few false positives as possible while missing at most ``1 - level``).
* ``specificity``: the lowest threshold whose validation specificity is ``>= level`` (as many
  positives found as possible while flagging at most ``1 - level`` of the negatives). When even the
  highest score gives too many false positives, the threshold is just above that score
  (``np.nextafter``), so nothing in validation is predicted positive.

``youden``, ``sensitivity`` and ``specificity`` return an observed score (as
``sklearn.metrics.roc_curve`` does), so any test score tied with it is predicted positive.
"""

from __future__ import annotations

import numpy as np

from cxrbench.metrics.operating_point import EPS, roc_points

RULES = ("fixed", "youden", "sensitivity", "specificity")
LEVEL_RULES = ("sensitivity", "specificity")
"""Rules that need a target ``level``."""
DEFAULT_THRESHOLD = 0.5


def _binary_inputs(y_true: np.ndarray, prob_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    prob = np.asarray(prob_pos, dtype=np.float64)
    if y.ndim != 1 or prob.shape != y.shape:
        raise ValueError(f"y_true and prob_pos must be 1-D of the same length, got {y.shape} and {prob.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must be 0/1 (1 = positive)")
    return y.astype(bool), prob


def missing_for_rule(rule: str, positive: np.ndarray) -> str | None:
    """What validation labels ``positive`` (boolean ``(N,)``) lack for ``rule`` to be fitted
    (``"both classes"``, ``"a positive"``, ``"a negative"``), or None."""
    has_pos, has_neg = bool(np.any(positive)), not bool(np.all(positive))
    if rule == "youden" and not (has_pos and has_neg):
        return "both classes"
    if rule == "sensitivity" and not has_pos:
        return "a positive"
    if rule == "specificity" and not has_neg:
        return "a negative"
    return None


def fit_threshold(rule: str, y_true: np.ndarray, prob_pos: np.ndarray, level: float | None = None) -> float:
    """Fit a decision threshold on validation labels ``y_true`` (0/1) and scores ``prob_pos``.

    ``level`` is the threshold for ``fixed`` (default 0.5) and the target rate in (0, 1] for
    ``sensitivity`` / ``specificity``; ``youden`` ignores it. Raises ``ValueError`` for an unknown
    rule, a bad level, or validation data the rule cannot use (``youden`` needs both classes,
    ``sensitivity`` positives, ``specificity`` negatives).
    """
    if rule not in RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose one of {', '.join(RULES)}")
    if rule == "fixed":
        t = DEFAULT_THRESHOLD if level is None else float(level)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"a fixed threshold must lie in [0, 1], got {t}")
        return t
    if rule in LEVEL_RULES and (level is None or not 0.0 < level <= 1.0):
        raise ValueError(f"rule {rule!r} needs a level in (0, 1], got {level}")
    y, prob = _binary_inputs(y_true, prob_pos)
    missing = missing_for_rule(rule, y)
    if missing:
        raise ValueError(f"rule {rule!r} needs {missing} in the validation labels")
    thresholds, tps, fps = roc_points(prob, y)
    n_pos, n_neg = y.sum(), (~y).sum()
    if rule == "specificity":
        ok = np.flatnonzero(1.0 - fps[0] / n_neg >= level - EPS)  # a prefix: specificity falls as t does
        return float(thresholds[ok[-1]]) if ok.size else float(np.nextafter(thresholds[0], np.inf))
    sens = tps[0] / n_pos
    if rule == "sensitivity":
        return float(thresholds[np.flatnonzero(sens >= level - EPS)[0]])  # thresholds run high to low
    j = sens - fps[0] / n_neg
    best = thresholds[j >= j.max() - EPS]
    dist = np.abs(best - DEFAULT_THRESHOLD)
    return float(best[dist <= dist.min() + EPS].max())


def fit_thresholds_per_label(rule: str, y_true: np.ndarray, prob: np.ndarray, level: float | None = None,
                             fallback: float | None = DEFAULT_THRESHOLD, mask: np.ndarray | None = None) -> np.ndarray:
    """:func:`fit_threshold` for each column of multilabel ``(N, K)`` labels and probabilities.

    A label the rule cannot be fitted on (no positives for ``sensitivity``, no negatives for
    ``specificity``, one class only for ``youden``) gets
    ``fallback``; with ``fallback=None`` the ``ValueError`` propagates. ``mask`` ``(N, K)`` (False =
    not annotated) restricts each label to its known rows. Returns ``(K,)`` thresholds.
    """
    y, p = np.asarray(y_true), np.asarray(prob)
    if y.ndim != 2 or p.shape != y.shape:
        raise ValueError(f"y_true and prob must be (N, K) of the same shape, got {y.shape} and {p.shape}")
    out = np.empty(y.shape[1])
    for k in range(y.shape[1]):
        rows = slice(None) if mask is None else np.asarray(mask[:, k], dtype=bool)
        labels = y[rows, k]
        if fallback is not None and missing_for_rule(rule, labels.astype(bool)):
            out[k] = fallback
        else:
            out[k] = fit_threshold(rule, labels, p[rows, k], level)
    return out


def apply_threshold(prob_pos: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """``1`` where ``prob_pos >= threshold`` else ``0`` (int); a ``(K,)`` threshold applies per column."""
    return (np.asarray(prob_pos) >= np.asarray(threshold)).astype(np.int64)
