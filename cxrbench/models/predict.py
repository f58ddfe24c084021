"""The one predictor: logits on normalised batches -> :class:`~cxrbench.specs.Predictions`.

Training validation, test and external sets, probes, the report and the latency evaluator all
turn model outputs into probabilities, predicted labels and a mean loss here, and every model
input is normalised by :func:`normalize`.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

from cxrbench.specs import Predictions, TaskType

Forward = Callable[[torch.Tensor], torch.Tensor]
"""Maps a normalised float batch ``(B, C, H, W)`` to logits ``(B, K)`` (a model, an ONNX session, ...)."""


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(B, C, H, W)`` -> float model input: ``(x / 255 - mean) / std`` (mean/std ``(1, C, 1, 1)``)."""
    return x.float().div_(255.0).sub_(mean).div_(std)


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Per-label sigmoids (multilabel) or softmax rows (binary, multiclass) of float logits."""
    return torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=1)


def with_unknown_as_nan(labels: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Multilabel 0/1 ``labels`` as float32 with NaN where ``mask`` is False: how the engine carries
    masked labels through its tensors (the loss and :func:`split_unknown` read the NaNs)."""
    out = np.asarray(labels, dtype=np.float32).copy()
    if mask is not None:
        out[~np.asarray(mask, dtype=bool)] = np.nan
    return out


def split_unknown(y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The inverse of :func:`with_unknown_as_nan`: ``(0/1 int64 labels, mask or None when all known)``."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating):
        return y.astype(np.int64), None
    known = ~np.isnan(y)
    labels = np.where(known, y, 0).astype(np.int64)
    return labels, (None if known.all() else known)


def to_predictions(prob: np.ndarray, y_true: np.ndarray, task: TaskType, class_names: tuple[str, ...],
                   positive: int, loss: float | None = None) -> Predictions:
    """Probabilities ``(N, K)`` and labels -> :class:`Predictions` (argmax, or each label at 0.5).

    Multilabel ``y_true`` may be float with NaN where a label is not annotated: that becomes the mask.
    """
    prob = np.asarray(prob, dtype=np.float64)
    mask = None
    if task == "multilabel":
        y_true, mask = split_unknown(y_true)
        y_pred = (prob >= 0.5).astype(int)
    else:
        y_pred = prob.argmax(axis=1)
    return Predictions(np.asarray(y_true), prob, y_pred, task, class_names, positive, loss=loss, mask=mask)


@torch.inference_mode()
def predict(forward: Forward, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], task: TaskType,
            class_names: tuple[str, ...], positive: int,
            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> Predictions:
    """Run ``forward`` over ``(x, y)`` batches; probabilities, and the mean loss when ``loss_fn``.

    Everything stays where ``forward`` put it until the end: one copy to the host, no per-batch sync.
    """
    probs, labels, losses, n = [], [], [], 0
    for x, y in batches:
        logits = torch.as_tensor(forward(x)).float()
        if loss_fn is not None:
            losses.append(loss_fn(logits, y).detach().double() * len(x))
        probs.append(probabilities(logits, task))
        labels.append(y)
        n += len(x)
    k = len(class_names)
    prob = torch.cat(probs).cpu().numpy() if probs else np.zeros((0, k))
    y_true = torch.cat(labels).cpu().numpy() if labels else np.zeros((0, k) if task == "multilabel" else (0,), int)
    loss = float(torch.stack(losses).sum().cpu()) / max(n, 1) if losses else 0.0
    return to_predictions(prob, y_true, task, class_names, positive, loss=loss if loss_fn is not None else None)
