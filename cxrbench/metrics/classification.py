"""Classification metrics of a :class:`~cxrbench.specs.Predictions`, on numpy.

Conventions are scikit-learn's, with ``zero_division=0`` (a 0/0 precision, recall or F1 is 0.0):

* binary: the metric of the positive class ``pred.positive`` (sklearn ``average='binary'``);
* multiclass: macro average over the classes present in ``y_true`` or ``y_pred`` (sklearn's
  ``average='macro'`` without ``labels``); ``*_weighted`` averages by support over all tasks;
* multilabel: macro average over all labels of the ``(N, K)`` 0/1 arrays. ``accuracy`` is the
  label-wise accuracy over all ``N*K`` cells; sklearn's ``accuracy_score`` (every label of a row
  right) is :func:`subset_accuracy`.

Specificity is TN/(TN+FP), averaged like recall. ``roc_auc`` is the positive class's AUC (binary),
the one-vs-rest macro AUC (multiclass; nan unless every class has positives and negatives) or
:func:`mean_auc` (multilabel: the mean over labels that have both classes). ``auprc`` (average
precision) is averaged the same way. Undefined values are nan (AUC or AP of one class only; kappa
when chance agreement is 1; kappa for multilabel); an undefined MCC is 0.0, as in sklearn.

Masked labels (multilabel ``pred.mask``, False = not annotated): each label is computed on its
unmasked rows only (exactly the metric on those rows), a label with no unmasked row is nan (not
evaluated), and every mean over labels (``mean_auc``, macro precision, ...) is over the evaluated
labels; label-wise ``accuracy`` counts known cells only and ``subset_accuracy`` the known labels of
rows that have one.

Every metric except :func:`loss` is :func:`~cxrbench.metrics.bootstrap.row_weighted`: it is
computed from row-weighted counts, so a block of bootstrap resamples costs a few matrix products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrbench.metrics.bootstrap import row_weighted
from cxrbench.metrics.operating_point import roc_points
from cxrbench.specs import Predictions


def _div(num: np.ndarray, den: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """``num / den`` with ``fill`` where ``den == 0`` (sklearn's ``zero_division``)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    return np.divide(num, den, out=np.full(num.shape, fill), where=den != 0)


def _indicators(y: np.ndarray, task: str, k: int) -> np.ndarray:
    """Class indices ``(N,)`` (or multilabel 0/1 ``(N, K)``) -> float 0/1 matrix ``(N, K)``."""
    y = np.asarray(y)
    if task == "multilabel":
        return (y != 0).astype(np.float64)
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"class indices must lie in [0, {k}), got values from {y.min()} to {y.max()}")
    return np.eye(k)[y]


def _known(pred: Predictions) -> np.ndarray | None:
    """The multilabel mask as float ``(N, K)`` (1 = annotated), or None when every label is known."""
    if pred.task != "multilabel" or pred.mask is None:
        return None
    return np.asarray(pred.mask, dtype=bool).astype(np.float64)


@dataclass(frozen=True)
class _Counts:
    """Weighted per-class (one-vs-rest) or per-label counts, each ``(B, K)``; ``n`` is ``(B,)``;
    ``n_label`` ``(B, K)`` the weight of the rows where each label is known (``n`` unmasked)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    n: np.ndarray
    n_label: np.ndarray

    @property
    def support(self) -> np.ndarray:
        return self.tp + self.fn

    @property
    def predicted(self) -> np.ndarray:
        return self.tp + self.fp


def _counts(pred: Predictions, w: np.ndarray) -> _Counts:
    k = len(pred.class_names)
    t = _indicators(pred.y_true, pred.task, k)
    p = _indicators(pred.y_pred, pred.task, k)
    n = w.sum(axis=1)
    m = _known(pred)
    if m is None:
        n_label = np.broadcast_to(n[:, None], (w.shape[0], k))
    else:
        t, p, n_label = t * m, p * m, w @ m
    tp = w @ (t * p)
    support = w @ t
    predicted = w @ p
    fp, fn = predicted - tp, support - tp
    return _Counts(tp, fp, fn, n_label - tp - fp - fn, n, n_label)


def _average(pred: Predictions, c: _Counts, per_class: np.ndarray, average: str = "default") -> np.ndarray:
    """Reduce ``(B, K)`` per-class values to ``(B,)`` following the module's conventions."""
    if average == "weighted":
        return _div((per_class * c.support).sum(axis=1), c.support.sum(axis=1))
    if pred.task == "binary":
        return per_class[:, pred.positive]
    if pred.task == "multiclass":
        present = (c.support + c.predicted) > 0
        return _div((per_class * present).sum(axis=1), present.sum(axis=1))
    evaluated = c.n_label > 0  # multilabel: labels with a known row (all of them without a mask)
    return _div((per_class * evaluated).sum(axis=1), evaluated.sum(axis=1), math.nan)


