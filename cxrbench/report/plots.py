"""The report's figures: matplotlib (object API, no pyplot state), each saved as one PNG."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from cxrbench.results.store import write_atomic

DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return write_atomic(path, buffer.getvalue())


def curves_plot(curves: dict[str, list[float]], best_epoch: int | None, path: Path) -> Path:
    """Loss (train/val) and validation metrics per epoch, best epoch marked; LR on a third panel when it varies."""
    epochs = curves.get("epoch") or list(range(1, len(curves.get("train_loss", [])) + 1))
    metrics = [k for k in curves if k.startswith("val_") and k != "val_loss"]
    lr = curves.get("lr") or []
    show_lr = len(set(lr)) > 1
    fig = Figure(figsize=(10 if show_lr else 7.5, 3.2))
    axes = fig.subplots(1, 3 if show_lr else 2)
    ax = axes[0]
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        if curves.get(key):
            ax.plot(epochs, curves[key], style, markersize=3, label=key.replace("_", " "))
    ax.set_title("loss")
    ax = axes[1]
    for key in metrics:
        ax.plot(epochs, curves[key], "-o", markersize=3, label=key.removeprefix("val_"))
    ax.set_title("validation metrics" if metrics else "no validation metrics recorded")
    if show_lr:
        axes[2].plot(epochs, lr, "-o", markersize=3, color="tab:gray")
        axes[2].set_title("learning rate")
        axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if best_epoch:
            ax.axvline(best_epoch, color="tab:red", linestyle=":", linewidth=1, label=f"best epoch ({best_epoch})")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def roc_plot(curves: list[dict[str, Any]], title: str, path: Path) -> Path:
    """ROC curves: ``curves`` items have ``name``, ``fpr``, ``tpr`` and ``auc``."""
    fig = Figure(figsize=(4.8, 4.2))
    ax = fig.subplots()
    for c in curves:
        ax.plot(c["fpr"], c["tpr"], linewidth=1.5, label=f"{c['name']} (AUC {c['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7 if len(curves) > 4 else 8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def _heatmap(ax: Any, cm: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str) -> None:
    ax.imshow(cm, cmap="Blues", vmin=0)
    peak = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=9,
                    color="white" if peak and cm[i, j] > peak / 2 else "black")
    long = max(map(len, cols)) > 6
    ax.set_xticks(range(len(cols)), cols, rotation=30 if long else 0, ha="right" if long else "center", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(title, fontsize=9)


def confusion_plot(cm: np.ndarray, classes: Sequence[str], path: Path) -> Path:
    """Heatmap of a ``(K, K)`` confusion matrix (rows true, columns predicted) or ``(K, 2, 2)`` per label."""
    cm = np.asarray(cm)
    if cm.ndim == 3:
        k = len(classes)
        ncols = min(k, 5)
        nrows = math.ceil(k / ncols)
        fig = Figure(figsize=(2.1 * ncols, 2.1 * nrows))
        axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
        for j, ax in enumerate(axes):
            if j < k:
                _heatmap(ax, cm[j], ["neg", "pos"], ["neg", "pos"], str(classes[j]))
            else:
                ax.axis("off")
        fig.supxlabel("predicted", fontsize=9)
        fig.supylabel("true", fontsize=9)
    else:
        side = max(3.6, 0.55 * len(classes) + 2)
        fig = Figure(figsize=(side, side * 0.9))
        ax = fig.subplots()
        _heatmap(ax, cm, classes, classes, "confusion matrix (test)")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.tight_layout()
    return _save(fig, path)


def image_grid(images: list[np.ndarray], captions: list[str], path: Path, ncols: int = 4,
               cell: float = 2.2) -> Path:
    """A grid of uint8 images (``(H, W)``, ``(H, W, 3)`` or ``(C, H, W)``) with a caption under each."""
    n = max(len(images), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(cell * ncols, (cell + 0.45) * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, img, caption in zip(axes, images, captions):
        img = np.asarray(img)
        if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
            img = img.transpose(1, 2, 0)
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(caption, fontsize=7.5)
    fig.tight_layout()
    return _save(fig, path)


def reliability_plot(curve: dict[str, Any], title: str, path: Path, xlabel: str = "confidence",
                     ylabel: str = "accuracy / positive rate") -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, bin counts below."""
    edges = np.asarray(curve["bin_edges"], dtype=float)
    acc = np.asarray(curve["accuracy"], dtype=float)
    conf = np.asarray(curve["confidence"], dtype=float)
    count = np.asarray(curve["count"], dtype=float)
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig = Figure(figsize=(4.8, 4.6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = ~np.isnan(acc)
    top.bar(centers[filled], acc[filled], width=width[filled], edgecolor="black", linewidth=0.5, alpha=0.8,
            label="observed")
    top.plot(conf[filled], acc[filled], "o", color="tab:orange", markersize=3, label="mean confidence")
    top.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel(ylabel)
    top.set_title(title)
    top.legend(fontsize=7, loc="upper left")
    top.grid(True, alpha=0.3)
    bottom.bar(centers, count, width=width, color="tab:gray", edgecolor="black", linewidth=0.5)
    bottom.set_xlim(0, 1)
    bottom.set_xlabel(xlabel)
    bottom.set_ylabel("count")
    fig.tight_layout()
    return _save(fig, path)


def cost_plot(points: list[dict[str, Any]], primary: str, path: Path) -> Path:
    """``primary`` against MACs (log scale): ``points`` have ``model``, ``macs``, ``metric`` and optional ``std``."""
    points = [p for p in points if p.get("macs") and p.get("metric") is not None and not math.isnan(p["metric"])]
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    for p in points:
        ax.errorbar(p["macs"] / 1e6, p["metric"], yerr=p.get("std") or None, fmt="o", capsize=3)
        ax.annotate(str(p["model"]), (p["macs"] / 1e6, p["metric"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    if points:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.set_xlabel("MACs per image (millions, log scale)")
    ax.set_ylabel(primary)
    ax.set_title(f"{primary} vs compute" if points else "no model with both MACs and a metric")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
