"""The ``cxrbench card RUN MODEL`` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    """``card``."""
    p = sub.add_parser(
        "card", help="a model card (markdown + Hugging Face model-index metadata) for one model of a run",
        description="Write a markdown model card with Hugging Face `model-index` front matter for MODEL (a model "
                    "label) of RUN: dataset, split, metrics with CIs, protocol sha256, parameters, MACs, latency "
                    "per device and the licence of the initial weights, read from the run folder.")
    p.add_argument("run", help="run folder, or run id under --results")
    p.add_argument("model", help="the model's label in the run")
    p.add_argument("--out", type=Path, metavar="FILE", help="write here (default: RUN/cards/MODEL.md)")
    p.add_argument("--results", type=Path, help="results folder to find a run id in "
                                                "(default: $CXRBENCH_RESULTS or ./results)")
    p.set_defaults(func=card_command)


def card_command(args: argparse.Namespace) -> int:
    """Write the card and print where it is."""
    from cxrbench.report.card import write_card

    print(f"wrote {write_card(args.run, args.model, args.out, results_root=args.results)}")
    return 0
