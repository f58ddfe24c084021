"""Executors: a Ray run (local cluster, 2 CPUs) writes what a local run writes; retries; resume.

Tests that need Ray skip without it (`pip install cxrbench[ray]`); one module-scoped Ray is
shared, so the executor must join it and leave it running.
"""

from __future__ import annotations

import hashlib
import os
import sys

import pytest
import torch
from rich.console import Console

from cxrbench.engine.executors.ray import RAY_HINT, _ray_temp_dir
from cxrbench.engine.progress import JobTable
from cxrbench.engine.runner import run_suite, with_executor
from cxrbench.errors import CxrbenchError, SuiteError
from cxrbench.hookspecs import hookimpl
from cxrbench.plugins import Registry, get_registry, load_plugin_manager
from cxrbench.results.store import RunStore
from cxrbench.specs import ModelSpec
from cxrbench.suite.checks import check_suite
from cxrbench.suite.loader import load_suite, protocol_hash

pytestmark = pytest.mark.ray

TWO_BY_TWO = dict(models=["lenet", {"name": "lenet", "label": "lenet_pool", "params": {"head": "adaptive"}}],
                  split={"strategy": "kfold", "folds": 2, "seed": 0}, train={"save_checkpoints": True})


class Events:
    """Records the lifecycle hooks the driver calls."""

    def __init__(self):
        self.epochs: dict[str, list[dict]] = {}
        self.results: list[tuple[str, str]] = []

    @hookimpl
    def on_epoch_end(self, run, job, epoch, logs):
        self.epochs.setdefault(job, []).append(dict(logs))

    @hookimpl
    def on_model_result(self, run, record):
        self.results.append((record.job_id, record.status))


class Exploding(Events):
    """Also registers a model that never builds: a plugin that exists only in the driver process."""

    @hookimpl
    def register_models(self):
        def explode(request):  # nested: cloudpickle ships it to Ray workers by value
            raise RuntimeError("this model always fails to build")
        return [ModelSpec(name="exploding_net", build=explode, family="test", paper="none")]


def registry_with(*plugins) -> Registry:
    return Registry(*load_plugin_manager(extra_plugins=plugins))


@pytest.fixture(autouse=True)
def _quiet_tracking(monkeypatch):
    monkeypatch.setenv("CXRBENCH_MLFLOW", "0")  # an installed tracking plugin would slow every run


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason=RAY_HINT)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=_ray_temp_dir(), log_to_driver=False)
    yield ray
    ray.shutdown()


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ray_run_writes_what_a_local_run_writes(suite_file, tmp_path, local_ray):
    suite = suite_file(**TWO_BY_TWO)
    root = tmp_path / "results"
    local_events, ray_events = Events(), Events()
    local = run_suite(suite, results_root=root, device="cpu", registry=registry_with(local_events))
    ray_run = run_suite(suite, results_root=root, device="cpu", registry=registry_with(ray_events),
                        executor="ray")
    assert local_ray.is_initialized()  # joined the fixture's Ray: not shut down
    spans = [(a["started"], a["started"] + a["seconds"]) for a in ray_run.executor["attempts"]]
    assert len(spans) == 4 and max_overlap(spans) <= 2  # 1 CPU per job on 2 CPUs
    assert local.status == ray_run.status == "complete"
    a, b = local.store, ray_run.store
    ha, hb = a.read_header(), b.read_header()
    assert ha["split_manifest_sha256"] == hb["split_manifest_sha256"]
    assert _sha(a.dir / "splits.csv") == _sha(b.dir / "splits.csv")
    assert ha["protocol_sha256"] == hb["protocol_sha256"]
    assert (ha["executor"]["name"], hb["executor"]["name"]) == ("local", "ray")
    ra = {r.job_id: r for r in a.records()}
    rb = {r.job_id: r for r in b.records()}
    jobs = {f"{m}__fold{f}__seed0" for m in ("lenet", "lenet_pool") for f in (0, 1)}
    assert jobs <= set(ra) and set(ra) == set(rb)
    for job in jobs:
        x, y = ra[job], rb[job]
        assert y.status == "ok", y.error
        assert x.metrics == y.metrics and x.ci == y.ci and x.curves == y.curves, job
        assert x.confusion_matrix == y.confusion_matrix and x.cost == y.cost
        assert (x.predictions_path, x.checkpoint_path) == (y.predictions_path, y.checkpoint_path)
        assert _sha(a.dir / x.predictions_path) == _sha(b.dir / y.predictions_path)
        wa, wb = torch.load(a.dir / x.checkpoint_path), torch.load(b.dir / y.checkpoint_path)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
        assert "epoch 1" in (b.dir / "logs" / f"{job}.log").read_text()
    # hooks ran on the driver for every job, with the same epoch logs a local run delivers
    assert ray_events.epochs == local_events.epochs and set(ray_events.epochs) == jobs
    assert sorted(ray_events.results) == sorted((j, "ok") for j in jobs)


