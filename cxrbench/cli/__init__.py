"""The ``cxrbench`` command line: one module per command group, outside the domain packages.

Each module adds its sub-parsers with argparse alone and imports its domain code inside the
handler, so building the parser (``cxrbench --help``) imports neither torch, pandas nor the
plugins, and parsing builds no model. The registry is loaded by the commands that read it.
Exit codes: 0 ok, 1 some job failed (or a check asked for failed), 2 bad input
(:class:`~cxrbench.errors.CxrbenchError`), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging

from cxrbench.cli import card, doctor, leaderboard, probe, profile, registry, report, run

DESCRIPTION = "The cxrbench command line: compare chest X-ray classifiers under one identical, reproducible protocol."
COMMAND_MODULES = (run, leaderboard, registry, profile, report, card, probe, doctor)
"""In the order ``cxrbench --help`` lists their commands; each has ``add_parsers(subparsers)``."""


def build_parser() -> argparse.ArgumentParser:
    """The ``cxrbench`` parser with every subcommand (each sets ``func``, its handler)."""
    parser = argparse.ArgumentParser(prog="cxrbench", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cxrbench`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from cxrbench.errors import CxrbenchError

    try:
        return args.func(args)
    except CxrbenchError as exc:
        if args.verbose:
            raise
        from cxrbench.cli.console import print_error

        print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        from cxrbench.cli.console import err_console

        err_console().print("interrupted")
        return 130


__all__ = ["build_parser", "main"]
