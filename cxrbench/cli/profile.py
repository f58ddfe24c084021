"""``cxrbench profile`` (cost, and latency when asked) and ``cxrbench results import``.

The parsers import nothing heavy: the latency presets are named here (:data:`LATENCY_PRESETS`, a
test keeps it equal to :data:`cxrbench.suite.latency.PRESETS`) and torch is imported by the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrbench.errors import CxrbenchError, ResultsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from cxrbench.suite.latency import LatencyConfig

LATENCY_PRESETS = ("default", "quick")
"""The names of :data:`cxrbench.suite.latency.PRESETS` (``--preset`` choices)."""
LATENCY_OPTIONS = ("runtimes", "threads", "batch_sizes", "preset", "device", "device_name", "min_samples",
                   "min_seconds", "max_seconds", "cpus", "busy_scope", "suite", "out", "run", "paired")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cxrbench profile``."""
    parser.add_argument("models", nargs="*", help="registered model names (with --suite: labels to keep)")
    parser.add_argument("--input-size", type=int, help="square input size (default: the model's default)")
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--in-chans", type=int, default=3, choices=[1, 3])
    parser.add_argument("--json", action="store_true", help="print every record as JSON")
    g = parser.add_argument_group("latency (measured with --latency or any option below)")
    g.add_argument("--latency", action=argparse.BooleanOptionalAction, default=None,
                   help="measure latency (default: only when a latency option is given)")
    g.add_argument("--runtimes", type=_csv, help="comma-separated: torch,onnxruntime,int8 (default: all registered)")
    g.add_argument("--threads", type=_csv, help="comma-separated thread counts or 'all' (default: 1)")
    g.add_argument("--batch-sizes", type=_csv, help="comma-separated (default: 1)")
    g.add_argument("--preset", choices=LATENCY_PRESETS, help="default (300 samples, 10 s) or quick")
    g.add_argument("--min-samples", type=int)
    g.add_argument("--min-seconds", type=float)
    g.add_argument("--max-seconds", type=float)
    g.add_argument("--cpus", type=_csv, help="CPUs to pin to (default: the last N allowed)")
    g.add_argument("--busy-scope", choices=["pinned", "all"],
                   help="drop chunks when others used the pinned CPUs (default) or any CPU (dedicated devices)")
    g.add_argument("--device", choices=["cpu", "cuda", "auto"], help="device of the torch runtime (default: cpu)")
    g.add_argument("--device-name", help="label of this machine, e.g. rpi5 (default: the hostname)")
    g.add_argument("--calib", choices=["synthetic", "random"], default="synthetic",
                   help="models named without --suite: int8 calibration / check images, synthetic_cxr "
                        "(default) or random normal (with --suite: the suite's training images, as in its runs)")
    g.add_argument("--calib-count", type=int, help="int8 calibration images (default 256)")
    g.add_argument("--suite", help="profile every model of this suite at its input size, classes and channels")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a suite field")
    g.add_argument("--run", metavar="RUN", help="with --suite: load the trained checkpoints of this run")
    g.add_argument("--results", type=Path, help="results folder to find --run in")
    g.add_argument("--out", type=Path, help="write a latency file (for `cxrbench results import`)")
    g.add_argument("--no-samples", action="store_true", help="do not keep the raw per-iteration samples")
    g.add_argument("--paired", action="store_true",
                   help="two models: interleave them in A B B A chunks in the same pinned processes and report "
                        "the latency ratio B/A with a CI (machine drift cancels); default runtime torch")
    g.add_argument("--chunk-iters", type=int, default=5, help="--paired: iterations per chunk (default 5)")