def test_ray_jobs_profile_latency_and_the_driver_writes_it(suite_file, tmp_path, local_ray):
    """profile.latency runs inside the Ray task (portable registry); records reach <run>/latency."""
    from cxrbench.results.latency import load_latency_records

    latency = {"enabled": True, "preset": "quick", "runtimes": ["torch"], "min_samples": 5, "min_seconds": 0.05,
               "max_seconds": 2, "warmup_seconds": 0.05, "calibration": False, "device_name": "box"}
    suite = suite_file(profile={"latency": latency}, metrics={"bootstrap": 0})
    root = tmp_path / "results"
    outcome = run_suite(suite, results_root=root, device="cpu", executor="ray")
    assert outcome.status == "complete"
    (rec,) = load_latency_records(root, suite="tiny")
    assert rec["status"] == "ok", rec.get("error")
    assert (rec["model"], rec["run"], rec["device_name"]) == ("lenet", outcome.store.run_id, "box")
    assert rec["n_samples"] >= 5 and rec["min_ms"] <= rec["median_ms"] <= rec["p90_ms"]
    (job,) = [r for r in outcome.store.records() if r.kind == "model"]
    assert rec["params"] == job.cost["params"]


def test_failed_ray_job_is_retried_then_recorded_and_resume_skips_finished(suite_file, tmp_path, local_ray):
    events = Exploding()
    registry = registry_with(events)
    suite = suite_file(models=["exploding_net", "lenet"], metrics={"baselines": False})
    root = tmp_path / "results"
    out = run_suite(suite, ["executor.retries=2"], results_root=root, device="cpu", registry=registry,
                    executor="ray")
    assert out.status == "failed" and out.exit_code == 1
    records = {r.job_id: r for r in out.store.records()}
    bad, good = records["exploding_net__fold0__seed0"], records["lenet__fold0__seed0"]
    assert bad.status == "failed" and good.status == "ok"
    assert "RuntimeError: this model always fails to build" in bad.error
    assert bad.error.endswith("[failed 3 attempts]")
    logged = (out.store.dir / "logs" / f"{bad.job_id}.log").read_text()
    assert [f"attempt {i} " in logged for i in (1, 2, 3)] == [True] * 3 and "attempt 4 " not in logged
    assert logged.count("Traceback") == 3
    assert sorted(events.results) == [("exploding_net__fold0__seed0", "failed"), ("lenet__fold0__seed0", "ok")]
    assert [a["attempt"] for a in out.executor["attempts"] if a["job"] == bad.job_id] == [1, 2, 3]

    kept = out.store.record_path(good.job_id).read_text()
    again = run_suite(suite, ["executor.retries=0"], results_root=root, device="cpu", registry=registry,
                      executor="ray", resume=str(out.store.dir))
    assert again.skipped == ["lenet__fold0__seed0"]
    assert [r.job_id for r in again.records] == ["exploding_net__fold0__seed0"]
    assert not again.records[0].error.endswith("attempts]")  # retries=0: one attempt
    assert out.store.record_path(good.job_id).read_text() == kept  # not rerun, not rewritten
    assert RunStore(out.store.dir).read_header()["status"] == "failed"


