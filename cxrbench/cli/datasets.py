"""``cxrbench datasets describe NAME``: what a dataset folder holds (see :mod:`cxrbench.data.describe`)."""

from __future__ import annotations

import argparse


def add_describe_parser(datasets_parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``describe`` under an existing ``datasets`` parser (plain ``cxrbench datasets`` still lists)."""
    sub = datasets_parser.add_subparsers(dest="datasets_command", metavar="{describe}")
    p = sub.add_parser("describe", help="counts, patients, image sizes and split leakage of a dataset folder")
    p.add_argument("name", help="dataset name (`cxrbench datasets`)")
    p.add_argument("--root", help="data folder (default: $CXRBENCH_DATA/<dataset folder>)")
    p.add_argument("--task", choices=["binary", "multiclass", "multilabel"],
                   help="task to load it for (default: the dataset's first)")
    p.add_argument("--variant", help="dataset variant, e.g. kermany: binary | subtype")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option (repeatable), e.g. --option flag=chestmnist")
    p.add_argument("--json", action="store_true", help="JSON instead of tables")
    p.set_defaults(func=cmd_describe)
    return p


def cmd_describe(args: argparse.Namespace) -> int:
    """Describe the dataset folder (tables, or JSON with ``--json``)."""
    from cxrbench.data.describe import describe_command, parse_option_pairs

    return describe_command(args.name, args.root, args.task, args.variant, args.json,
                            parse_option_pairs(args.option))
