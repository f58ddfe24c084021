"""The predictions CSV: one row per scored image, enough to recompute any metric.

Columns: ``sample_id``, ``patient_id``, then the true and predicted label(s), then one ``prob_<class>``
column per class (in ``class_names`` order). Single-label tasks: ``y_true``/``y_pred`` are class
indices. Multilabel: ``true_<label>``, ``pred_<label>`` (0/1) for every label; an empty ``true_<label>``
cell is a label not annotated for that row (``Predictions.mask`` False), read back as such.
Probabilities are written with 8 significant digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cxrbench.models.predict import split_unknown
from cxrbench.results.store import write_atomic
from cxrbench.specs import Predictions


def predictions_csv(pred: Predictions, ids: Sequence[str], patients: Sequence[str] | None) -> bytes:
    """The CSV of ``pred`` for the images ``ids`` (and their ``patients``; empty when None)."""
    cols: dict[str, Any] = {"sample_id": list(ids), "patient_id": list(patients) if patients else [""] * len(ids)}
    names = list(pred.class_names)
    if pred.task == "multilabel":
        truth = np.asarray(pred.y_true, dtype=np.float64 if pred.mask is not None else None)
        if pred.mask is not None:
            truth = np.where(pred.mask, truth, np.nan)
        for j, name in enumerate(names):
            cols[f"true_{name}"] = pd.array(truth[:, j]).astype("Int64") if pred.mask is not None else truth[:, j]
        for j, name in enumerate(names):
            cols[f"pred_{name}"] = pred.y_pred[:, j]
    else:
        cols["y_true"] = pred.y_true
        cols["y_pred"] = pred.y_pred
    for j, name in enumerate(names):
        cols[f"prob_{name}"] = pred.y_prob[:, j]
    return pd.DataFrame(cols).to_csv(index=False, float_format="%.8g").encode("utf-8")


def write_predictions(path: str | Path, pred: Predictions, ids: Sequence[str],
                      patients: Sequence[str] | None) -> Path:
    """:func:`predictions_csv` written atomically to ``path``; returns it."""
    return write_atomic(path, predictions_csv(pred, ids, patients))


@dataclass(frozen=True)
class StoredPredictions:
    """A predictions CSV read back: the :class:`Predictions` and the image (and patient) of each row."""

    pred: Predictions
    sample_ids: list[str]
    patient_ids: list[str]

    def aligned_to(self, other: "StoredPredictions") -> "StoredPredictions | None":
        """These predictions in ``other``'s row order; None when the two files hold different images."""
        if len(self.sample_ids) != len(other.sample_ids) or set(self.sample_ids) != set(other.sample_ids):
            return None
        order = pd.Series(np.arange(len(self.sample_ids)), index=self.sample_ids).loc[other.sample_ids].to_numpy()
        return StoredPredictions(self.pred.subset(order), list(other.sample_ids),
                                 [self.patient_ids[i] for i in order])


def read_predictions(path: str | Path, class_names: Sequence[str], task: str, positive: int = 1) -> StoredPredictions:
    """Load a predictions CSV (raises ``OSError``, ``KeyError`` for a missing column, ``ValueError``)."""
    df = pd.read_csv(path, dtype={"sample_id": str, "patient_id": str})
    names = list(class_names)
    prob = df[[f"prob_{c}" for c in names]].to_numpy(dtype=np.float64)
    mask = None
    if task == "multilabel":
        y_true, mask = split_unknown(df[[f"true_{c}" for c in names]].to_numpy(dtype=np.float64))
        y_pred = df[[f"pred_{c}" for c in names]].to_numpy(dtype=int)
    else:
        y_true, y_pred = df["y_true"].to_numpy(dtype=int), df["y_pred"].to_numpy(dtype=int)
    patients = df["patient_id"].fillna("").tolist() if "patient_id" in df else [""] * len(df)
    return StoredPredictions(Predictions(y_true, prob, y_pred, task, tuple(names), positive, mask=mask),
                             df["sample_id"].tolist(), patients)
