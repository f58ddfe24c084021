"""The ``cxrbench report RUN`` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    """``report``."""
    add_report_parser(sub)


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report`` to the ``cxrbench`` subcommands; returns its parser."""
    p = subparsers.add_parser(
        "report", help="one run as an HTML page: leaderboard, curves, ROC, confusion, errors, Grad-CAM",
        description="Write RUN/report/index.html (and one PNG per figure): the leaderboard and paper comparison, "
                    "per-model training curves, ROC, confusion matrix, classification report, the most "
                    "confidently misclassified test images, Grad-CAM maps, the cost trade-off and the environment.")
    p.add_argument("run", help="run folder, or run id under --results")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the report here (default: RUN/report/)")
    p.add_argument("--results", type=Path, help="results folder to find a run id in "
                                                "(default: $CXRBENCH_RESULTS or ./results)")
    p.add_argument("--no-gradcam", dest="gradcam", action="store_false", help="skip the Grad-CAM maps")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="device for Grad-CAM (default: auto)")
    p.add_argument("--misclassified", type=int, default=8, metavar="N", help="errors shown per model (default 8)")
    p.add_argument("--cams-per-class", type=int, default=2, metavar="N",
                   help="Grad-CAM images per class (default 2)")
    p.set_defaults(func=report_command)
    return p


def report_command(args: argparse.Namespace) -> int:
    """Build the report and print where it is."""
    from cxrbench.report.build import build_report

    index = build_report(args.run, args.out, results_root=args.results, gradcam=args.gradcam, device=args.device,
                         n_misclassified=args.misclassified, cams_per_class=args.cams_per_class)
    print(f"wrote {index}")
    return 0
