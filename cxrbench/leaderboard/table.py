"""Aggregate job records into one table per suite: mean +- std over folds and seeds, and the CI of
the pooled out-of-fold predictions (:mod:`cxrbench.leaderboard.intervals`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench.errors import ResultsError
from cxrbench.leaderboard.external import external_columns, external_names
from cxrbench.leaderboard.intervals import (
    CONFIDENCE,
    N_RESAMPLES,
    board_comparison,
    board_tables,
    metric_interval,
    row_fields,
)
from cxrbench.metrics.aggregate import FoldPredictions
from cxrbench.metrics.compare import ModelComparison
from cxrbench.plugins import Registry, get_registry
from cxrbench.results.records import JobRecord
from cxrbench.results.store import iter_runs
from cxrbench.results.view import RunView
from cxrbench.suite.loader import reference_mismatch

RESEARCH_NOTICE = "Research benchmark, not clinical validation."
SYNTHETIC_NOTICE = "synthetic data, not clinical images: numbers test the harness, not the models"


@dataclass
class Board:
    """One suite's leaderboard."""

    suite: str
    primary: str
    higher_is_better: bool
    """The primary metric's direction."""
    metrics: list[str]
    rows: pd.DataFrame
    runs: list[str]
    synthetic: bool
    dataset: str
    failed: list[dict[str, str]] = field(default_factory=list)
    reference: dict[str, Any] | None = None
    notice: str = ""
    latency: pd.DataFrame | None = None
    """Per (model, device): median/p90 ms of one setting (:func:`cxrbench.leaderboard.latency.attach_latency`)."""
    latency_setting: str = ""
    external: list[str] = field(default_factory=list)
    """Names of the suite's external test sets (columns: :mod:`cxrbench.leaderboard.external`)."""
    directions: dict[str, bool] = field(default_factory=dict)
    """metric -> higher is better (:func:`higher_is_better`), for every metric of :attr:`metrics`."""
    family: ModelComparison | None = None
    """All pairs of models on the primary metric (the ``group`` letters); None when not computed."""
    show_p_vs_top: bool = False
    """Whether the ``p vs #1`` column is shown (``build_boards(p_vs_top=True)``)."""
    reference_mismatch: str = ""
    """Why the paper's figures were measured under another setting than ours (empty: comparable)."""

    def higher(self, metric: str) -> bool:
        """Whether higher ``metric`` is better."""
        return self.directions[metric] if metric in self.directions else get_registry().higher_is_better(metric)

    def ci_note(self) -> str:
        """How the primary metric's CI column was made (each method with its models when they differ)."""
        from cxrbench.leaderboard.intervals import method_note

        if self.rows.empty or "ci_method" not in self.rows:
            return "no CI"
        return method_note(dict(zip(self.rows.model, self.rows.ci_method)))

    def comparison(self) -> pd.DataFrame:
        """Ours vs the paper's figure for every (model, metric) the suite's reference block has, for the
        models the runs trained (a reference model not run has no row, a model without a reference none).

        ``ci_excludes_paper`` is True where our CI (pooled out-of-fold over folds and seeds,
        :mod:`cxrbench.leaderboard.intervals`) does not contain the paper's figure.
        ``not_comparable`` says why ours was measured under another setting than the paper's
        (input size, channels, classes: :func:`cxrbench.suite.loader.reference_mismatch`); then
        ``diff`` is nan and ``ci_excludes_paper`` False: the figures are shown, never diffed.
        """
        rows = []
        mismatch = self.reference_mismatch
        ref_models = (self.reference or {}).get("models") or {}
        ours = self.rows.set_index("model") if not self.rows.empty else pd.DataFrame()
        for model, figures in ref_models.items():
            if model not in ours.index:
                continue  # a model the runs did not train has no comparison row
            for metric, paper in figures.items():
                row: dict[str, Any] = {"model": model, "metric": metric, "paper": float(paper)}
                if model in ours.index:
                    r = ours.loc[model]
                    if metric in ("params", "macs"):
                        value = r.get(metric)
                        row["ours"] = float(value) if value is not None and not pd.isna(value) else math.nan
                        row["ours_std"], low, high = 0.0, math.nan, math.nan
                    else:
                        row["ours"], row["ours_std"] = r.get(f"{metric}_mean", math.nan), r.get(f"{metric}_std", math.nan)
                        low, high = r.get(f"{metric}_ci_low", math.nan), r.get(f"{metric}_ci_high", math.nan)
                    row["ci_low"], row["ci_high"] = low, high
                    row["diff"] = math.nan if mismatch else row["ours"] - row["paper"]
                    row["ci_excludes_paper"] = bool(not mismatch and not pd.isna(low) and not (low <= paper <= high))
                row["not_comparable"] = mismatch
                rows.append(row)
        return pd.DataFrame(rows, columns=["model", "metric", "ours", "ours_std", "ci_low", "ci_high", "paper",
                                           "diff", "ci_excludes_paper", "not_comparable"])


