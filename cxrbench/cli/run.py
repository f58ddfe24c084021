"""``cxrbench run SUITE`` and ``cxrbench validate SUITE...``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cxrbench.cli.console import console, err_console

DEVICES = ["auto", "cpu", "cuda", "mps"]


def add_parsers(sub: Any) -> None:
    """``run`` and ``validate``."""
    p = sub.add_parser("run", help="train and evaluate every model of a suite")
    p.add_argument("suite", help="suite YAML file, e.g. suites/quickstart.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a suite field (repeatable), e.g. --set train.epochs=1")
    p.add_argument("--models", help="comma-separated model labels to run (default: all in the suite); "
                                    "+NAME adds a model under the suite's protocol, e.g. +timm:convnext_tiny,+lrnet")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--results", type=Path, help="results folder (default: $CXRBENCH_RESULTS or ./results)")
    p.add_argument("--resume", metavar="RUN", help="run folder or id to continue: finished jobs are skipped")
    p.add_argument("--print-resolved", action="store_true", help="print the fully resolved suite and exit")
    p.add_argument("--json", action="store_true", help="with --print-resolved: JSON instead of YAML")
    p.add_argument("--strict", action="store_true", help="fail on any unreadable image instead of skipping it")
    p.add_argument("--executor", metavar="NAME",
                   help="where jobs run: a registered executor (local, ray, or a plugin's; checked against the "
                        "plugins; default: the suite's executor block, local)")
    p.add_argument("--address", help="with --executor ray: cluster to join (auto, HOST:PORT); default: start Ray here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check suite files without running them")
    p.add_argument("suites", nargs="+")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_validate)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the suite, then print its leaderboard; the exit code is the run's (0 ok, 1 a job failed)."""
    from cxrbench.engine.progress import NullProgress, RichProgress
    from cxrbench.engine.runner import run_suite
    from cxrbench.leaderboard.render import render_terminal
    from cxrbench.leaderboard.table import build_boards, load_runs
    from cxrbench.plugins import get_registry
    from cxrbench.suite.checks import check_suite
    from cxrbench.suite.loader import load_suite, resolved_dict

    models = args.models.split(",") if args.models else None
    if args.print_resolved:
        suite = load_suite(args.suite, args.set, models)
        check_suite(suite, get_registry(), args.suite)
        print(json.dumps(resolved_dict(suite), indent=2) if args.json else _yaml(resolved_dict(suite)))
        return 0
    progress = NullProgress() if args.quiet else RichProgress(err_console())
    outcome = run_suite(args.suite, args.set, models, device=args.device, results_root=args.results,
                        resume=args.resume, progress=progress, strict=args.strict, executor=args.executor,
                        address=args.address)
    root = outcome.store.dir.parent.parent
    boards = build_boards(load_runs(root, run=outcome.store.run_id))
    profile = outcome.store.read_header()["suite"].get("profile", {})
    if profile.get("latency", {}).get("enabled") or profile.get("only"):
        from cxrbench.leaderboard.latency import attach_latency

        attach_latency(boards, root)
    out = console()
    render_terminal(boards, out)
    from rich.markup import escape

    from cxrbench.leaderboard.render import legend
    from cxrbench.results.store import default_results_root

    flag = "" if root.resolve() == default_results_root().resolve() else f" --results {root}"
    for board in boards:
        for line in legend(board, str(outcome.store.dir), flag):
            out.print(escape(line), highlight=False, soft_wrap=True)
    if outcome.skipped:
        out.print(f"resumed: {len(outcome.skipped)} finished job(s) kept, {len(outcome.records)} run now")
    out.print(f"results: {outcome.store.dir}  (status: {outcome.status})")
    return outcome.exit_code


def _yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def cmd_validate(args: argparse.Namespace) -> int:
    """Load and check each suite against the registry; 2 when any is invalid."""
    from cxrbench.cli.console import print_error
    from cxrbench.errors import CxrbenchError
    from cxrbench.plugins import get_registry
    from cxrbench.suite.checks import check_suite
    from cxrbench.suite.loader import load_suite

    registry = get_registry()
    bad = 0
    for path in args.suites:
        try:
            suite = load_suite(path, args.set)
            check_suite(suite, registry, path)
            console().print(f"[green]ok[/green] {path} ({suite.name}: {len(suite.models)} models, "
                            f"{suite.task.type}, dataset {suite.dataset.name})")
        except CxrbenchError as exc:
            print_error(str(exc), "[red]invalid[/red]")
            bad += 1
    return 2 if bad else 0
