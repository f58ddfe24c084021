"""Executors are plugins: a third-party executor, written here outside the core, runs a suite."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cxrbench import hookimpl
from cxrbench.engine.runner import run_suite
from cxrbench.errors import SuiteError
from cxrbench.plugins import Registry, load_plugin_manager
from cxrbench.specs import ExecutorSpec


class ReverseExecutor:
    """Runs the planned jobs last-first in this process (what a scheduler plugin might do)."""

    name = "reverse"
    seen: list[str] = []

    def __init__(self, config):
        self.tag = config.options.get("tag", "none")
        self.stats = {"order": []}

    def describe(self):
        return {"name": self.name, "tag": self.tag}

    def run(self, jobs, ctx):
        for job in reversed(jobs):
            self.stats["order"].append(job.id)
            yield job, ctx.attempt(job)


class ReversePlugin:
    @staticmethod
    @hookimpl
    def register_executors():
        return [ExecutorSpec(name="reverse", create=ReverseExecutor, description="last job first")]


def _registry() -> Registry:
    return Registry(*load_plugin_manager(extra_plugins=(ReversePlugin,)))


def test_a_third_party_executor_runs_a_suite_like_local(suite_file, tmp_path):
    models = ["lenet", {"name": "lenet", "label": "lenet_b", "params": {"head": "adaptive"}}]
    suite = suite_file(models=models, metrics={"baselines": False})
    registry = _registry()
    local = run_suite(suite, results_root=tmp_path / "a", device="cpu", registry=registry)
    other = run_suite(suite, results_root=tmp_path / "b", device="cpu", registry=registry, executor="reverse")
    assert other.status == "complete" and other.exit_code == 0
    assert [r.job_id for r in other.records] == ["lenet_b__fold0__seed0", "lenet__fold0__seed0"]
    header = other.store.read_header()
    assert header["executor"]["name"] == "reverse" and header["executor"]["tag"] == "none"
    assert header["executor"]["order"] == ["lenet_b__fold0__seed0", "lenet__fold0__seed0"]
    # where jobs run never changes results: metrics equal the local executor's bit for bit
    by_job = {r.job_id: r.metrics for r in local.records}
    for rec in other.records:
        assert rec.metrics == by_job[rec.job_id]
        assert (other.store.dir / rec.predictions_path).read_bytes() == \
            (local.store.dir / rec.predictions_path).read_bytes()


def test_executor_options_reach_the_plugin(suite_file, tmp_path):
    suite = suite_file(executor={"name": "reverse", "options": {"tag": "night"}}, metrics={"baselines": False})
    out = run_suite(suite, results_root=tmp_path, device="cpu", registry=_registry())
    assert out.store.read_header()["executor"]["tag"] == "night"


def test_unknown_executor_fails_validation_naming_the_field(suite_file, tmp_path):
    suite = suite_file(executor={"name": "reverse"})
    with pytest.raises(SuiteError, match=r"executor.name: unknown executor 'reverse'.*local, ray"):
        run_suite(suite, results_root=tmp_path, device="cpu")
    assert not (tmp_path / "tiny").exists()  # nothing started
    cli = subprocess.run([sys.executable, "-m", "cxrbench.cli", "validate", str(suite)], capture_output=True,
                         text=True)
    assert cli.returncode == 2 and "executor.name: unknown executor 'reverse'" in cli.stdout + cli.stderr