@dataclass(frozen=True)
class Significance:
    """How a board compares its models (:func:`build_boards`)."""

    enabled: bool = True
    adjust: str = "holm"
    alpha: float = 0.05
    p_vs_top: bool = False


def load_runs(root: Path, suite: str | None = None, run: str | None = None,
              dataset: str | None = None) -> list[RunView]:
    """Every run under ``root`` that matches the filters."""
    out = []
    for store in iter_runs(root):
        view = RunView(store)
        header = view.header
        if suite and header.get("suite_name") != suite:
            continue
        if run and store.run_id != run and str(store.dir) != str(run):
            continue
        if dataset and header.get("dataset", {}).get("name") != dataset:
            continue
        out.append(view)
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def _check_mergeable(suite: str, runs: list[RunView]) -> None:
    protocols = {r.header.get("protocol_sha256") for r in runs}
    if len(protocols) > 1:
        listing = ", ".join(f"{r.run_id} ({r.header.get('protocol_sha256', '?')[:8]})" for r in runs)
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


def build_boards(runs: list[RunView], merge: bool = False, latest: bool = False,
                 significance: bool = True, registry: Registry | None = None, adjust: str = "holm",
                 alpha: float = 0.05, p_vs_top: bool = False) -> list[Board]:
    """One :class:`Board` per suite; repeated (model, fold, seed) jobs keep the newest record.

    ``significance``: all pairs of models compared on their shared test rows (paired cluster
    bootstrap, p-values adjusted by ``adjust``: ``holm`` or ``bh``), as a ``group`` column of compact
    letters; ``p_vs_top`` adds the unadjusted p-value of each model against the top row.
    Metric directions and the paired tests use ``registry`` (default: the process-wide one)."""
    registry = registry or get_registry()
    by_suite: dict[str, list[RunView]] = {}
    for r in sorted(runs, key=lambda r: r.run_id):
        by_suite.setdefault(r.header["suite_name"], []).append(r)
    options = Significance(significance, adjust, alpha, p_vs_top)
    boards = []
    for suite, suite_runs in sorted(by_suite.items()):
        if latest:
            suite_runs = suite_runs[-1:]
        if not merge:
            _check_mergeable(suite, suite_runs)
        boards.append(_board(suite, suite_runs, registry, options))
    return boards


