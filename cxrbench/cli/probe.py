"""``cxrbench probe RUN``: the shortcut probes of a finished run, as a table and ``<run>/probes.json``.

The option defaults are written here so that building the parser imports no probe code (torch,
pandas); a test keeps them equal to the probes' own constants.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEVICES = ["auto", "cpu", "cuda", "mps"]
MASK = "0.7"
"""Default ``--mask`` (parsed by :func:`cxrbench.probes.masking.parse_geometry`)."""
RETAIN = 0.5
"""= :data:`cxrbench.probes.masking.RETAIN`."""
MIN_MARGIN = 0.05
"""= :data:`cxrbench.probes.masking.MIN_MARGIN`."""
WARN_AUC = 0.8
"""= :data:`cxrbench.probes.source.WARN_AUC`."""


def _geometry(text: str) -> Any:
    from cxrbench.probes.masking import parse_geometry

    try:
        return parse_geometry(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parsers(sub: Any) -> None:
    """``probe``."""
    add_probe_parser(sub)


def add_probe_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``probe`` to the ``cxrbench`` subcommands; returns its parser."""
    p = subparsers.add_parser(
        "probe", help="shortcut probes of a run: lungs masked / only lungs, and is the image source recognisable",
        description="Re-evaluate each model's checkpoint on its test rows with the central (lung) region masked "
                    "and with only it kept; flag models that keep most of their margin over the majority baseline "
                    "without the lungs. Then fit a logistic regression to predict each image's source from its "
                    "pixels. Writes RUN/probes.json (shown by `cxrbench report RUN`).")
    p.add_argument("run", help="run folder, or run id under --results")
    p.add_argument("--results", type=Path, help="results folder to find a run id in "
                                                "(default: $CXRBENCH_RESULTS or ./results)")
    p.add_argument("--json", action="store_true", help="print probes.json instead of tables")
    p.add_argument("--mask", type=_geometry, metavar="W[xH]",
                   help=f"centred lung rectangle as fractions of width x height (default {MASK})")
    p.add_argument("--retain", type=float, default=RETAIN,
                   help=f"flag when this fraction of the margin over the majority baseline survives masking "
                        f"(default {RETAIN})")
    p.add_argument("--min-margin", type=float, default=MIN_MARGIN,
                   help=f"models closer than this to the baseline are not assessed (default {MIN_MARGIN})")
    p.add_argument("--source-column", metavar="NAME",
                   help="per-image source: a key of the dataset's extras (e.g. shortcut_marker of synthetic_cxr) "
                        "or a column of a csv dataset's CSV (default: the dataset's 'source', when it has one)")
    p.add_argument("--warn-auc", type=float, default=WARN_AUC,
                   help=f"warn when the source probe's AUC exceeds this (default {WARN_AUC})")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.set_defaults(func=probe_command)
    return p


def probe_command(args: argparse.Namespace) -> int:
    """Run the probes, print them, write ``probes.json``; 0 once the probes ran (flags are findings, not errors)."""
    from cxrbench.probes import PROBES_FILE
    from cxrbench.probes.run import run_probes
    from cxrbench.results.store import RunStore

    geometry = args.mask if args.mask is not None else _geometry(MASK)
    result = run_probes(args.run, results_root=args.results, geometry=geometry, retain=args.retain,
                        min_margin=args.min_margin, source_column=args.source_column, warn_auc=args.warn_auc,
                        device=args.device)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_probes(result)
    print(f"wrote {RunStore.open(args.run, args.results).dir / PROBES_FILE}", file=sys.stderr)
    return 0


def _f(v: Any) -> str:
    return "" if v is None or v != v else f"{v:.4f}"


def print_probes(result: dict[str, Any]) -> None:
    """The masking probe as a rich table, then the source probe's verdict."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    masking = result["masking"]
    geo = masking["geometry"]
    table = Table(title=f"masking probe ({masking['primary']}; central {geo['width']:g} x {geo['height']:g} = lungs)",
                  title_justify="left")
    for c in ("model", "job", "original", "lungs masked", "centre only", "majority", "kept", "verdict"):
        table.add_column(c)
    for m in masking["models"]:
        if m["status"] != "ok":
            table.add_row(m["model"], "", "", "", "", "", "", f"[yellow]skipped[/yellow]: {escape(m['reason'])}")
            continue
        s = m["scores"]
        kept = "" if m["retained"] is None else f"{100 * m['retained']:.0f}%"
        verdict = "[bold red]FLAGGED[/bold red]" if m["flagged"] else escape(m["verdict"].split(":")[0])
        table.add_row(m["model"], m["job"], _f(s["original"]), _f(s["lungs_masked"]), _f(s["center_only"]),
                      _f(m["majority"]), kept, verdict)
    console.print(table)
    console.print(f"rule: {escape(masking['rule'])}", style="dim")
    src = result["source"]
    if src.get("status") == "ok":
        style = "bold red" if src["warning"] else "green"
        console.print(f"source probe ({escape(src['origin'])}): [{style}]{escape(src['message'])}[/{style}]")
        for source, counts in (src.get("by_class") or {}).items():
            console.print(f"  source {escape(source)}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    else:
        console.print(f"source probe: skipped: {escape(src.get('message', ''))}", style="yellow")
