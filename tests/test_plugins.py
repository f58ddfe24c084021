"""Plugin discovery: entry points, guarded imports, duplicate names, misspelled hooks, hook docs."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

from cxrbench import hookspecs
from cxrbench.cli import main
from cxrbench.errors import PluginError
from cxrbench.plugins import get_registry, load_plugin_manager
from tests.plugin_factory import make_plugin, remove_plugin_path

REPO = Path(__file__).resolve().parents[1]

TINY_MODEL_PLUGIN = '''
import torch.nn as nn
from cxrbench.hookspecs import hookimpl
from cxrbench.specs import ModelSpec


class Tiny(nn.Module):
    def __init__(self, in_chans, num_classes):
        super().__init__()
        self.stem = nn.Conv2d(in_chans, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.pool(self.stem(x).relu()).flatten(1))


@hookimpl
def register_models():
    return [ModelSpec(name="tiny_test_net", build=lambda r: Tiny(r.in_chans, r.num_classes), family="test",
                      paper="none", default_input_size=32, classifier="head", first_conv="stem",
                      stages=("stem",))]
'''


@pytest.fixture
def plugin_dir(tmp_path, fresh_registry):
    made: list[str] = []

    def make(name: str, code: str) -> None:
        make_plugin(tmp_path / "site", name, code)
        made.append(name)

    yield make
    remove_plugin_path(tmp_path / "site", *made)


def test_builtins_register_through_hooks():
    reg = get_registry()
    builtin = {p.name: p for p in reg.plugins if p.builtin}
    assert builtin["models"].hooks == ["register_model_namespaces", "register_models"]
    assert reg.models["lenet"].plugin == "cxrbench.builtins.models"
    assert reg.datasets["synthetic_cxr"].plugin == "cxrbench.builtins.datasets"
    assert reg.metrics["accuracy"].plugin == "cxrbench.builtins.metrics"


def test_plugin_created_outside_core_adds_a_model_that_trains(plugin_dir, suite_file, tmp_path, capsys):
    plugin_dir("cxrb_tiny_plugin", TINY_MODEL_PLUGIN)
    assert main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["tiny_test_net"]["plugin"] == "cxrb_tiny_plugin"
    suite = suite_file(models=["tiny_test_net"])
    assert main(["run", str(suite), "--quiet", "--results", str(tmp_path / "res")]) == 0
    records = list((tmp_path / "res").glob("tiny/*/records/tiny_test_net__fold0__seed0.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["status"] == "ok"


def test_plugin_that_fails_to_import_is_reported_not_fatal(plugin_dir, capsys):
    plugin_dir("cxrb_broken_plugin", "import no_such_module_anywhere\n")
    reg = get_registry()
    info = next(p for p in reg.plugins if p.name == "cxrb_broken_plugin")
    assert "ModuleNotFoundError" in info.error and "no_such_module_anywhere" in info.error
    assert "lenet" in reg.models  # everything else still loads
    assert main(["plugins", "--json"]) == 0
    shown = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert "no_such_module_anywhere" in shown["cxrb_broken_plugin"]["error"]
    assert main(["plugins", "--check"]) == 1


def test_register_hook_that_raises_is_reported(plugin_dir):
    plugin_dir("cxrb_raising_plugin", '''
from cxrbench.hookspecs import hookimpl

@hookimpl
def register_models():
    raise RuntimeError("boom in register")
''')
    reg = get_registry()
    info = next(p for p in reg.plugins if p.name == "cxrb_raising_plugin")
    assert "boom in register" in info.error and "lenet" in reg.models


def test_duplicate_model_name_is_an_error_naming_both(plugin_dir):
    plugin_dir("cxrb_dup_plugin", TINY_MODEL_PLUGIN.replace('"tiny_test_net"', '"lenet"'))
    with pytest.raises(PluginError) as err:
        get_registry()
    assert "'lenet' is registered twice" in str(err.value)
    assert "cxrbench.builtins.models" in str(err.value) and "cxrb_dup_plugin" in str(err.value)


def test_misspelled_hook_is_an_error(plugin_dir):
    plugin_dir("cxrb_typo_plugin", '''
from cxrbench.hookspecs import hookimpl

@hookimpl
def register_modles():
    return []
''')
    with pytest.raises(PluginError, match="register_modles"):
        load_plugin_manager()


HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if hasattr(fn, "cxrbench_spec"))


def test_hookspecs_found():
    assert HOOKS == ["on_epoch_end", "on_model_result", "on_run_end", "on_run_start", "register_datasets",
                     "register_executors", "register_latency_backends", "register_metrics", "register_model_namespaces",
                     "register_models"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_docstring_doc_entry_and_test(hook):
    """Like datasette's meta-tests: a hook nobody documents or tests does not ship."""
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"^#### `{hook}\(", readme, re.M), f"README has no '#### `{hook}(' section"
    tests = "".join(p.read_text() for p in (REPO / "tests").glob("test_*.py") if p.name != "test_plugins.py")
    assert hook in tests, f"no test outside test_plugins.py mentions {hook}"
