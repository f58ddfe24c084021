"""The tables ``cxrbench profile`` prints: cost, latency, end to end (``--end-to-end``), paired ratios."""

from __future__ import annotations

import sys
from typing import Any


def _fmt(v: Any, spec: str) -> str:
    return "" if v is None else format(v, spec)


def print_profile(rows: list[dict[str, Any]]) -> None:
    """The cost table, then the latency table and the end-to-end table when there are records."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(title="cost (MACs = multiply-accumulates via ptflops aten backend; FLOPs = 2 x MACs)",
                  title_justify="left")
    for c in ("model", "input", "params", "MACs (M)", "FLOPs (M)"):
        table.add_column(c)
    for r in rows:
        table.add_row(r["model"], f"{r['in_chans']}x{r.get('input_size', '')}", f"{r['params']:,}",
                      f"{r['macs'] / 1e6:,.1f}", f"{r['flops'] / 1e6:,.1f}")
    console.print(table)
    recs = [rec for r in rows for rec in r.get("latency", [])]
    if not recs:
        return
    device = recs[0].get("device", {})
    table = Table(title=f"latency on {recs[0]['device_name']} ({device.get('cpu_model', '?')}): median headline, "
                        "p90 beside it; ms per batch", title_justify="left")
    cols = ["model", "runtime", "thr", "batch", "median", "p90", "IQR/med", "n", "dropped", "img/s", "GFLOP/s",
            "% calib", "note"]
    for c in cols:
        table.add_column(c)
    for r in recs:
        if r["status"] != "ok":
            note = f"[red]{r['status']}[/red]: {r['error']}"
            table.add_row(r["model"], r["runtime"], str(r["threads"]), str(r["batch_size"]), *[""] * 8, note)
            continue
        notes = []
        if r["unstable"]:
            notes.append("[yellow]unstable[/yellow]")
        if r["interference"].get("machine_busy"):
            notes.append("[yellow]machine busy[/yellow]")
        if r.get("accuracy"):
            acc, ref = r["accuracy"], r.get("accuracy_fp32") or {}
            notes.append(", ".join(f"{k} {v:.3f} (fp32 {ref.get(k, float('nan')):.3f})" for k, v in acc.items()))
        frac = r.get("fraction_of_calibration")
        table.add_row(r["model"], r["runtime"], str(r["threads"]), str(r["batch_size"]), _fmt(r["median_ms"], ".2f"),
                      _fmt(r["p90_ms"], ".2f"), _fmt(r["iqr_over_median"], ".3f"), str(r["n_samples"]),
                      str(r["interference"].get("chunks_dropped", "")), _fmt(r["throughput_ips"], ".1f"),
                      _fmt(r["achieved_gflops"], ".1f"), "" if frac is None else f"{100 * frac:.0f}%", ", ".join(notes))
    console.print(table)
    _print_end_to_end(console, [r for r in recs if r.get("end_to_end")])


def _print_end_to_end(console: Any, recs: list[dict[str, Any]]) -> None:
    """The ``--end-to-end`` table: stage medians, the total's median [CI] and p90, model-only beside it."""
    from rich.table import Table

    if not recs:
        return
    im = recs[0]["end_to_end"]["image"]
    title = (f"end to end, batch 1: {im['format']} {im['width']}x{im['height']} {im['mode']} "
             f"({im['bytes'] / 1e6:.2f} MB{', ' + im['generated'] if im.get('generated') else ''}) -> decode -> "
             "resize + normalise -> inference; ms, stage medians")
    table = Table(title=title, title_justify="left")
    for c in ("model", "runtime", "thr", "decode", "preprocess", "inference", "total median [95% CI]", "total p90",
              "model only", "n", "note"):
        table.add_column(c)
    for r in recs:
        e = r["end_to_end"]
        st = e["stages_median_ms"]
        low, high = (_fmt(v, ".2f") or "?" for v in e["median_ci_ms"])
        table.add_row(r["model"], r["runtime"], str(r["threads"]), f"{st['decode']:.2f}", f"{st['preprocess']:.2f}",
                      f"{st['inference']:.2f}", f"{e['median_ms']:.2f} [{low}, {high}]", f"{e['p90_ms']:.2f}",
                      f"{e['model_only_median_ms']:.2f}", str(e["n_samples"]),
                      "[yellow]unstable[/yellow]" if e["unstable"] else "")
    console.print(table)


def print_paired(records: list[dict[str, Any]]) -> None:
    """One line per ``--paired`` record: the ratio B/A with its CI, blocks and both medians."""
    for r in records:
        head = f"{r['b']} / {r['a']} ({r['runtime']}, {r['threads']} thr, batch {r['batch_size']})"
        if r["status"] != "ok":
            print(f"{head}: {r['status']}: {r.get('error')}")
            continue
        low, high = (_fmt(v, ".3f") or "unbounded" for v in r["ratio_ci"])
        print(f"{head}: latency ratio {r['ratio_b_over_a']:.3f} [{low}, {high}] ({100 * r['ratio_ci_coverage']:.1f}% CI, "
              f"{r['n_blocks']} ABBA blocks of {r['chunk_iters']} iterations, {r['blocks_dropped']} busy blocks dropped); "
              f"medians {r['a_median_ms']:.2f} / {r['b_median_ms']:.2f} ms")
