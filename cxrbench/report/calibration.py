"""What the report's reliability diagram plots, and the ECE its caption quotes.

* binary: the positive-class probability against the observed positive rate (the question a
  reader asks of a screening score: "of the images scored 0.8, are 80% positive?");
* multiclass: the top-label confidence against accuracy (Guo et al., 2017), exactly the ``ece`` metric;
* multilabel: every (image, label) cell pooled, the label's probability against the observed
  positive rate, exactly the ``ece`` metric.

The bins and the binning rule are :func:`cxrbench.metrics.calibration.reliability_curve`'s (15
equal-width bins), and the quoted ECE is that curve's ``sum(count * |accuracy - confidence|) / sum(count)``.
For binary tasks it equals the top-label ``ece`` metric except in the bin straddling 0.5 (the 15
bins are symmetric about 0.5); when the two differ the caption quotes both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrbench.metrics.calibration import N_BINS, expected_calibration_error, reliability_curve
from cxrbench.specs import Predictions


def reliability_view(pred: Predictions) -> tuple[Predictions, str, str]:
    """The predictions the diagram is drawn from, its x-axis label and its y-axis label.

    A binary task becomes a one-label multilabel view of the positive class, so the calibration
    module's per-cell binning compares the positive-class probability with the positive rate.
    """
    if pred.task == "binary":
        name = pred.class_names[pred.positive]
        truth = (np.asarray(pred.y_true) == pred.positive).astype(np.int64)[:, None]
        prob = np.asarray(pred.y_prob, dtype=np.float64)[:, [pred.positive]]
        view = Predictions(truth, prob, (prob >= 0.5).astype(np.int64), "multilabel", (name,))
        return view, f"predicted probability of {name}", f"observed rate of {name}"
    if pred.task == "multilabel":
        return pred, "predicted probability (every image x label)", "observed positive rate"
    return pred, "confidence (top-class probability)", "accuracy"


def reliability_data(pred: Predictions, n_bins: int = N_BINS) -> dict[str, Any]:
    """Everything the report shows: the ``curve``, its ``ece``, axis labels and a ``caption``."""
    view, xlabel, ylabel = reliability_view(pred)
    curve = reliability_curve(view, n_bins)
    ece = float(expected_calibration_error(view, np.ones((1, len(view.y_true))), n_bins)[0])
    kind = {"binary": f"positive class {pred.class_names[pred.positive]}",
            "multiclass": "top-label confidence", "multilabel": "all labels pooled"}[pred.task]
    caption = f"ECE {ece:.4f} ({kind}; {n_bins} equal-width bins; {int(curve['count'].sum())} samples)"
    if pred.task == "binary":  # the `ece` metric bins the top-label confidence: equal but for the middle bin
        top = float(expected_calibration_error(pred, np.ones((1, len(pred.y_true))), n_bins)[0])
        if f"{top:.4f}" != f"{ece:.4f}":
            caption += f"; top-label ECE (the ece metric) {top:.4f}"
    return {"curve": curve, "ece": ece, "xlabel": xlabel, "ylabel": ylabel, "kind": kind, "caption": caption}
