"""The command line's own room: fast parsing, no heavy imports before a command needs them,
exit codes, and the constants the parsers copy from the domain packages."""

from __future__ import annotations

import ast
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cxrbench.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "pandas", "matplotlib", "sklearn", "scipy")


def _python(code: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def _imported(importtime_stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_help_imports_neither_torch_nor_pandas_nor_the_plugins():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cxrbench.cli", "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "doctor" in proc.stdout and "validate" in proc.stdout
    names = _imported(proc.stderr)
    assert "cxrbench.cli.doctor" in names  # the parse of importtime output sees our own modules
    tops = {n.split(".")[0] for n in names}
    assert not tops & set(HEAVY), sorted(tops & set(HEAVY))
    assert not {"cxrbench.plugins", "cxrbench.specs", "numpy", "rich", "pydantic"} & names


def test_every_subcommand_parser_is_light():
    """Building and parsing every subcommand (and its --help) imports no domain code and builds no model."""
    proc = _python("""
        import contextlib, io, json, sys
        from cxrbench.cli import build_parser
        argvs = [["run", "s.yaml", "--executor", "anything"], ["validate", "a.yaml"], ["leaderboard"], ["models"],
                 ["datasets"], ["datasets", "describe", "kermany"], ["metrics"], ["plugins"], ["profile", "lenet"],
                 ["results", "import", "f.json"], ["report", "RUN"], ["probe", "RUN"], ["doctor", "--json"]]
        for argv in argvs:
            build_parser().parse_args(argv)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
                build_parser().parse_args([argv[0], "--help"])
        before = sorted(sys.modules)
        args = build_parser().parse_args(["probe", "RUN", "--mask", "0.6x0.5"])  # parsed by the probes' own code
        print(json.dumps([before, sorted(sys.modules), [args.mask.width, args.mask.height]]))
    """)
    before, after, mask = json.loads(proc.stdout)
    assert not sorted(m for m in before if m.split(".")[0] in HEAVY or m.startswith("cxrbench.plugins"))
    assert not {m for m in before if m.startswith("cxrbench.") and not m.startswith("cxrbench.cli")} - \
        {"cxrbench.errors", "cxrbench.hookspecs"}
    assert "cxrbench.probes.masking" in after and mask == [0.6, 0.5]
    assert not {"timm", "pandas", "torchvision"} & set(after)


def test_registry_with_the_builtins_imports_no_torch_and_listing_models_builds_none():
    proc = _python("""
        import json, sys
        import cxrbench.plugins as plugins
        plugins.entry_points = lambda group: []  # the built-in plugins only
        from cxrbench.cli import main
        assert main(["models", "--json"]) == 0
        print("\\n" + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "timm"))))
    """)
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == []
    rows = json.loads("\n".join(lines[:-1]))
    assert {"lenet", "resnet18", "mobilenet_v1", "shufflenet_v1"} <= {r["name"] for r in rows}
    assert next(r for r in rows if r["name"] == "shufflenet_v1")["params_schema"]["properties"]["groups"]["default"] == 3


def test_models_listing_never_calls_a_builder(monkeypatch, capsys):
    from cxrbench.plugins import Registry, load_plugin_manager
    from cxrbench.testing import failing_model_plugin

    registry = Registry(*load_plugin_manager(extra_plugins=(failing_model_plugin("exploding_net"),)))
    monkeypatch.setattr("cxrbench.plugins.get_registry", lambda: registry)
    assert main(["models", "--json"]) == 0
    assert "exploding_net" in {r["name"] for r in json.loads(capsys.readouterr().out)}


def test_lazy_builtin_builders_build_the_same_networks_and_pickle():
    from cxrbench.models import baselines
    from cxrbench.models.cost import count_params
    from cxrbench.models.factory import build_model
    from cxrbench.plugins import get_registry
    from cxrbench.specs import BuildRequest

    registry = get_registry()
    for name, direct in (("resnet18", baselines.torchvision_builder("resnet18", "fc", "conv1")),
                         ("lenet", baselines.build_lenet), ("shufflenet_v1", baselines.build_shufflenet_v1)):
        spec = registry.model(name)
        again = pickle.loads(pickle.dumps(spec.build))
        req = BuildRequest(num_classes=2, in_chans=3, params=spec.params_schema())
        assert count_params(again(req))[0] == count_params(direct(req))[0] == \
            count_params(build_model(spec, num_classes=2, in_chans=3))[0]
    assert count_params(build_model(registry.model("lenet"), num_classes=2, in_chans=3))[0] == 5_612_046


def test_lazy_latency_backends_resolve_by_name_in_the_worker():
    from cxrbench.plugins import get_registry
    from cxrbench.profiling.runtimes import onnx, qualified_name, resolve

    backends = get_registry().latency_backends
    for name in ("torch", "onnxruntime", "int8"):
        ref = qualified_name(backends[name].load)
        assert ref.startswith("cxrbench.builtins.latency:") and resolve(ref) is backends[name].load
    assert backends["onnxruntime"].check() == onnx.check()


def test_parser_constants_match_the_domain_packages():
    from cxrbench.cli import probe, profile
    from cxrbench.probes import masking, source
    from cxrbench.suite.latency import PRESETS

    assert profile.LATENCY_PRESETS == tuple(sorted(PRESETS))
    assert (probe.RETAIN, probe.MIN_MARGIN, probe.WARN_AUC) == (masking.RETAIN, masking.MIN_MARGIN, source.WARN_AUC)
    assert masking.parse_geometry(probe.MASK) == masking.MaskGeometry(0.7, 0.7)


def test_no_parser_outside_the_cli_package():
    offenders = []
    for path in sorted((ROOT / "cxrbench").rglob("*.py")):
        if "cli" in path.relative_to(ROOT / "cxrbench").parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) else []
            if "argparse" in names or any(n and n.startswith("cxrbench.cli") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders
    proc = _python("""
        import sys
        import cxrbench.profiling, cxrbench.report, cxrbench.probes
        print(any(m.startswith("cxrbench.cli") for m in sys.modules))
    """)
    assert proc.stdout.strip() == "False"


def test_executor_is_any_name_at_parse_time_and_checked_against_the_registry(suite_file, capsys):
    assert build_parser().parse_args(["run", "x.yaml", "--executor", "my_cluster"]).executor == "my_cluster"
    suite = suite_file()
    assert main(["run", str(suite), "--executor", "my_cluster", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown executor 'my_cluster'" in " ".join(err.split())


def test_exit_codes_bad_input_and_interrupt(monkeypatch, tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "invalid" in capsys.readouterr().err

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("cxrbench.cli.registry.cmd_metrics", interrupted)
    assert main(["metrics"]) == 130
    assert "interrupted" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "cxrbench.cli", "metrics", "--json"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0
    assert {"accuracy", "roc_auc", "loss"} <= {m["name"] for m in json.loads(proc.stdout)}