def latency_config(args: argparse.Namespace, base: LatencyConfig | None = None) -> LatencyConfig:
    """A :class:`LatencyConfig` from the command line, over ``base`` (a suite's ``profile.latency``)."""
    from cxrbench.plugins import get_registry
    from cxrbench.suite.latency import PRESETS, LatencyConfig

    data: dict[str, Any] = base.model_dump(exclude_unset=True) if base is not None else {}
    if base is None and not args.runtimes:
        data["runtimes"] = list(get_registry().latency_backends)
    for key in ("runtimes", "preset", "device", "device_name", "min_samples", "min_seconds", "max_seconds",
                "busy_scope"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.preset is not None and base is not None:  # a preset on the command line beats the suite's timings
        data = {k: v for k, v in data.items() if k not in PRESETS[args.preset]}
    if args.threads:
        data["threads"] = [t if t == "all" else int(t) for t in args.threads]
    if args.batch_sizes:
        data["batch_sizes"] = [int(b) for b in args.batch_sizes]
    if args.cpus:
        data["cpus"] = [int(c) for c in args.cpus]
    if args.calib_count:
        data["calib_images"] = args.calib_count
    if args.no_samples:
        data["keep_samples"] = False
    try:
        return LatencyConfig.model_validate(data)
    except Exception as exc:  # pydantic's message names the field
        raise CxrbenchError(f"invalid latency options: {exc}") from None


def _wants_latency(args: argparse.Namespace) -> bool:
    if args.latency is not None:
        return args.latency
    return any(getattr(args, k, None) for k in LATENCY_OPTIONS)


class _Target:
    """One model to profile: how to build it and what to call it."""

    def __init__(self, label: str, name: str, build: Any, size: int, in_chans: int, num_classes: int,
                 meta: dict[str, Any], cost_args: tuple):
        self.label, self.name, self.build, self.size = label, name, build, size
        self.in_chans, self.num_classes, self.meta, self.cost_args = in_chans, num_classes, meta, cost_args


def _registered_targets(args: argparse.Namespace, registry: Any) -> list[_Target]:
    from cxrbench.models.factory import build_model

    if not args.models:
        raise CxrbenchError("name at least one model (see `cxrbench models`) or give --suite")
    out = []
    for name in args.models:
        spec = registry.model(name)
        size = args.input_size or spec.default_input_size
        kwargs = {"num_classes": args.num_classes, "in_chans": args.in_chans, "image_size": size}
        out.append(_Target(name, name, lambda s=spec, k=kwargs: build_model(s, **k), size, args.in_chans,
                           args.num_classes, {"model_name": name}, (spec, args.num_classes, args.in_chans, size)))
    return out


def _suite_targets(args: argparse.Namespace, registry: Any) -> tuple[Any, list[_Target]]:
    from cxrbench.engine.jobs import build_model
    from cxrbench.suite.checks import check_suite
    from cxrbench.suite.loader import load_suite

    suite = load_suite(args.suite, args.set, args.models or None)
    check_suite(suite, registry, args.suite)
    checkpoints = _checkpoints(args, suite) if args.run else {}
    size, chans, k = suite.input.image_size, suite.input.channels, len(suite.task.classes)
    out = []
    for entry in suite.models:
        meta: dict[str, Any] = {"model_name": entry.name, "suite": suite.name}
        ckpt = checkpoints.get(entry.key)
        if args.run and ckpt is None:
            raise ResultsError(f"run {args.run}: no checkpoint for model {entry.key!r} (was save_checkpoints on?)")
        if ckpt is not None:
            meta |= {"run": ckpt[1], "job": ckpt[2]}

        def build(e: Any = entry, c: Any = ckpt) -> torch.nn.Module:
            from cxrbench.models.factory import read_state_dict

            model, _ = build_model(suite, e, registry)
            if c is not None:
                model.load_state_dict(read_state_dict(c[0]))
            return model

        spec = registry.model(entry.name)
        params = spec.params_schema.model_validate(entry.params)
        out.append(_Target(entry.key, entry.name, build, size, chans, k, meta, (spec, k, chans, size, params,
                                                                                  suite.task.type)))
    return suite, out


def _checkpoints(args: argparse.Namespace, suite: Any) -> dict[str, tuple[Path, str, str]]:
    """model label -> (checkpoint file, run id, job id): the first ok job (lowest fold, seed) of each model."""
    from cxrbench.results.store import RunStore, default_results_root

    store = RunStore.open(args.run, args.results or default_results_root())
    return {model: (store.dir / rec.checkpoint_path, store.run_id, rec.job_id)
            for model, rec in store.first_checkpoints().items()}


def profile_command(args: argparse.Namespace) -> int:
    """Cost of every model (params, MACs, FLOPs), then latency records when asked; prints and writes them."""
    from cxrbench.plugins import get_registry
    from cxrbench.models.cost import model_cost

    registry = get_registry()
    suite = None
    if args.suite:
        suite, targets = _suite_targets(args, registry)
    else:
        if args.run:
            raise CxrbenchError("--run needs --suite")
        targets = _registered_targets(args, registry)
    rows = [{"model": t.label, **model_cost(*t.cost_args)} for t in targets]
    if args.paired:
        return _paired_command(args, targets, rows, suite, registry)
    if _wants_latency(args):
        # a suite's own latency block is the base; without one, the command line's defaults apply
        base = suite.profile.latency if suite and "latency" in suite.profile.model_fields_set else None
        cfg = latency_config(args, base)
        records = _suite_latency(suite, targets, cfg, registry) if suite else _latency(targets, cfg, args, registry)
        for row in rows:
            row["latency"] = [r for r in records if r["model"] == row["model"]]
        if args.out:
            from cxrbench.results.store import device_label
            from cxrbench.results.latency import write_latency_file

            device = device_label(cfg.device_name)
            write_latency_file(args.out, records, suite.name if suite else None, device)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        _print(rows, args)
    if args.out and _wants_latency(args):
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _paired_command(args: argparse.Namespace, targets: list[_Target], rows: list[dict[str, Any]], suite: Any,
                    registry: Any) -> int:
    """``--paired``: the two models' latency ratio B/A from interleaved chunks (one record per runtime,
    thread count and batch size), printed as JSON (``{"models": cost rows, "paired": records}``) or a table."""
    import torch

    from cxrbench.profiling.paired_run import profile_paired

    if len(targets) != 2:
        raise CxrbenchError(f"--paired compares exactly two models (A B), got {len(targets)}")
    if args.out:
        raise CxrbenchError("--paired writes no latency file (its records are ratios, not per-model latencies); "
                            "use --json")
    a, b = targets
    if (a.size, a.in_chans) != (b.size, b.in_chans):
        raise CxrbenchError(f"--paired needs one input shape: {a.label} takes {a.in_chans}x{a.size}, "
                            f"{b.label} {b.in_chans}x{b.size} (give --input-size)")
    if args.chunk_iters < 1:
        raise CxrbenchError(f"--chunk-iters must be >= 1, got {args.chunk_iters}")
    base = suite.profile.latency if suite and "latency" in suite.profile.model_fields_set else None
    cfg = latency_config(args, base)
    if not args.runtimes:
        cfg = cfg.model_copy(update={"runtimes": ["torch"]})
    torch.manual_seed(0)
    records = profile_paired(a.build(), b.build(), cfg, a.size, a.in_chans, (a.label, b.label), args.chunk_iters,
                             registry)
    if args.json:
        print(json.dumps({"models": rows, "paired": records}, indent=2, default=str))
        return 0
    for r in records:
        head = f"{r['b']} / {r['a']} ({r['runtime']}, {r['threads']} thr, batch {r['batch_size']})"
        if r["status"] != "ok":
            print(f"{head}: {r['status']}: {r.get('error')}")
            continue
        low, high = (_fmt(v, ".3f") or "unbounded" for v in r["ratio_ci"])
        print(f"{head}: latency ratio {r['ratio_b_over_a']:.3f} [{low}, {high}] ({100 * r['ratio_ci_coverage']:.1f}% CI, "
              f"{r['n_blocks']} ABBA blocks of {r['chunk_iters']} iterations, {r['blocks_dropped']} busy blocks dropped); "
              f"medians {r['a_median_ms']:.2f} / {r['b_median_ms']:.2f} ms")
    return 0


def _suite_latency(suite: Any, targets: list[_Target], cfg: LatencyConfig, registry: Any) -> list[dict[str, Any]]:
    """Latency of a suite's models by the policy of a profile-only run of that suite (its data, or
    the synthetic stand-in, calibrates int8; accuracy is measured only for trained weights)."""
    import torch

    from cxrbench.engine.batches import make_batches
    from cxrbench.engine.jobs.kernel import Job
    from cxrbench.engine.jobs.profile import ProfileOnly, profile_records

    suite = suite.model_copy(update={"profile": suite.profile.model_copy(update={"latency": cfg})})
    data = ProfileOnly().prepare_data(suite, registry)
    batches = make_batches(suite, data)
    entries = {e.key: e for e in suite.models}
    records = []
    for t in targets:
        torch.manual_seed(0)
        model = t.build().eval()
        job = Job(entries[t.label], 0, suite.seeds[0])
        records += profile_records(job, model, suite, data, batches, registry, trained="run" in t.meta,
                                   run_id=t.meta.get("run"), job_id=t.meta.get("job"))
    return records


def _latency(targets: list[_Target], cfg: LatencyConfig, args: argparse.Namespace,
             registry: Any) -> list[dict[str, Any]]:
    import torch

    from cxrbench.profiling.data import synthetic_images
    from cxrbench.profiling.profiler import profile_model, random_images

    n = cfg.calib_images if "int8" in cfg.runtimes else 16
    cache: dict[tuple[int, int], tuple[torch.Tensor, str]] = {}
    records = []
    for t in targets:
        key = (t.size, t.in_chans)
        if key not in cache:
            if args.calib == "random":
                cache[key] = (random_images(n, t.in_chans, (t.size, t.size)), f"{n} random normal images")
            else:
                cache[key] = (synthetic_images(n, t.size, t.in_chans, registry=registry),
                              f"{n} synthetic_cxr images (seed 0), ImageNet normalisation")
        images, source = cache[key]
        torch.manual_seed(0)
        model = t.build()
        records += profile_model(model, cfg, t.size, t.in_chans, images, None, name=t.label, meta=t.meta,
                                 calib_source=source, registry=registry)
    return records


def _fmt(v: Any, spec: str) -> str:
    return "" if v is None else format(v, spec)


def _print(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
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


def add_parsers(sub: Any) -> None:
    """``profile`` and ``results import``."""
    p = sub.add_parser("profile", help="parameters, MACs and (with --latency) measured latency of models")
    add_profile_arguments(p)
    p.set_defaults(func=profile_command)
    add_results_parser(sub)


def add_results_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``cxrbench results import FILE...``."""
    p = subparsers.add_parser("results", help="manage the results folder")
    sub = p.add_subparsers(dest="results_command", required=True)
    imp = sub.add_parser("import", help="merge latency files measured on another device into results/")
    imp.add_argument("files", nargs="+", type=Path)
    imp.add_argument("--results", type=Path, help="results folder (default: $CXRBENCH_RESULTS or ./results)")
    imp.add_argument("--suite", help="suite the records belong to (default: the file's)")
    imp.add_argument("--device-name", help="device label (default: the file's)")
    imp.set_defaults(func=results_import_command)
    return p


def results_import_command(args: argparse.Namespace) -> int:
    """Import each file; prints where it went."""
    from cxrbench.results.importer import import_latency_file
    from cxrbench.results.store import default_results_root

    root = args.results or default_results_root()
    for path in args.files:
        dest = import_latency_file(path, root, suite=args.suite, device_name=args.device_name)
        print(f"imported {path} -> {dest}")
    return 0
