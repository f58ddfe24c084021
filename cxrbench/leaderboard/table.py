"""Aggregate job records into one table per suite: mean +- std over folds and seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench.errors import ResultsError
from cxrbench.results.records import JobRecord
from cxrbench.results.store import RunStore, iter_runs

LOWER_IS_BETTER = {"loss"}
SYNTHETIC_NOTICE = "synthetic data, not clinical images: numbers test the harness, not the models"


@dataclass
class RunData:
    """One run folder: its header and records."""

    header: dict[str, Any]
    records: list[JobRecord]
    path: Path


@dataclass
class Board:
    """One suite's leaderboard."""

    suite: str
    primary: str
    higher_is_better: bool
    metrics: list[str]
    rows: pd.DataFrame
    runs: list[str]
    synthetic: bool
    dataset: str
    failed: list[dict[str, str]] = field(default_factory=list)
    reference: dict[str, Any] | None = None


def load_runs(root: Path, suite: str | None = None, run: str | None = None,
              dataset: str | None = None) -> list[RunData]:
    """Every run under ``root`` that matches the filters."""
    out = []
    for store in iter_runs(root):
        header = store.read_header()
        if suite and header.get("suite_name") != suite:
            continue
        if run and store.run_id != run and str(store.dir) != str(run):
            continue
        if dataset and header.get("dataset", {}).get("name") != dataset:
            continue
        out.append(RunData(header, store.records(), store.dir))
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def _check_mergeable(suite: str, runs: list[RunData]) -> None:
    protocols = {r.header.get("protocol_sha256") for r in runs}
    if len(protocols) > 1:
        listing = ", ".join(f"{r.path.name} ({r.header.get('protocol_sha256', '?')[:8]})" for r in runs)
        raise ResultsError(
            f"suite {suite!r}: runs {listing} were made with different resolved suites; refusing to merge them. "
            f"Pick one with --run RUN_ID or --latest, or pass --merge to combine them anyway")
    configs: dict[str, str] = {}
    for r in runs:
        for rec in r.records:
            if rec.status != "ok":
                continue
            seen = configs.setdefault(rec.model, rec.model_config_sha256)
            if seen != rec.model_config_sha256:
                raise ResultsError(
                    f"suite {suite!r}: model {rec.model!r} was run with different settings in different runs; "
                    f"pick one with --run RUN_ID or --latest, or pass --merge")


def build_boards(runs: list[RunData], merge: bool = False, latest: bool = False) -> list[Board]:
    """One :class:`Board` per suite; repeated (model, fold, seed) jobs keep the newest record."""
    by_suite: dict[str, list[RunData]] = {}
    for r in sorted(runs, key=lambda r: r.path.name):
        by_suite.setdefault(r.header["suite_name"], []).append(r)
    boards = []
    for suite, suite_runs in sorted(by_suite.items()):
        if latest:
            suite_runs = suite_runs[-1:]
        if not merge:
            _check_mergeable(suite, suite_runs)
        boards.append(_board(suite, suite_runs))
    return boards


def _board(suite: str, runs: list[RunData]) -> Board:
    newest = runs[-1].header
    cfg = newest["suite"]
    primary = cfg["metrics"]["primary"]
    metrics = list(dict.fromkeys([primary, *cfg["metrics"]["report"]]))
    jobs: dict[tuple[str, int, int], JobRecord] = {}
    for r in runs:  # oldest first: newer records replace older ones
        for rec in r.records:
            jobs[(rec.model, rec.fold, rec.seed)] = rec
    ok = [rec for rec in jobs.values() if rec.status == "ok"]
    failed = [{"model": rec.model, "job": rec.job_id, "error": rec.error or ""}
              for rec in jobs.values() if rec.status != "ok"]
    rows = []
    for model in dict.fromkeys(rec.model for rec in ok):
        recs = [rec for rec in ok if rec.model == model]
        row: dict[str, Any] = {"model": model, "n": len(recs)}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"] = _mean_std([rec.metrics.get(m, math.nan) for rec in recs])
        cis = [rec.ci[primary] for rec in recs if primary in rec.ci]
        row["ci_low"] = float(np.mean([c[0] for c in cis])) if cis else math.nan
        row["ci_high"] = float(np.mean([c[1] for c in cis])) if cis else math.nan
        row["params"] = recs[0].cost.get("params")
        row["macs"] = recs[0].cost.get("macs")
        row["train_seconds"] = float(np.mean([rec.train_seconds for rec in recs]))
        rows.append(row)
    higher = primary not in LOWER_IS_BETTER
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(f"{primary}_mean", ascending=not higher, na_position="last").reset_index(drop=True)
    return Board(suite=suite, primary=primary, higher_is_better=higher, metrics=metrics, rows=df,
                 runs=[r.path.name for r in runs], synthetic=any(r.header.get("synthetic") for r in runs),
                 dataset=cfg["dataset"]["name"], failed=failed, reference=cfg.get("reference"))
