"""The predictions file anyone can recompute every metric from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench.specs import Predictions


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
