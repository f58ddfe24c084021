"""The ``cxrbench`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cxrbench.errors import CxrbenchError

# Wide enough for a leaderboard when output is piped to a file or CI log (rich assumes 80 there).
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def _registry():
    from cxrbench.plugins import get_registry

    return get_registry()


def cmd_run(args: argparse.Namespace) -> int:
    from cxrbench.engine.progress import NullProgress, RichProgress
    from cxrbench.engine.runner import run_suite
    from cxrbench.leaderboard.render import render_terminal
    from cxrbench.leaderboard.table import build_boards, load_runs
    from cxrbench.suite.checks import check_suite
    from cxrbench.suite.loader import load_suite, resolved_dict

    models = args.models.split(",") if args.models else None
    if args.print_resolved:
        suite = load_suite(args.suite, args.set, models)
        check_suite(suite, _registry(), args.suite)
        print(json.dumps(resolved_dict(suite), indent=2) if args.json else _yaml(resolved_dict(suite)))
        return 0
    progress = NullProgress() if args.quiet else RichProgress(err_console)
    outcome = run_suite(args.suite, args.set, models, device=args.device, results_root=args.results,
                        resume=args.resume, progress=progress, strict=args.strict, executor=args.executor,
                        address=args.address)
    root = outcome.store.dir.parent.parent
    boards = build_boards(load_runs(root, run=outcome.store.run_id))
    profile = outcome.store.read_header()["suite"].get("profile", {})
    if profile.get("latency", {}).get("enabled") or profile.get("only"):
        from cxrbench.leaderboard.latency import attach_latency

        attach_latency(boards, root)
    render_terminal(boards, console)
    if outcome.skipped:
        console.print(f"resumed: {len(outcome.skipped)} finished job(s) kept, {len(outcome.records)} run now")
    console.print(f"results: {outcome.store.dir}  (status: {outcome.status})")
    return outcome.exit_code


def _yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def cmd_validate(args: argparse.Namespace) -> int:
    from cxrbench.suite.checks import check_suite
    from cxrbench.suite.loader import load_suite

    registry = _registry()
    bad = 0
    for path in args.suites:
        try:
            suite = load_suite(path, args.set)
            check_suite(suite, registry, path)
            console.print(f"[green]ok[/green] {path} ({suite.name}: {len(suite.models)} models, "
                          f"{suite.task.type}, dataset {suite.dataset.name})")
        except CxrbenchError as exc:
            err_console.print("[red]invalid[/red]", escape(str(exc)), highlight=False)
            bad += 1
    return 2 if bad else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from cxrbench.leaderboard.latency import LatencySetting, attach_latency, plot_pareto
    from cxrbench.leaderboard.render import render_terminal, render_text
    from cxrbench.leaderboard.table import build_boards, load_runs
    from cxrbench.results.store import default_results_root

    root = Path(args.results) if args.results else default_results_root()
    runs = load_runs(root, suite=args.suite, run=args.run, dataset=args.dataset)
    if not runs:
        raise CxrbenchError(f"no runs found under {root}/" + (" matching the filters" if
                                                            (args.suite or args.run or args.dataset) else
                                                            "; run a suite first: cxrbench run suites/quickstart.yaml"))
    boards = build_boards(runs, merge=args.merge, latest=args.latest)
    attach_latency(boards, root, LatencySetting(runtime=args.latency_runtime, threads=args.latency_threads,
                                                batch_size=args.latency_batch, device=args.device))
    for board in boards if args.plot == "pareto" else []:
        out = (args.plot_dir or root / board.suite) / f"pareto-{board.primary}"
        try:
            paths = plot_pareto(board, out)
        except ValueError as exc:
            err_console.print(f"[yellow]no Pareto plot:[/yellow] {escape(str(exc))}")
            continue
        err_console.print(f"wrote {', '.join(str(p) for p in paths)}")
    if args.format == "terminal":
        render_terminal(boards, console, reference=args.reference)
    else:
        text = render_text(boards, args.format)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            console.print(f"wrote {args.output}")
        else:
            print(text)
    return 0


def _print_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(r.get(c, "")) if r.get(c) is not None else "" for c in columns])
    console.print(table)


def cmd_models(args: argparse.Namespace) -> int:
    from cxrbench.models.info import model_info

    registry = _registry()
    rows = [model_info(spec, with_params=args.params) for spec in registry.models.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        cols = ["name", "family", "plugin", "default_input_size", "supports_pretrained", "paper"]
        if args.params:
            cols.insert(4, "params")
        _print_table(f"{len(rows)} models", rows, cols)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    registry = _registry()
    rows = [{"name": s.name, "tasks": list(s.tasks), "synthetic": s.synthetic, "plugin": s.plugin,
             "description": s.description, "source": s.source, "layout": s.layout}
            for s in registry.datasets.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(f"{len(rows)} datasets", [r | {"tasks": ", ".join(r["tasks"])} for r in rows],
                     ["name", "tasks", "synthetic", "plugin", "description"])
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    registry = _registry()
    rows = [{"name": s.name, "tasks": list(s.tasks), "higher_is_better": s.higher_is_better, "plugin": s.plugin,
             "description": s.description} for s in registry.metrics.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(f"{len(rows)} metrics", [r | {"tasks": ", ".join(r["tasks"])} for r in rows],
                     ["name", "tasks", "higher_is_better", "plugin", "description"])
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = _registry()
    rows = [p.as_dict() for p in registry.plugins]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table("plugins", [r | {"hooks": ", ".join(r["hooks"]), "error": r["error"] or ""} for r in rows],
                     ["name", "distribution", "version", "builtin", "hooks", "error"])
    return 1 if any(p.error for p in registry.plugins) and args.check else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxrbench", description=__doc__ or "cxrbench")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train and evaluate every model of a suite")
    p.add_argument("suite", help="suite YAML file, e.g. suites/quickstart.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a suite field (repeatable), e.g. --set train.epochs=1")
    p.add_argument("--models", help="comma-separated model labels to run (default: all in the suite)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--results", type=Path, help="results folder (default: $CXRBENCH_RESULTS or ./results)")
    p.add_argument("--resume", metavar="RUN", help="run folder or id to continue: finished jobs are skipped")
    p.add_argument("--print-resolved", action="store_true", help="print the fully resolved suite and exit")
    p.add_argument("--json", action="store_true", help="with --print-resolved: JSON instead of YAML")
    p.add_argument("--strict", action="store_true", help="fail on any unreadable image instead of skipping it")
    p.add_argument("--executor", choices=["local", "ray"],
                   help="where jobs run (default: the suite's executor block, local)")
    p.add_argument("--address", help="with --executor ray: cluster to join (auto, HOST:PORT); default: start Ray here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check suite files without running them")
    p.add_argument("suites", nargs="+")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("leaderboard", help="aggregate results into ranked tables")
    p.add_argument("--results", type=Path, help="results folder (default: $CXRBENCH_RESULTS or ./results)")
    p.add_argument("--suite", help="only this suite")
    p.add_argument("--run", help="only this run id")
    p.add_argument("--dataset", help="only runs on this dataset")
    p.add_argument("--latest", action="store_true", help="only the newest run of each suite")
    p.add_argument("--merge", action="store_true", help="merge runs even if their resolved suites differ")
    p.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                   help="show the paper's reported figures next to ours when the suite has them (default on)")
    p.add_argument("--format", default="terminal", choices=["terminal", "markdown", "csv", "html", "latex", "json"])
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

    for name, func, helptext in (("models", cmd_models, "list registered models"),
                                 ("datasets", cmd_datasets, "list registered datasets"),
                                 ("metrics", cmd_metrics, "list registered metrics"),
                                 ("plugins", cmd_plugins, "list plugins, their hooks and load errors")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--json", action="store_true")
        if name == "models":
            p.add_argument("--params", action="store_true", help="also count parameters (slower)")
        if name == "plugins":
            p.add_argument("--check", action="store_true", help="exit 1 if any plugin failed to load")
        p.set_defaults(func=func)
        if name == "datasets":
            from cxrbench.data.describe import add_describe_parser

            add_describe_parser(p)  # `cxrbench datasets describe NAME --root PATH`; plain `datasets` lists

    from cxrbench.profiling.command import add_profile_arguments, add_results_parser, profile_command

    p = sub.add_parser("profile", help="parameters, MACs and (with --latency) measured latency of models")
    add_profile_arguments(p)
    p.set_defaults(func=profile_command)
    add_results_parser(sub)

    from cxrbench.report.cli import add_report_parser

    add_report_parser(sub)

    from cxrbench.probes.command import add_probe_parser

    add_probe_parser(sub)  # `cxrbench probe RUN`: shortcut probes -> RUN/probes.json
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cxrbench`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except CxrbenchError as exc:
        if args.verbose:
            raise
        err_console.print("[bold red]error:[/bold red]", escape(str(exc)), highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
