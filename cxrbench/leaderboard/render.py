"""Show a leaderboard: rich terminal table, or markdown / csv / html / latex / json."""

from __future__ import annotations

import html
import json
import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cxrbench.leaderboard.external import delta_col, ext_col
from cxrbench.leaderboard.table import RESEARCH_NOTICE, SYNTHETIC_NOTICE, Board, is_profile_only

FORMATS = ("terminal", "markdown", "csv", "html", "latex", "json")


def _arrow(board: Board, metric: str) -> str:
    return "↑" if board.higher(metric) else "↓"


def _pm(mean: float, std: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def _count(value: Any, unit: float, suffix: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value / unit:.2f}{suffix}"


def display_frame(board: Board) -> pd.DataFrame:
    """Human-formatted columns, in leaderboard order."""
    out = []
    devices, latency = _latency_by_model(board)
    profile_only = is_profile_only(board.rows)  # nothing trained: cost and latency columns only
    for rank, row in enumerate(board.rows.to_dict("records"), start=1):
        shown: dict[str, Any] = {"#": rank, "model": row["model"], "runs": row["n"]}
        for m in [] if profile_only else board.metrics:
            shown[f"{m} {_arrow(board, m)}"] = _pm(row[f"{m}_mean"], row[f"{m}_std"], row["n"])
            if m == board.primary:
                lo, hi = row["ci_low"], row["ci_high"]
                shown["95% CI"] = "" if math.isnan(lo) else f"[{lo:.4f}, {hi:.4f}]"
        if not profile_only:
            shown.update(_external_cells(board, row))
        if not profile_only and board.family is not None:
            shown["group"] = row.get("group") or ""
        p = row.get("p_vs_top", math.nan)
        if not profile_only and board.show_p_vs_top:
            shown["p vs #1"] = "" if p is None or math.isnan(p) else f"{p:.3f}"
        shown["params ↓"] = _count(row.get("params"), 1e6, "M")
        shown["MACs ↓"] = _count(row.get("macs"), 1e6, "M")
        for device in devices:
            median, p90, unstable, ci = latency.get(row["model"], {}).get(device, (None, None, False, None))
            shown[f"ms median / p90 ↓ {device}"] = "" if p90 is None else \
                f"{median:.2f}{_ci_ms(ci)} / {p90:.2f}" + (" ~" if unstable else "")
        out.append(shown)
    return pd.DataFrame(out)


def _external_cells(board: Board, row: dict[str, Any]) -> dict[str, str]:
    """``<primary> ext:<name>`` (mean ± std) and ``Δ <name>`` (external minus internal) per external set."""
    out = {}
    for name in board.external:
        mean = row.get(ext_col(name, board.primary, "mean"), math.nan)
        out[f"{board.primary} ext:{name}"] = _pm(mean, row.get(ext_col(name, board.primary, "std"), 0.0), row["n"])
        lo, hi = row.get(ext_col(name, board.primary, "ci_low"), math.nan), row.get(ext_col(name, board.primary, "ci_high"), math.nan)
        out[f"95% CI ext:{name}"] = "" if lo is None or math.isnan(lo) else f"[{lo:.4f}, {hi:.4f}]"
        delta = row.get(delta_col(name, board.primary))
        out[f"Δ {name}"] = "" if delta is None or math.isnan(delta) else f"{delta:+.4f}"
    return out


def external_note(board: Board) -> str:
    """What the external columns are."""
    methods = {m for name in board.external if f"ext:{name}:ci_method" in board.rows
               for m in board.rows[f"ext:{name}:ci_method"].dropna()}
    how = "; ".join(sorted(m for m in methods if m)) or "no CI"
    return (f"ext:NAME = {board.primary} of the same trained models on external test set NAME (suite "
            f"external_test; never trained on); Δ NAME = external minus internal test {board.primary}; "
            f"95% CI ext:NAME = {how}")


def _ci_ms(ci: Any) -> str:
    """`` [lo, hi]`` of a latency CI (``?`` for an unbounded side); empty for records without one."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return ""
    side = lambda v: "?" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"  # noqa: E731
    return f" [{side(ci[0])}, {side(ci[1])}]"


def _latency_by_model(board: Board) -> tuple[list[str], dict[str, dict[str, tuple[float, float, bool, Any]]]]:
    """Devices (column order) and model -> device -> (median ms, p90 ms, unstable, median CI)."""
    if board.latency is None or board.latency.empty:
        return [], {}
    out: dict[str, dict[str, tuple[float, float, bool, Any]]] = {}
    for r in board.latency.to_dict("records"):
        out.setdefault(r["model"], {})[r["device"]] = (r["median_ms"], r["p90_ms"], bool(r.get("unstable")),
                                                       r.get("median_ci_ms"))
    return sorted(board.latency.device.unique()), out


def latency_wide(board: Board) -> pd.DataFrame:
    """One row per model: ``median_ms[DEVICE]`` and ``p90_ms[DEVICE]`` for every device."""
    if board.latency is None or board.latency.empty:
        return pd.DataFrame({"model": []})
    wide = board.latency.pivot(index="model", columns="device", values=["median_ms", "p90_ms"])
    wide.columns = [f"{stat}[{device}]" for stat, device in wide.columns]
    return wide.reset_index()


def notices(board: Board) -> str:
    """The wording every table carries: research-only, synthetic data, the suite's own notice."""
    parts = [RESEARCH_NOTICE]
    if board.synthetic:
        parts.append(SYNTHETIC_NOTICE[0].upper() + SYNTHETIC_NOTICE[1:] + ".")
    if board.notice:
        parts.append(board.notice)
    return " ".join(parts)


def comparison_frame(board: Board) -> pd.DataFrame:
    """The paper comparison, formatted: ours (CI), the paper's, the difference, and a flag."""
    out = []
    for r in board.comparison().to_dict("records"):
        ours = r.get("ours", math.nan)
        is_count = r["metric"] in ("params", "macs")
        fmt = (lambda v: f"{v:,.0f}") if is_count else (lambda v: f"{v:.4f}")
        missing = ours is None or (isinstance(ours, float) and math.isnan(ours))
        lo, hi = r.get("ci_low", math.nan), r.get("ci_high", math.nan)
        out.append({
            "model": r["model"], "metric": r["metric"],
            "ours": "not run" if missing else fmt(ours),
            "95% CI": "" if missing or lo is None or math.isnan(lo) else f"[{lo:.4f}, {hi:.4f}]",
            "paper": fmt(r["paper"]),
            "diff": "" if missing else f"n/c ({r['not_comparable']})" if r.get("not_comparable") else
                    (f"{r['diff']:+,.0f}" if is_count else f"{r['diff']:+.4f}"),
            "CI excludes paper": "yes" if r.get("ci_excludes_paper") is True else "",
        })
    return pd.DataFrame(out)


def comparison_heading(board: Board) -> str:
    """``vs the paper: SOURCE`` with the reasons its figures cannot be compared with ours, if any."""
    heading = f"vs the paper: {(board.reference or {}).get('source', '')}"
    if board.synthetic:
        heading += " [synthetic data: not comparable with the paper's figures]"
    if board.reference_mismatch:
        heading += f" [not comparable, n/c: {board.reference_mismatch}]"
    return heading


def stats_note(board: Board) -> str:
    """How the CI column (and the significance columns) were made."""
    note = f"95% CI of {board.primary} = {board.ci_note()}"
    if board.family is not None:
        note += (f"; group = compact letter display on {board.primary} (models sharing a letter are not "
                 f"significantly different): {board.family.method}")
    if board.show_p_vs_top:
        note += "; p vs #1 = paired bootstrap against the top row on shared test rows (unadjusted)"
    return note


def latency_note(board: Board) -> str:
    """What the latency columns are, or how to get them."""
    if board.latency is None or board.latency.empty:
        return (f"latency: none recorded for {board.latency_setting}; set `profile.latency.enabled: true` in the "
                f"suite or run `cxrbench profile --suite SUITE --out FILE` and `cxrbench results import FILE`")
    return (f"latency: {board.latency_setting}, per device; median [95% CI] / p90 of per-image times in fresh "
            f"pinned processes (CI: distribution-free, order statistics; ? = too few samples for that side; "
            f"~ = unstable, IQR/median > 0.10); method: cxrbench/profiling/README.md")


def title(board: Board) -> str:
    flag = f" [{SYNTHETIC_NOTICE}]" if board.synthetic else ""
    ranked = "MACs; profile only, nothing trained" if is_profile_only(board.rows) else board.primary
    return f"{board.suite} (dataset {board.dataset}; ranked by {ranked}){flag}"


def _rich_table(df: pd.DataFrame, heading: str) -> Table:
    table = Table(title=escape(heading), title_justify="left")
    for col in df.columns:
        table.add_column(str(col), justify="left" if col in ("model", "metric") else "right")
    for row in df.itertuples(index=False):
        table.add_row(*[escape(str(v)) for v in row])
    return table


def render_terminal(boards: list[Board], console: Console | None = None, reference: bool = True) -> None:
    console = console or Console()
    for board in boards:
        console.print(_rich_table(display_frame(board), title(board)))
        stats = "" if is_profile_only(board.rows) else f"; {stats_note(board)}"
        console.print(f"runs: {', '.join(board.runs)}; params/MACs at the suite's input size "
                      f"(MACs = multiply-accumulates, FLOPs = 2 x MACs; ptflops aten backend){stats}")
        if board.latency_setting:
            console.print(latency_note(board))
        if board.external:
            console.print(escape(external_note(board)))
        for f in board.failed:
            console.print(f"[red]failed[/red] {escape(f['job'])}: {escape(f['error'])}")
        console.print(notices(board))
        if not board.rows.empty:
            console.print("reproduce a row:")
            for model, command in zip(board.rows.model, board.rows.reproduce):
                console.print(f"  {escape(model)}: {escape(command)}", highlight=False, soft_wrap=True)
        if reference and board.reference and board.reference.get("models"):
            console.print(_rich_table(comparison_frame(board), f"{board.suite} {comparison_heading(board)}"))
            if board.reference.get("note"):
                console.print(f"note: {escape(board.reference['note'])}")


PAPER_SUITE_ON_SYNTHETIC = ("cxrbench run suites/pneumonia_binary.yaml --set dataset.name=synthetic_cxr "
                            "--set dataset.root=null --set dataset.variant=null --set input.image_size=64")
"""A paper suite on the built-in synthetic data (the overrides :func:`cxrbench.data.loading.synthetic_hint` names)."""


def legend(board: Board, run_dir: str, results_flag: str = "") -> list[str]:
    """Three lines under ``cxrbench run``'s table: what the columns mean, what the baseline rows are,
    and the next commands to try (``results_flag``: `` --results DIR`` when not the default folder)."""
    primary = board.primary
    latency = "; ms median / p90 = latency per image" if board.latency is not None and len(board.latency) else ""
    return [
        f"columns: metrics on the held-out test set (↑ higher / ↓ lower is better), ranked by {primary}; 95% CI = "
        f"its bootstrap interval over patients; group = models sharing a letter do not differ significantly; "
        f"params / MACs = size and cost per image at this input size{latency}",
        "baseline_majority always predicts the commonest class, baseline_stratified guesses by class frequency: "
        "a model has learned something only where its CI lies above theirs",
        f"next: cxrbench report {run_dir}   |   cxrbench leaderboard{results_flag} --suite {board.suite} --latest "
        f"--plot pareto   |   {PAPER_SUITE_ON_SYNTHETIC}",
    ]


def to_json_data(boards: list[Board]) -> list[dict[str, Any]]:
    return [{"suite": b.suite, "dataset": b.dataset, "synthetic": b.synthetic, "primary": b.primary,
             "higher_is_better": b.higher_is_better, "runs": b.runs, "metrics": b.metrics, "external": b.external,
             "rows": json.loads(b.rows.to_json(orient="records")), "failed": b.failed, "ci_method": b.ci_note(),
             "comparisons": b.family.as_record() if b.family is not None else None,
             "reference": b.reference, "reference_mismatch": b.reference_mismatch, "notice": notices(b), "latency_setting": b.latency_setting,
             "latency": json.loads(b.latency.to_json(orient="records")) if b.latency is not None else [],
             "comparison": json.loads(b.comparison().to_json(orient="records"))} for b in boards]


def render_text(boards: list[Board], fmt: str) -> str:
    """The boards in a text format (markdown, csv, html, latex, json)."""
    if fmt == "json":
        return json.dumps(to_json_data(boards), indent=2)
    parts = []
    for board in boards:
        df = display_frame(board)
        comp = comparison_frame(board) if board.reference and board.reference.get("models") else None
        if fmt == "markdown":
            df = df.assign(reproduce=[f"`{c}`" for c in board.rows.reproduce]) if not board.rows.empty else df
            stats = "" if is_profile_only(board.rows) else f"\n\n{stats_note(board)}"
            parts.append(f"### {title(board)}\n\n" + df.to_markdown(index=False) + stats + f"\n\n{notices(board)}"
                         + (f"\n\n{latency_note(board)}" if board.latency_setting else "")
                         + (f"\n\n{external_note(board)}" if board.external else ""))
            if comp is not None:
                parts.append(f"#### {comparison_heading(board)}\n\n" + comp.to_markdown(index=False))
        elif fmt == "csv":
            raw = board.rows.merge(latency_wide(board), on="model", how="left") if not board.rows.empty \
                else board.rows.copy()
            raw.insert(0, "suite", board.suite)
            raw.insert(1, "synthetic", board.synthetic)
            parts.append(raw.to_csv(index=False))
        elif fmt == "html":
            parts.append(f"<h3>{html.escape(title(board))}</h3>\n" + df.to_html(index=False, escape=True)
                         + ("" if is_profile_only(board.rows) else f"\n<p>{html.escape(stats_note(board))}</p>")
                         + f"\n<p>{html.escape(notices(board))}</p>")
            if comp is not None:
                parts.append(f"<h4>{html.escape(comparison_heading(board))}</h4>\n" + comp.to_html(index=False, escape=True))
        elif fmt == "latex":
            stats = "" if is_profile_only(board.rows) else f"% {stats_note(board)}\n"
            parts.append(f"% {title(board)}\n{stats}% {notices(board)}\n" + df.to_latex(index=False, escape=True))
        else:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return "\n\n".join(parts)
