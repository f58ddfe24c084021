"""The confusion matrix as a PNG (only if matplotlib is installed)."""

from __future__ import annotations

from typing import Any, Sequence


def confusion_figure(matrix: Sequence[Sequence[float]], classes: Sequence[str]) -> Any | None:
    """A matplotlib ``Figure`` of a square confusion matrix, or ``None`` (no matplotlib, not square).

    Uses ``matplotlib.figure.Figure`` directly, not pyplot, so no global figure state or GUI backend.
    """
    try:
        import numpy as np
        from matplotlib.figure import Figure
    except ImportError:
        return None
    cm = np.asarray(matrix, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.size == 0:
        return None  # multilabel records hold one 2x2 matrix per class
    names = list(classes) if len(classes) == cm.shape[0] else [str(i) for i in range(cm.shape[0])]
    size = 2.5 + 0.5 * len(names)
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="true",
           title="confusion matrix (test)")
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    threshold = cm.max() / 2 if cm.max() > 0 else 0.5
    for (i, j), value in np.ndenumerate(cm):
        ax.text(j, i, f"{value:g}", ha="center", va="center",
                color="white" if value > threshold else "black")
    return fig
