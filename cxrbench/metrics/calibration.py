"""Calibration of predicted probabilities: Brier score, expected calibration error, reliability curve.

Both metrics are lower-is-better and :func:`~cxrbench.metrics.bootstrap.row_weighted`.

* ``brier``: binary, sklearn's ``brier_score_loss`` on the positive-class probability (mean of
  ``(p - y)^2``, in [0, 1]); multiclass, the mean over rows of ``sum_k (p_k - onehot_k)^2`` (sklearn's
  multiclass ``brier_score_loss``, unhalved, in [0, 2]); multilabel, the mean over labels of each
  label's binary Brier score (= the mean over all ``N*K`` cells).
* ``ece``: ``sum_m |B_m|/n * |acc(B_m) - conf(B_m)|`` over ``n_bins`` equal-width bins of [0, 1],
  bin ``m`` holding confidences in ``(edges[m], edges[m+1]]`` (0 goes to the first bin). Binary and
  multiclass: a row's confidence is its largest probability and it is "accurate" when that argmax
  class is the true class (Guo et al., 2017). Multilabel: every cell ``(i, k)`` is a sample, its
  confidence the label's probability and its accuracy the 0/1 label itself, so a bin compares the
  mean predicted probability with the observed positive rate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cxrbench.metrics.bootstrap import row_weighted
from cxrbench.metrics.classification import _div, _indicators, _known
from cxrbench.specs import Predictions

N_BINS = 15


@row_weighted
def brier(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Brier score: binary on the positive class, multiclass summed over classes, multilabel mean over labels."""
    k = len(pred.class_names)
    truth = _indicators(pred.y_true, pred.task, k)
    sq = (np.asarray(pred.y_prob, dtype=np.float64) - truth) ** 2
    if pred.task == "binary":
        per_row = sq[:, pred.positive]
    elif pred.task == "multiclass":
        per_row = sq.sum(axis=1)
    else:
        m = _known(pred)
        if m is not None:  # mean over the known cells
            return _div(w @ (sq * m).sum(axis=1), w @ m.sum(axis=1), math.nan)
        per_row = sq.mean(axis=1)
    return _div(w @ per_row, w.sum(axis=1), math.nan)


def _confidence_and_hit(pred: Predictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(conf, hit, known)`` all ``(N, C)``: C = 1 column (single-label) or one per label
    (multilabel); ``known`` is 1 for a cell that counts (0 for a masked label)."""
    prob = np.asarray(pred.y_prob, dtype=np.float64)
    if pred.task == "multilabel":
        m = _known(pred)
        return prob, (np.asarray(pred.y_true) != 0).astype(np.float64), np.ones_like(prob) if m is None else m
    top = prob.argmax(axis=1)
    conf = prob[np.arange(len(prob)), top]
    return conf[:, None], (top == np.asarray(pred.y_true)).astype(np.float64)[:, None], np.ones((len(prob), 1))


def _bin_index(conf: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges and each confidence's bin: ``(edges[m], edges[m+1]]``, 0 in the first bin."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    return edges, idx


def _per_bin(values: np.ndarray, idx: np.ndarray, n_bins: int) -> np.ndarray:
    """``(N, C)`` cell values summed into ``(N, n_bins)`` per-row bin totals."""
    out = np.zeros((values.shape[0], n_bins))
    rows = np.broadcast_to(np.arange(values.shape[0])[:, None], values.shape)
    np.add.at(out, (rows.ravel(), idx.ravel()), values.ravel())
    return out


def _check_bins(n_bins: int) -> None:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")


def expected_calibration_error(pred: Predictions, w: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Row-weighted ECE ``(B,)`` with ``n_bins`` equal-width bins (see the module docstring)."""
    _check_bins(n_bins)
    conf, hit, known = _confidence_and_hit(pred)
    _, idx = _bin_index(conf, n_bins)
    gap = w @ _per_bin((hit - conf) * known, idx, n_bins)  # (B, n_bins): sum over the bin of (acc - conf)
    return _div(np.abs(gap).sum(axis=1), w @ known.sum(axis=1), math.nan)


@row_weighted
def ece(pred: Predictions, w: np.ndarray) -> np.ndarray:
    """Expected calibration error, 15 equal-width bins (max-prob confidence; multilabel: per cell)."""
    return expected_calibration_error(pred, w, N_BINS)


def reliability_curve(pred: Predictions, n_bins: int = N_BINS) -> dict[str, Any]:
    """Per-bin data for a reliability diagram, with the same bins and confidences as :func:`ece`.

    Returns ``bin_edges`` (``n_bins + 1``), and per bin the mean ``confidence``, the ``accuracy``
    (multilabel: observed positive rate), both nan for an empty bin, and the ``count`` of samples
    (rows; multilabel: cells). ``ece == sum(count * |accuracy - confidence|) / sum(count)``.
    """
    _check_bins(n_bins)
    conf, hit, known = _confidence_and_hit(pred)
    edges, idx = _bin_index(conf, n_bins)
    count = np.rint(np.bincount(idx.ravel(), weights=known.ravel(), minlength=n_bins))
    conf_sum = np.bincount(idx.ravel(), weights=(conf * known).ravel(), minlength=n_bins)
    hit_sum = np.bincount(idx.ravel(), weights=(hit * known).ravel(), minlength=n_bins)
    return {"bin_edges": edges, "confidence": _div(conf_sum, count, math.nan),
            "accuracy": _div(hit_sum, count, math.nan), "count": count.astype(np.int64)}
