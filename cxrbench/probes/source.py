"""The source probe: can a linear model tell which source (hospital, scanner, dataset) an image came from?

When a task's classes come from different sources (e.g. normals from one archive, pneumonias from
another), a network can score by recognising the source instead of the disease. This probe fits
a logistic regression on downsampled pixels to predict each image's source and reports its
cross-validated AUC (patient-grouped folds when the dataset has patient ids); an AUC above
``warn_auc`` (default 0.8) means the source is easy to read from the pixels.

Where the source comes from (:func:`source_labels`): a per-image ``source`` entry of the dataset
table's ``extras`` (the convention for dataset plugins), or the key/column named explicitly
(``--source-column``): any per-image ``extras`` entry (e.g. ``shortcut_marker`` of
``synthetic_cxr`` with ``shortcut: true``), or a column of the CSV the table was read from
(its ``label_file``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cxrbench.errors import DatasetError
from cxrbench.specs import SampleTable

DEFAULT_KEY = "source"
WARN_AUC = 0.8
PIXELS = 16
"""Images are average-pooled to PIXELS x PIXELS before the logistic regression."""
MAX_IMAGES = 2000


def _per_row(value: Any, n: int) -> bool:
    return isinstance(value, (list, tuple, np.ndarray)) and len(value) == n and np.ndim(value) == 1


def _csv_column(table: SampleTable, column: str) -> np.ndarray | None:
    """``column`` of the CSV a ``csv`` dataset was read from, aligned to the table's rows (by image path)."""
    csv, root = table.label_file, table.root
    if not csv or not root or not Path(csv).is_file():
        return None
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    if column not in df.columns:
        return None
    from cxrbench.data.datasets.csv_table import PATH_COLUMNS, _column

    path_col = _column(df, PATH_COLUMNS)
    if path_col is None:
        return None
    base = Path(csv).parent
    by_path = {os.path.normpath(base / os.path.expanduser(str(p).strip())): v for p, v in zip(df[path_col], df[column])}
    values = [by_path.get(os.path.normpath(Path(root) / sid)) for sid in table.ids]
    if any(v is None for v in values):
        return None
    return np.asarray(values, dtype=object)


def source_labels(table: SampleTable, column: str | None = None) -> tuple[np.ndarray | None, str]:
    """Per-row source labels and where they came from, or ``(None, why not)``.

    ``column`` None uses ``extras["source"]`` when the dataset provides it. A named column that
    does not exist raises :class:`DatasetError` listing the per-image keys there are.
    """
    n = len(table)
    key = column or DEFAULT_KEY
    value = table.extras.get(key)
    if _per_row(value, n):
        return np.asarray(value), f"dataset extras[{key!r}]"
    if column is None:
        return None, ("the dataset gives no per-image source; name one with --source-column "
                      "(e.g. shortcut_marker for synthetic_cxr with shortcut: true, or a column of a csv dataset)")
    from_csv = _csv_column(table, column)
    if from_csv is not None:
        return from_csv, f"column {column!r} of {table.label_file}"
    keys = sorted(k for k, v in table.extras.items() if _per_row(v, n))
    raise DatasetError(f"--source-column {column!r}: the dataset has no such per-image value "
                       f"(per-image extras: {', '.join(keys) or 'none'}"
                       f"{'; nor is it a column of ' + str(table.label_file) if table.label_file else ''})")


def pixel_features(images: np.ndarray, pixels: int = PIXELS) -> np.ndarray:
    """uint8 ``(N, C, H, W)`` -> ``(N, C * pixels * pixels)`` float features in [0, 1] (area downsampling)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return F.adaptive_avg_pool2d(x, pixels).flatten(1).numpy()


def source_probe(images: np.ndarray, sources: np.ndarray, groups: np.ndarray | None = None, *,
                 labels: np.ndarray | None = None, class_names: list[str] | None = None, folds: int = 5,
                 warn_auc: float = WARN_AUC, max_images: int = MAX_IMAGES, seed: int = 0) -> dict[str, Any]:
    """Cross-validated AUC of a logistic regression predicting ``sources`` from ``images``' pixels.

    ``groups`` (patient ids) keep a patient's images in one fold; ``labels`` (single-label class
    indices) add a source x class count table. At most ``max_images`` rows are used (a seeded
    sample). Multi-source AUC is the macro one-vs-rest AUC.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = np.asarray([str(s) for s in sources])
    values, y = np.unique(names, return_inverse=True)
    out: dict[str, Any] = {"n_images": len(y), "sources": {str(v): int(c) for v, c in zip(values, np.bincount(y))},
                           "warn_auc": warn_auc, "auc": None, "warning": False,
                           "model": f"logistic regression on {PIXELS}x{PIXELS} pooled pixels"}
    if labels is not None and np.ndim(labels) == 1:
        tab = pd.crosstab(pd.Series(names, name="source"), pd.Series(np.asarray(labels), name="class"))
        out["by_class"] = {str(s): {(class_names[int(c)] if class_names else str(c)): int(tab.at[s, c])
                                    for c in tab.columns} for s in tab.index}
    if len(values) < 2:
        return out | {"status": "skipped", "message": "only one source: nothing to tell apart"}
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(y), max_images, replace=False)) if len(y) > max_images else np.arange(len(y))
    y_used = y[rows]
    k = int(min(folds, np.bincount(y_used, minlength=len(values)).min()))
    if k < 2:
        return out | {"status": "skipped", "message": "a source has fewer than 2 images: cannot cross-validate"}
    if groups is not None:
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        group_arg = np.asarray(groups)[rows]
    else:
        cv, group_arg = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed), None
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    with warnings.catch_warnings():  # small folds: convergence / least-populated-class chatter
        warnings.simplefilter("ignore")
        prob = cross_val_predict(clf, pixel_features(images[rows]), y_used, groups=group_arg, cv=cv,
                                 method="predict_proba")
    auc = float(roc_auc_score(y_used, prob[:, 1]) if len(values) == 2
                else roc_auc_score(y_used, prob, multi_class="ovr", average="macro"))
    warn = auc > warn_auc
    message = (f"the image source is easy to recognise from the pixels (cross-validated AUC {auc:.3f} > {warn_auc:g}); "
               "if the sources differ in class mix, a model can score by recognising the source instead of the disease"
               if warn else f"the image source is not easily recognised from the pixels "
                            f"(AUC {auc:.3f} <= {warn_auc:g})")
    return out | {"status": "ok", "auc": auc, "warning": bool(warn), "folds": k, "n_used": len(rows),
                  "grouped": groups is not None, "message": message}
