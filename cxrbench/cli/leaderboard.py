"""``cxrbench leaderboard``: ranked tables (and a Pareto plot) over the results folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cxrbench.cli.console import console, err_console

FORMATS = ["terminal", "markdown", "csv", "html", "latex", "json"]


def add_parsers(sub: Any) -> None:
    """``leaderboard``."""
    p = sub.add_parser("leaderboard", help="aggregate results into ranked tables")
    p.add_argument("--results", type=Path, help="results folder (default: $CXRBENCH_RESULTS or ./results)")
    p.add_argument("--suite", help="only this suite")
    p.add_argument("--run", help="only this run id")
    p.add_argument("--dataset", help="only runs on this dataset")
    p.add_argument("--latest", action="store_true", help="only the newest run of each suite")
    p.add_argument("--merge", action="store_true", help="merge runs even if their resolved suites differ")
    p.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                   help="show the paper's reported figures next to ours when the suite has them (default on)")
    p.add_argument("--significance", action=argparse.BooleanOptionalAction, default=True,
                   help="compare every pair of models (paired cluster bootstrap) and show the group letters "
                        "(default on)")
    p.add_argument("--adjust", default="holm", choices=["holm", "bh", "none"],
                   help="multiple-comparison adjustment over all pairs: holm (family-wise, default), bh "
                        "(Benjamini-Hochberg false discovery rate) or none")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the group letters (default 0.05)")
    p.add_argument("--p-vs-top", action="store_true",
                   help="also show each model's unadjusted paired p-value against the top row")
    p.add_argument("--format", default="terminal", choices=FORMATS)
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument("--device", metavar="NAME", help="latency of this device only (default: a column per device)")
    p.add_argument("--latency-runtime", default="torch", metavar="RUNTIME",
                   help="latency shown for this runtime (torch, onnxruntime, int8, ...; default torch)")
    p.add_argument("--latency-threads", type=int, default=1, metavar="N", help="latency at N threads (default 1)")
    p.add_argument("--latency-batch", type=int, default=1, metavar="N", help="latency at batch size N (default 1)")
    p.add_argument("--plot", choices=["pareto"], help="pareto: primary metric vs p90 latency per device, "
                                                      "PNG + SVG (default folder: results/<suite>/)")
    p.add_argument("--plot-dir", type=Path, metavar="DIR", help="folder for --plot files")
    p.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Build the boards of the matching runs and print (or write) them."""
    from rich.markup import escape

    from cxrbench.errors import CxrbenchError
    from cxrbench.leaderboard.latency import LatencySetting, attach_latency, plot_pareto
    from cxrbench.leaderboard.render import render_terminal, render_text
    from cxrbench.leaderboard.table import build_boards, load_runs
    from cxrbench.results.store import default_results_root

    root = Path(args.results) if args.results else default_results_root()
    runs = load_runs(root, suite=args.suite, run=args.run, dataset=args.dataset)
    if not runs:
        filtered = args.suite or args.run or args.dataset
        raise CxrbenchError(f"no runs found under {root}/" + (" matching the filters" if filtered else
                                                            "; run a suite first: cxrbench run suites/quickstart.yaml"))
    if not 0 < args.alpha < 1:
        raise CxrbenchError(f"--alpha must be between 0 and 1, got {args.alpha}")
    boards = build_boards(runs, merge=args.merge, latest=args.latest, significance=args.significance,
                          adjust=args.adjust, alpha=args.alpha, p_vs_top=args.p_vs_top)
    attach_latency(boards, root, LatencySetting(runtime=args.latency_runtime, threads=args.latency_threads,
                                                batch_size=args.latency_batch, device=args.device))
    for board in boards if args.plot == "pareto" else []:
        out = (args.plot_dir or root / board.suite) / f"pareto-{board.primary}"
        try:
            paths = plot_pareto(board, out)
        except ValueError as exc:
            err_console().print(f"[yellow]no Pareto plot:[/yellow] {escape(str(exc))}")
            continue
        err_console().print(f"wrote {', '.join(str(p) for p in paths)}")
    if args.format == "terminal":
        render_terminal(boards, console(), reference=args.reference)
    else:
        text = render_text(boards, args.format)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            console().print(f"wrote {args.output}")
        else:
            print(text)
    return 0
