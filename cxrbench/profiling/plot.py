"""Accuracy-vs-latency Pareto plot (matplotlib, PNG and SVG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pareto_front(points: list[dict[str, Any]], higher_is_better: bool = True) -> list[dict[str, Any]]:
    """The points no other point beats on both latency (lower ``p90_ms``) and ``metric``, by latency."""
    sign = 1 if higher_is_better else -1
    front, best = [], -float("inf")
    for p in sorted(points, key=lambda p: (p["p90_ms"], -sign * p["metric"])):
        if sign * p["metric"] > best:
            front.append(p)
            best = sign * p["metric"]
    return front


def _annotate(ax: Any, points: list[tuple[dict[str, Any], bool]], char_width: float = 0.0105,
              line_height: float = 0.045) -> None:
    """Name the Pareto-front points, then every other point whose name would not overprint one
    already written (greedy, label boxes in axes fractions); the rest stay unnamed (the report's
    latency table lists them all)."""
    import math

    lo_x, hi_x = (math.log10(v) for v in ax.get_xlim())
    lo_y, hi_y = ax.get_ylim()
    boxes: list[tuple[float, float, float, float]] = []
    for p, _ in sorted(points, key=lambda item: (not item[1], item[0]["p90_ms"])):  # front first, then left to right
        x = (math.log10(p["p90_ms"]) - lo_x) / ((hi_x - lo_x) or 1) + 0.006
        y = (p["metric"] - lo_y) / ((hi_y - lo_y) or 1) + 0.01
        box = (x, x + char_width * len(str(p["model"])), y, y + line_height)
        if any(box[0] < b[1] and b[0] < box[1] and box[2] < b[3] and b[2] < box[3] for b in boxes):
            continue
        boxes.append(box)
        ax.annotate(str(p["model"]), (p["p90_ms"], p["metric"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)


def pareto_plot(points: list[dict[str, Any]], primary: str, out_path: str | Path,
                higher_is_better: bool = True, title: str | None = None) -> list[Path]:
    """Plot ``metric`` against p90 latency (log scale), one series per device, Pareto fronts drawn.

    ``points``: dicts with ``model``, ``metric``, ``p90_ms`` and ``device``. Writes
    ``out_path`` with suffix ``.png`` and ``.svg``; returns both paths.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the Pareto plot needs matplotlib: pip install matplotlib") from exc
    points = [p for p in points if p.get("p90_ms") and p.get("metric") is not None and p["p90_ms"] > 0]
    if not points:
        raise ValueError("no points with both a p90 latency and a metric value to plot")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    markers = "osD^v<>P*X"
    labelled: list[tuple[dict[str, Any], bool]] = []
    for i, device in enumerate(sorted({str(p["device"]) for p in points})):
        pts = [p for p in points if str(p["device"]) == device]
        front = pareto_front(pts, higher_is_better)
        scatter = ax.scatter([p["p90_ms"] for p in pts], [p["metric"] for p in pts], marker=markers[i % len(markers)],
                             label=device, alpha=0.8, zorder=3)
        color = scatter.get_facecolor()[0]
        ax.step([p["p90_ms"] for p in front], [p["metric"] for p in front], where="post", color=color,
                linewidth=1.5, alpha=0.7, zorder=2)
        ax.scatter([p["p90_ms"] for p in front], [p["metric"] for p in front], s=120, facecolors="none",
                   edgecolors=color, linewidths=1.5, zorder=4)
        labelled.extend((p, p in front) for p in pts)
    ax.set_xscale("log")
    _annotate(ax, labelled)
    ax.set_xlabel("p90 latency (ms, log scale)")
    ax.set_ylabel(primary)
    ax.set_title(title or f"{primary} vs latency (circled: Pareto front per device)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="device")
    fig.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path)
    plt.close(fig)
    return paths
