"""The report's per-model diagnostics computed from a predictions file: ROC curves, the most confident
errors, and the images Grad-CAM explains."""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrbench.specs import Predictions


def roc_curves(pred: Predictions) -> tuple[list[dict[str, Any]], list[str]]:
    """One ROC curve per class (binary: the positive class; multiclass: one-vs-rest; multilabel: per label).

    Returns the curves (``name``, ``fpr``, ``tpr``, ``auc``) and the classes skipped because the
    test set holds only one value of them (AUC undefined).
    """
    from sklearn.metrics import auc, roc_curve

    y, prob, names = np.asarray(pred.y_true), np.asarray(pred.y_prob), pred.class_names
    if pred.task == "binary":
        columns = [(pred.positive, (y == pred.positive).astype(int))]
    elif pred.task == "multiclass":
        columns = [(j, (y == j).astype(int)) for j in range(len(names))]
    else:
        columns = [(j, y[:, j].astype(int)) for j in range(len(names))]
    known = None if pred.task != "multilabel" or pred.mask is None else np.asarray(pred.mask, dtype=bool)
    curves, skipped = [], []
    for j, truth in columns:
        rows = slice(None) if known is None else known[:, j]  # a masked label: its annotated rows only
        truth = truth[rows]
        if truth.size == 0 or truth.min() == truth.max():
            skipped.append(names[j])
            continue
        fpr, tpr, _ = roc_curve(truth, prob[rows, j])
        curves.append({"name": names[j], "fpr": fpr, "tpr": tpr, "auc": float(auc(fpr, tpr))})
    return curves, skipped


def most_confident_errors(sample_ids: list[str], pred: Predictions, n: int) -> list[dict[str, Any]]:
    """The ``n`` wrong test predictions made with the highest confidence.

    Single-label: rows with ``y_pred != y_true``, confidence = probability of the predicted class.
    Multilabel: wrong (row, label) cells, confidence = ``p`` for a false positive, ``1 - p`` for a
    false negative. Ties keep the predictions file's order. ``sample_ids`` name the rows.
    """
    names, prob, ids = pred.class_names, np.asarray(pred.y_prob), sample_ids
    out = []
    if pred.task == "multilabel":
        wrong = np.asarray(pred.y_pred) != np.asarray(pred.y_true)
        if pred.mask is not None:
            wrong &= np.asarray(pred.mask, dtype=bool)  # a label not annotated is never an error
        for i, j in zip(*np.nonzero(wrong)):
            fp = bool(pred.y_pred[i, j])
            kind = "false positive" if fp else "false negative"
            out.append({"sample_id": ids[i], "row": int(i), "true": f"{names[j]}: {'absent' if fp else 'present'}",
                        "pred": f"{names[j]}: {'present' if fp else 'absent'}",
                        "confidence": float(prob[i, j] if fp else 1 - prob[i, j]), "kind": kind,
                        "caption": f"{names[j]}: {kind}"})
    else:
        for i in np.nonzero(np.asarray(pred.y_pred) != np.asarray(pred.y_true))[0]:
            t, p = int(pred.y_true[i]), int(pred.y_pred[i])
            out.append({"sample_id": ids[i], "row": int(i), "true": names[t], "pred": names[p],
                        "confidence": float(prob[i, p]), "kind": "misclassified",
                        "caption": f"true {names[t]} / pred {names[p]}"})
    out.sort(key=lambda e: -e["confidence"])  # stable: ties keep file order
    return out[:n]


def gradcam_picks(pred: Predictions, per_class: int) -> list[tuple[int, int]]:
    """``(row, class)`` pairs: for each class the ``per_class`` test images of that class (multilabel:
    with that label) the model scores highest on it."""
    prob, y = np.asarray(pred.y_prob), np.asarray(pred.y_true)
    picks = []
    for j in range(len(pred.class_names)):
        members = np.nonzero(y[:, j] == 1 if pred.task == "multilabel" else y == j)[0]  # masked: y is 0
        order = members[np.argsort(-prob[members, j], kind="stable")]
        picks += [(int(i), j) for i in order[:per_class]]
    return picks
