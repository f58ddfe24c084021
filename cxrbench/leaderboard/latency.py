"""Latency next to accuracy: each board's measured latency per device, and its Pareto plot.

Latency comes from the records :mod:`cxrbench.results.latency` reads: the suite runs' own
profiles (``profile.latency``) and files imported from edge devices (``cxrbench results import``).
One setting is shown per table (default: the torch runtime, 1 thread, batch 1: the MLPerf
single-stream case), one column per device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cxrbench.leaderboard.table import Board
from cxrbench.results.latency import latest_records, load_latency_records
from cxrbench.results.store import LATENCY_DIR

COLUMNS = ["model", "device", "runtime", "threads", "batch_size", "median_ms", "median_ci_ms", "p90_ms",
           "p90_ci_ms", "iqr_over_median",
           "unstable", "n_samples", "measured_at"]


@dataclass(frozen=True)
class LatencySetting:
    """Which latency records a leaderboard shows."""

    runtime: str = "torch"
    threads: int = 1
    batch_size: int = 1
    device: str | None = None
    """Only this device name (None: every device, one column each)."""

    def describe(self) -> str:
        where = f", device {self.device}" if self.device else ""
        return f"{self.runtime}, {self.threads} thread{'s' * (self.threads != 1)}, batch {self.batch_size}{where}"


def board_latency(records: list[dict[str, Any]], board: Board,
                  setting: LatencySetting | None = None) -> list[dict[str, Any]]:
    """The latency records that belong to ``board``: the newest ``ok`` one per (device, model, runtime,
    threads, batch size) of its suite and models (only those matching ``setting``, when given).

    The one selection rule of the leaderboard and the report. Records of runs other than the board's
    are ignored (they measured other weights); imported device files count for every board of their
    suite. Between a run's own profile and an import from the same device, the newer wins.
    """
    runs = set(board.runs)
    models = set(board.rows.model) if not board.rows.empty else set()

    def imported(r: dict[str, Any]) -> bool:
        return f"/{LATENCY_DIR}/" in r.get("source", "") or r.get("run") is None

    def matches(r: dict[str, Any]) -> bool:
        return setting is None or (r["runtime"] == setting.runtime and r["threads"] == setting.threads
                                   and r["batch_size"] == setting.batch_size
                                   and (setting.device is None or r["device_name"] == setting.device))

    # filter first: the newest record of another run must not hide this board's own
    return latest_records([r for r in records if r.get("suite") == board.suite and r["model"] in models
                           and (imported(r) or r.get("run") in runs) and matches(r)])


def latency_table(records: list[dict[str, Any]], board: Board, setting: LatencySetting) -> pd.DataFrame:
    """:func:`board_latency` of ``setting`` as a table, one row per (model, device)."""
    rows = [{**{c: r.get(c) for c in COLUMNS}, "device": r["device_name"]}
            for r in board_latency(records, board, setting)]
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["device", "model"]).reset_index(drop=True)


def attach_latency(boards: list[Board], results_root: str | Path,
                   setting: LatencySetting = LatencySetting()) -> list[Board]:
    """Fill each board's ``latency`` (a :func:`latency_table`) and ``latency_setting``; returns ``boards``."""
    for board in boards:
        records = load_latency_records(results_root, suite=board.suite)
        board.latency = latency_table(records, board, setting)
        board.latency_setting = setting.describe()
    return boards


def pareto_points(board: Board) -> list[dict[str, Any]]:
    """``pareto_plot`` points: the primary metric (mean) against p90 latency, per device."""
    if board.latency is None or board.latency.empty or board.rows.empty:
        return []
    metric = dict(zip(board.rows.model, board.rows[f"{board.primary}_mean"]))
    return [{"model": r["model"], "device": r["device"], "p90_ms": r["p90_ms"], "median_ms": r["median_ms"],
             "metric": metric[r["model"]]}
            for r in board.latency.to_dict("records")
            if r["model"] in metric and r["p90_ms"] and not math.isnan(metric[r["model"]])]


def plot_pareto(board: Board, out_path: str | Path) -> list[Path]:
    """Draw ``board``'s accuracy-vs-p90-latency Pareto plot to ``out_path`` (.png and .svg)."""
    from cxrbench.profiling.plot import pareto_plot

    points = pareto_points(board)
    if not points:
        raise ValueError(f"suite {board.suite!r}: no latency records match ({board.latency_setting}); "
                         "profile with `profile.latency.enabled: true` in the suite or `cxrbench profile --suite`")
    return pareto_plot(points, board.primary, out_path, higher_is_better=board.higher_is_better,
                       title=f"{board.suite}: {board.primary} vs p90 latency ({board.latency_setting})")