def _precision(c: _Counts) -> np.ndarray:
    return _div(c.tp, c.tp + c.fp)


def _recall(c: _Counts) -> np.ndarray:
    return _div(c.tp, c.tp + c.fn)


def _f1(c: _Counts) -> np.ndarray:
    return _div(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def _specificity(c: _Counts) -> np.ndarray:
    return _div(c.tn, c.tn + c.fp)


@row_weighted
def accuracy(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Fraction of correct predictions; multilabel: label-wise, over all ``N*K`` cells."""
    c = _counts(pred, w)
    if pred.task == "multilabel":
        return _div((c.tp + c.tn).sum(axis=1), c.n_label.sum(axis=1), math.nan)
    return _div(c.tp.sum(axis=1), c.n, math.nan)


@row_weighted
def subset_accuracy(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Fraction of rows whose every label is right (sklearn ``accuracy_score``)."""
    t, p = np.asarray(pred.y_true), np.asarray(pred.y_pred)
    m = _known(pred)
    if t.ndim == 1:
        right = t == p
    elif m is None:
        right = ((t != 0) == (p != 0)).all(axis=1)
    else:  # the known labels of each row; rows with none are left out
        right = (((t != 0) == (p != 0)) | (m == 0)).all(axis=1)
        w = w * (m.sum(axis=1) > 0)
    return _div(w @ right.astype(np.float64), w.sum(axis=1), math.nan)


@row_weighted
def precision(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Precision TP/(TP+FP): positive class, macro over classes, or macro over labels."""
    c = _counts(pred, w)
    return _average(pred, c, _precision(c))


@row_weighted
def recall(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Recall (sensitivity) TP/(TP+FN): positive class, macro over classes, or macro over labels."""
    c = _counts(pred, w)
    return _average(pred, c, _recall(c))


sensitivity = recall


@row_weighted
def specificity(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Specificity TN/(TN+FP): positive class, macro one-vs-rest over classes, or macro over labels."""
    c = _counts(pred, w)
    return _average(pred, c, _specificity(c))


@row_weighted
def f1(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """F1 = 2TP/(2TP+FP+FN): positive class, macro over classes, or macro over labels."""
    c = _counts(pred, w)
    return _average(pred, c, _f1(c))


@row_weighted
def precision_weighted(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Per-class precision averaged with weights = support (sklearn ``average='weighted'``)."""
    c = _counts(pred, w)
    return _average(pred, c, _precision(c), "weighted")


@row_weighted
def recall_weighted(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Per-class recall averaged with weights = support (sklearn ``average='weighted'``)."""
    c = _counts(pred, w)
    return _average(pred, c, _recall(c), "weighted")


@row_weighted
def f1_weighted(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Per-class F1 averaged with weights = support (sklearn ``average='weighted'``)."""
    c = _counts(pred, w)
    return _average(pred, c, _f1(c), "weighted")


@row_weighted
def cohen_kappa(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Cohen's kappa (po - pe) / (1 - pe); nan for multilabel or when pe == 1."""
    if pred.task == "multilabel":
        return np.full(w.shape[0], math.nan)
    c = _counts(pred, w)
    observed = _div(c.tp.sum(axis=1), c.n, math.nan)
    chance = _div((c.support * c.predicted).sum(axis=1), c.n**2, math.nan)
    return _div(observed - chance, 1.0 - chance, math.nan)


def _auc(scores: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC ``(B,)`` of one score column; ties count 1/2; nan for one class."""
    pos = np.flatnonzero(positive)
    neg = np.flatnonzero(~positive.astype(bool))
    neg = neg[np.argsort(scores[neg], kind="stable")]
    neg_scores = scores[neg]
    # cum_neg[:, j]: weight of the j lowest-scoring negatives, so a positive scoring s beats
    # cum_neg[:, lo] negatives and ties cum_neg[:, hi] - cum_neg[:, lo] (lo/hi: left/right insertion).
    cum_neg = np.zeros((w.shape[0], len(neg) + 1))
    np.cumsum(w[:, neg], axis=1, out=cum_neg[:, 1:])
    lo = np.searchsorted(neg_scores, scores[pos], side="left")
    hi = np.searchsorted(neg_scores, scores[pos], side="right")
    w_pos = w[:, pos]
    u = (w_pos * (cum_neg[:, lo] + cum_neg[:, hi])).sum(axis=1) / 2
    return _div(u, w_pos.sum(axis=1) * cum_neg[:, -1], math.nan)


def _class_aucs(pred: Predictions, w: np.ndarray, classes: list[int] | None = None) -> np.ndarray:
    """One-vs-rest (or per-label) AUCs ``(B, len(classes))``."""
    k = len(pred.class_names)
    classes = list(range(k)) if classes is None else classes
    truth = _indicators(pred.y_true, pred.task, k)
    prob = np.asarray(pred.y_prob, dtype=np.float64)
    m = _known(pred)
    cols = [_auc(prob[:, j], truth[:, j], w if m is None else w * m[:, j]) for j in classes]
    return np.stack(cols, axis=1) if cols else np.empty((w.shape[0], 0))


def _mean_defined(values: np.ndarray) -> np.ndarray:
    """Row means over finite entries; nan for a row with none."""
    ok = np.isfinite(values)
    return _div(np.where(ok, values, 0.0).sum(axis=1), ok.sum(axis=1), math.nan)


@row_weighted
def mean_auc(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Mean per-label (one-vs-rest) ROC AUC over labels that have both classes present."""
    return _mean_defined(_class_aucs(pred, w))


@row_weighted
def roc_auc(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """ROC AUC: positive class (binary), one-vs-rest macro (multiclass), mean_auc (multilabel)."""
    if pred.task == "binary":
        return _class_aucs(pred, w, [pred.positive])[:, 0]
    if pred.task == "multiclass":
        return _class_aucs(pred, w).mean(axis=1)  # nan if any class is one-sided, as sklearn refuses
    return _mean_defined(_class_aucs(pred, w))


ppv = precision  # positive predictive value


def _npv(c: _Counts) -> np.ndarray:
    return _div(c.tn, c.tn + c.fn)


@row_weighted
def npv(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Negative predictive value TN/(TN+FN): positive class (binary), else macro over classes/labels."""
    c = _counts(pred, w)
    return _average(pred, c, _npv(c))


def _mcc(n_correct: np.ndarray, n: np.ndarray, t_sum: np.ndarray, p_sum: np.ndarray) -> np.ndarray:
    """sklearn's multiclass MCC from the confusion matrix's trace, total and margins (last axis)."""
    cov_tp = n_correct * n - (t_sum * p_sum).sum(axis=-1)
    cov_pp = n**2 - (p_sum * p_sum).sum(axis=-1)
    cov_tt = n**2 - (t_sum * t_sum).sum(axis=-1)
    den = cov_pp * cov_tt
    return _div(cov_tp, np.sqrt(den))  # 0.0 where undefined, as sklearn


@row_weighted
def mcc(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Matthews correlation (sklearn ``matthews_corrcoef``); multilabel: macro over labels."""
    c = _counts(pred, w)
    if pred.task != "multilabel":
        return _mcc(c.tp.sum(axis=1), c.n, c.support, c.predicted)
    n = c.n_label
    t_sum = np.stack([n - c.support, c.support], axis=-1)
    p_sum = np.stack([n - c.predicted, c.predicted], axis=-1)
    values = _mcc(c.tp + c.tn, n, t_sum, p_sum)
    evaluated = n > 0
    return _div((values * evaluated).sum(axis=1), evaluated.sum(axis=1), math.nan)


def _ap(scores: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted average precision ``(B,)`` (sklearn's step integral); nan unless both classes present."""
    _, tps, fps = roc_points(scores, positive, w)
    if tps.shape[1] == 0:
        return np.full(w.shape[0], math.nan)
    precision = _div(tps, tps + fps)
    recall_gain = np.diff(tps, axis=1, prepend=0.0)  # recall increments, times the positive weight
    ap = _div((recall_gain * precision).sum(axis=1), tps[:, -1], math.nan)
    return np.where(fps[:, -1] > 0, ap, math.nan)


def _class_aps(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """One-vs-rest (or per-label) average precisions ``(B, K)``."""
    k = len(pred.class_names)
    truth = _indicators(pred.y_true, pred.task, k)
    prob = np.asarray(pred.y_prob, dtype=np.float64)
    m = _known(pred)
    return np.stack([_ap(prob[:, j], truth[:, j], w if m is None else w * m[:, j]) for j in range(k)], axis=1)


@row_weighted
def auprc(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Average precision (area under the PR curve, sklearn ``average_precision_score``).

    Positive class (binary), one-vs-rest macro (multiclass; nan unless every class has positives
    and negatives) or the mean over labels that have both (multilabel).
    """
    if pred.task == "binary":
        prob = np.asarray(pred.y_prob, dtype=np.float64)[:, pred.positive]
        return _ap(prob, np.asarray(pred.y_true) == pred.positive, w)
    aps = _class_aps(pred, w)
    return aps.mean(axis=1) if pred.task == "multiclass" else _mean_defined(aps)


def loss(pred: Predictions) -> float:
    """Average loss recorded with the predictions (nan if none); not a function of rows alone."""
    return math.nan if pred.loss is None else float(pred.loss)


def per_label_auc(pred: Predictions) -> dict[str, float]:
    """One-vs-rest (single-label) or per-label (multilabel) ROC AUC by class name; nan if undefined."""
    aucs = _class_aucs(pred, np.ones((1, len(pred.y_true))))[0]
    return {name: float(a) for name, a in zip(pred.class_names, aucs)}


def confusion_matrix(pred: Predictions) -> np.ndarray:
    """``(K, K)`` counts, rows = true class, columns = predicted; multilabel: ``(K, 2, 2)``.

    Same layout as sklearn's ``confusion_matrix(labels=range(K))`` and
    ``multilabel_confusion_matrix`` (``[[tn, fp], [fn, tp]]`` per label).
    """
    k = len(pred.class_names)
    if pred.task == "multilabel":
        c = _counts(pred, np.ones((1, len(pred.y_true))))
        cells = np.stack([c.tn[0], c.fp[0], c.fn[0], c.tp[0]], axis=1)
        return np.rint(cells).astype(np.int64).reshape(k, 2, 2)
    t = _indicators(pred.y_true, pred.task, k)
    p = _indicators(pred.y_pred, pred.task, k)
    return np.rint(t.T @ p).astype(np.int64)


def classification_report(pred: Predictions) -> dict[str, Any]:
    """Per-class precision / recall / f1-score / support, ``macro avg`` and ``weighted avg``.

    Same keys and numbers as sklearn's ``classification_report(labels=range(K),
    target_names=class_names, output_dict=True, zero_division=0)``, plus its ``accuracy`` entry for
    single-label tasks. Unlike the ``precision``/``recall``/``f1`` metrics, ``macro avg`` covers every
    class, including one absent from both truth and predictions (as sklearn's report does).
    """
    c = _counts(pred, np.ones((1, len(pred.y_true))))
    cols = {"precision": _precision(c)[0], "recall": _recall(c)[0], "f1-score": _f1(c)[0]}
    support = c.support[0]
    report: dict[str, Any] = {
        name: {**{m: float(v[j]) for m, v in cols.items()}, "support": float(support[j])}
        for j, name in enumerate(pred.class_names)
    }
    if pred.task != "multilabel":
        report["accuracy"] = float(_div(c.tp[0].sum(), c.n[0], math.nan))
    total = float(support.sum())
    report["macro avg"] = {**{m: float(v.mean()) for m, v in cols.items()}, "support": total}
    report["weighted avg"] = {**{m: float(_div((v * support).sum(), total)) for m, v in cols.items()},
                              "support": total}
    return report