def test_ray_missing_says_how_to_install(suite_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(CxrbenchError, match=r"pip install cxrbench\[ray\]"):
        run_suite(suite_file(), results_root=tmp_path / "results", device="cpu", executor="ray")
    assert not (tmp_path / "results").exists()  # failed before any work


def test_executor_overrides_do_not_change_the_protocol(suite_file):
    path = suite_file(executor={"name": "local", "num_cpus": 2})
    suite = load_suite(path)
    ray = with_executor(suite, "ray", "auto")
    assert (ray.executor.name, ray.executor.address, ray.executor.num_cpus) == ("ray", "auto", 2)
    assert with_executor(suite).executor == suite.executor
    assert protocol_hash(ray) == protocol_hash(suite)
    with pytest.raises(SuiteError, match="--address"):
        with_executor(suite, None, "auto")
    with pytest.raises(SuiteError, match="executor.name: unknown executor 'dask'"):  # executors are plugins:
        check_suite(with_executor(suite, "dask"), get_registry(), str(path))       # checked against the registry
    with pytest.raises(SuiteError):
        with_executor(suite, "not a name!")
    assert load_suite(suite_file(executor="ray")).executor.name == "ray"  # shorthand
    with pytest.raises(SuiteError, match="num_gpus"):
        load_suite(suite_file(executor={"name": "ray", "num_gpus": -1}))


def test_job_table_states_and_eta():
    now = [0.0]
    table = JobTable(["a", "b", "c"], "Ray local", clock=lambda: now[0])
    table.started("a", "node-1")
    table.started("b", "node-2")
    table.epoch("a", 3, 10)
    now[0] = 10.0
    table.ended("a", "ok")
    # 1 queued x 10 s mean + b's 0 s left (10 s in), over 2 jobs at once
    assert table.eta() == pytest.approx(5.0)
    table.retry("b", 1, "RuntimeError: boom")
    assert (table.count("done"), table.count("retrying"), table.count("queued")) == (1, 1, 1)
    now[0] = 12.0
    table.started("b", "node-1", attempt=2)
    table.ended("b", "failed")
    console = Console(record=True, width=120)
    console.print(table)
    text = console.export_text()
    assert "2/3 finished, 1 failed, 1 queued" in text and "node-2" not in text and "node-1" in text
    rows = {line.split()[0]: line.split()[1] for line in text.splitlines()[2:5]}
    assert rows == {"a": "done", "b": "failed", "c": "queued"}


def test_shared_cache_ships_a_path_not_the_images(suite_file, tmp_path):
    """executor.images=shared_cache: workers memory-map the cache entry instead of receiving pixels."""
    pytest.importorskip("ray", reason=RAY_HINT)
    from dataclasses import replace

    import numpy as np

    from cxrbench.data.prepare import prepare_data
    from cxrbench.engine.batches import make_batches
    from cxrbench.engine.executors.base import RunContext
    from cxrbench.engine.executors.ray import RayExecutor
    from cxrbench.engine.jobs import job_kind_for
    from cxrbench.plugins import get_registry

    suite = load_suite(suite_file(executor={"name": "ray", "images": "shared_cache"}))
    data = prepare_data(suite, get_registry())
    entry = tmp_path / "cache-entry"
    entry.mkdir()
    extra = np.zeros((3, *data.images.shape[1:]), np.uint8)  # an entry keeps dropped rows at the end
    np.save(entry / "images.npy", np.concatenate([data.images, extra]))
    data = replace(data, notes={"image_cache": {"path": str(entry), "hit": True}})
    ctx = RunContext(suite, data, make_batches(suite, data), get_registry(), None, torch.device("cpu"),
                     job_kind_for(suite), "auto", None, None)
    shared = RayExecutor(suite.executor)._shared(ctx)
    assert shared.data.images.size == 0 and shared.device == "cpu" and shared.threads == torch.get_num_threads()
    assert np.array_equal(shared.worker_data().images, data.images)
    assert set(shared.registry.models) == {"lenet"} and shared.registry.pm is None
    assert {"accuracy", "f1", "roc_auc", "loss"} <= set(shared.registry.metrics)