def _board(suite: str, runs: list[RunView], registry: Registry, options: Significance) -> Board:
    newest = runs[-1].header
    cfg = newest["suite"]
    primary = cfg["metrics"]["primary"]
    metrics = list(dict.fromkeys([primary, *cfg["metrics"]["report"]]))
    jobs: dict[tuple[str, int, int], JobRecord] = {}
    where: dict[int, RunView] = {}
    origin: dict[str, dict[str, Any]] = {}
    for r in runs:  # oldest first: newer records replace older ones
        for rec in r.records:
            jobs[(rec.model, rec.fold, rec.seed)] = rec
            where[id(rec)] = r
            origin[rec.model] = r.header
    ok = [rec for rec in jobs.values() if rec.status == "ok"]
    ext_names = external_names(cfg, ok)
    failed = [{"model": rec.model, "job": rec.job_id, "error": rec.error or ""}
              for rec in jobs.values() if rec.status != "ok"]
    n_boot = int(cfg["metrics"].get("bootstrap", N_RESAMPLES) or 0)
    confidence = float(cfg["metrics"].get("confidence", CONFIDENCE))
    tables: dict[str, list[FoldPredictions] | None] = {}
    rows = []
    for model in dict.fromkeys(rec.model for rec in ok):
        recs = [rec for rec in ok if rec.model == model]
        row: dict[str, Any] = {"model": model, "n": len(recs)}
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"] = _mean_std([rec.metrics.get(m, math.nan) for rec in recs])
        tables[model] = board_tables(recs, where)
        for m in metrics:
            iv = metric_interval(m, recs, tables[model], registry, n_boot, confidence)
            row[f"{m}_point"], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = iv.point, iv.low, iv.high
            if m == primary:
                row.update(row_fields(iv))
        row["ci_low"], row["ci_high"] = row[f"{primary}_ci_low"], row[f"{primary}_ci_high"]
        ext_tables = {name: board_tables(recs, where, name) for name in ext_names}
        row.update(external_columns(recs, ext_names, metrics, row, lambda name, m: metric_interval(
            m, recs, ext_tables[name], registry, n_boot, confidence, external=name)))
        row["params"] = recs[0].cost.get("params")
        row["macs"] = recs[0].cost.get("macs")
        row["train_seconds"] = float(np.mean([rec.train_seconds for rec in recs]))
        row["kind"] = recs[0].kind
        row["reproduce"] = reproduce_command(origin[model], model, recs[0].kind)
        rows.append(row)
    directions = {m: (registry or get_registry()).higher_is_better(m) for m in metrics}
    higher = directions[primary]
    df = pd.DataFrame(rows)
    family = None
    if is_profile_only(df):  # built and profiled, never trained: no metric to rank by, cheapest first
        df = df.sort_values(["macs", "params"], na_position="last", kind="stable").reset_index(drop=True)
        df["p_vs_top"], df["group"] = math.nan, ""
    elif not df.empty:
        df = df.sort_values(f"{primary}_mean", ascending=not higher, na_position="last").reset_index(drop=True)
        family = board_comparison(tables, primary, higher, registry, options.adjust, options.alpha,
                                  n_boot) if options.enabled else None
        df["group"] = [family.letters.get(m, "") if family else "" for m in df.model]
        df["p_vs_top"] = _p_values(df, family) if options.p_vs_top else math.nan
    return Board(suite=suite, primary=primary, higher_is_better=higher, metrics=metrics, rows=df,
                 runs=[r.run_id for r in runs], synthetic=any(r.header.get("synthetic") for r in runs),
                 dataset=cfg["dataset"]["name"], failed=failed, reference=cfg.get("reference"),
                 notice=cfg.get("notice") or "", external=ext_names, directions=directions,
                 family=family, show_p_vs_top=options.p_vs_top,
                 reference_mismatch=reference_mismatch(cfg.get("reference"), cfg))


def is_profile_only(rows: pd.DataFrame) -> bool:
    """True for the rows of a profile-only run (``profile.only``): cost and latency, no metrics."""
    return not rows.empty and "kind" in rows and bool((rows["kind"] == "profile").all())


def _p_values(df: pd.DataFrame, family: ModelComparison | None) -> list[float]:
    """Unadjusted paired p-value of each model against the top row (nan for the top row itself)."""
    top = df.model.iloc[0]
    out = []
    for model in df.model:
        pair = family.pair(top, model) if family is not None and model != top else None
        out.append(math.nan if pair is None else pair.p_value)
    return out


def reproduce_command(header: dict[str, Any], model: str, kind: str = "model") -> str:
    """The ``cxrbench run`` command (suite path, overrides, model) that reproduces a row, with the
    protocol hash (``run.json``: protocol_sha256) the new run must show."""
    import shlex

    parts = ["cxrbench", "run", header.get("suite_path") or f"<{header.get('suite_name')}.yaml>"]
    for assignment in header.get("overrides") or []:
        parts += ["--set", assignment]
    if kind in ("model", "profile"):
        parts += ["--models", model]
    sha = (header.get("protocol_sha256") or "")[:12]
    return " ".join(shlex.quote(p) for p in parts) + (f"  # protocol sha256 {sha}" if sha else "")
