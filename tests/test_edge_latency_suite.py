"""suites/edge_latency.yaml: a profile-only suite builds and profiles every model, trains none."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cxrbench.cli import main
from cxrbench.engine.runner import run_suite
from cxrbench.plugins import Registry, load_plugin_manager
from cxrbench.results.latency import load_latency_records
from cxrbench.results.store import RunStore
from cxrbench.suite.loader import load_suite, protocol_hash
from cxrbench.testing import failing_model_plugin

EDGE = Path(__file__).resolve().parents[1] / "suites" / "edge_latency.yaml"
FAST_LATENCY = ["profile.latency.preset=quick", "profile.latency.min_samples=5", "profile.latency.min_seconds=0.05",
                "profile.latency.max_seconds=1", "profile.latency.warmup_seconds=0.05",
                "profile.latency.busy_threshold=1.0",
                "profile.latency.calibration=false", "profile.latency.threads=[1]",
                "profile.latency.device_name=box"]
TINY = ["input.image_size=32", "dataset.options.n_samples=40", *FAST_LATENCY]
SETS = [*TINY, "profile.latency.runtimes=[torch, onnxruntime]"]
# hand counts at 3 x 32 x 32, 2 classes. LeNet: conv1 3*6*25+6, conv2 6*16*25+16, fc1 (16*6*6)*120+120,
# fc2 120*84+84, fc3 84*2+2. LR-Net ends in global pooling: the paper's 268,098 at any input size.
PARAMS = {"lenet": 456 + 2416 + 69240 + 10164 + 170, "lrnet": 268_098}


def _cli_args(*sets: str) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory):
    """`cxrbench run suites/edge_latency.yaml` on 2 tiny models, torch + onnxruntime (shared: it spawns timers)."""
    root = tmp_path_factory.mktemp("edge") / "results"
    assert main(["run", str(EDGE), "--quiet", "--results", str(root), "--models", "lenet,lrnet", *_cli_args(*SETS)]) == 0
    (run_dir,) = (root / "edge_latency").iterdir()
    return root, run_dir


def test_every_model_and_runtime_is_profiled_without_training(edge_run):
    root, run_dir = edge_run
    records = {r.model: r for r in RunStore(run_dir).records()}
    assert sorted(records) == ["lenet", "lrnet"]  # no baselines: nothing is trained or scored
    for model, rec in records.items():
        assert (rec.status, rec.kind, rec.metrics, rec.epochs_run) == ("ok", "profile", {}, 0)
        assert rec.predictions_path is None and not list((run_dir / "predictions").iterdir())
        assert rec.cost["params"] == PARAMS[model] and rec.cost["macs"] > 0
    lat = load_latency_records(root, suite="edge_latency")
    assert sorted((r["model"], r["runtime"]) for r in lat) == [
        ("lenet", "onnxruntime"), ("lenet", "torch"), ("lrnet", "onnxruntime"), ("lrnet", "torch")]
    for r in lat:
        assert r["status"] == "ok", r.get("error")
        assert r["params"] == PARAMS[r["model"]] and r["macs"] == records[r["model"]].cost["macs"]
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["max_ms"] and r["n_samples"] >= 5
        assert r["input_shape"] == [3, 32, 32] and r["threads"] == 1 and r["batch_size"] == 1
        assert (r["device_name"], r["run"], r["job"]) == ("box", run_dir.name, f"{r['model']}__fold0__seed0")
        if r["runtime"] == "onnxruntime":
            assert r["verification"]["passed"] is True
    header = json.loads((run_dir / "run.json").read_text())
    assert header["status"] == "complete" and header["jobs"] == ["lenet__fold0__seed0", "lrnet__fold0__seed0"]


def test_leaderboard_shows_params_macs_and_latency(edge_run, capsys):
    root, _ = edge_run
    lat = {(r["model"], r["runtime"]): r for r in load_latency_records(root, suite="edge_latency")}
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(root), "--suite", "edge_latency", "--format", "json"]) == 0
    (board,) = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in board["rows"]] == ["lenet", "lrnet"]  # cheapest (MACs) first
    assert [r["params"] for r in board["rows"]] == [PARAMS["lenet"], PARAMS["lrnet"]]
    assert all(r["kind"] == "profile" and r["accuracy_mean"] is None for r in board["rows"])
    got = {r["model"]: (r["device"], r["median_ms"], r["p90_ms"]) for r in board["latency"]}
    assert got == {m: ("box", pytest.approx(lat[m, "torch"]["median_ms"]), pytest.approx(lat[m, "torch"]["p90_ms"]))
                   for m in PARAMS}

    assert main(["leaderboard", "--results", str(root), "--suite", "edge_latency", "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert "ranked by MACs" in text and "ms median / p90 ↓ box" in text and "accuracy ↑" not in text
    for m in PARAMS:
        median, p90 = f"{lat[m, 'torch']['median_ms']:.2f}", f"{lat[m, 'torch']['p90_ms']:.2f}"
        assert re.search(rf"{re.escape(median)}( \[[0-9.?]+, [0-9.?]+\])? / {re.escape(p90)}", text), (m, median, p90)
        assert f"--models {m}" in text  # reproduce command of each row

    assert main(["leaderboard", "--results", str(root), "--suite", "edge_latency", "--format", "json",
                 "--latency-runtime", "onnxruntime"]) == 0
    (board,) = json.loads(capsys.readouterr().out)
    assert {r["model"]: r["p90_ms"] for r in board["latency"]} == {
        m: pytest.approx(lat[m, "onnxruntime"]["p90_ms"]) for m in PARAMS}


def test_resume_skips_the_profiled_models(edge_run, capsys):
    root, run_dir = edge_run
    before = {p.name: p.stat().st_mtime_ns for p in (run_dir / "latency").iterdir()}
    outcome = run_suite(EDGE, SETS, models=["lenet", "lrnet"], results_root=root, resume=str(run_dir), device="cpu")
    assert outcome.status == "complete" and outcome.records == []
    assert outcome.skipped == ["lenet__fold0__seed0", "lrnet__fold0__seed0"]
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "latency").iterdir()} == before


def test_a_crashing_model_fails_alone_and_missing_onnxruntime_is_unavailable(tmp_path, monkeypatch):
    import cxrbench.profiling.runtimes.onnx as onnx_runtime

    monkeypatch.setattr(onnx_runtime, "check", lambda: "onnxruntime not installed: pip install 'cxrbench[edge]'")
    registry = Registry(*load_plugin_manager(extra_plugins=(failing_model_plugin(),)))
    root = tmp_path / "results"
    outcome = run_suite(EDGE, [*SETS, "models=[exploding_net, lenet]"], results_root=root, device="cpu",
                        registry=registry)
    assert outcome.status == "failed" and outcome.exit_code == 1
    status = {r.model: r for r in outcome.store.records()}
    assert status["exploding_net"].status == "failed" and status["exploding_net"].kind == "profile"
    assert "this model always fails to build" in status["exploding_net"].error
    assert status["lenet"].status == "ok" and status["lenet"].cost["params"] == PARAMS["lenet"]
    lat = {r["runtime"]: r for r in load_latency_records(root, suite="edge_latency")}
    assert sorted(lat) == ["onnxruntime", "torch"] and all(r["model"] == "lenet" for r in lat.values())
    assert lat["torch"]["status"] == "ok" and lat["torch"]["median_ms"] > 0
    assert lat["onnxruntime"]["status"] == "unavailable" and "pip install" in lat["onnxruntime"]["error"]


def _fake_profile(calls: list, interrupt_at: str | None = None):
    """Stands in for profile_records: no timing subprocess; Ctrl-C on model ``interrupt_at``."""

    def fake(job, model, suite, data, batches, registry):
        calls.append(job.id)
        if job.entry.key == interrupt_at:
            raise KeyboardInterrupt
        return [{"model": job.entry.key, "runtime": "torch", "threads": 1, "batch_size": 1, "status": "ok",
                 "median_ms": 1.0, "p90_ms": 1.5, "suite": suite.name, "job": job.id, "device_name": "box"}]

    return fake


def test_ctrl_c_keeps_finished_profiles_and_resume_runs_the_rest(tmp_path, monkeypatch):
    import cxrbench.engine.jobs.profile as profile_only

    root, calls = tmp_path / "results", []
    sets = [*TINY, "models=[lenet, lrnet]"]
    monkeypatch.setattr(profile_only, "profile_records", _fake_profile(calls, interrupt_at="lrnet"))
    outcome = run_suite(EDGE, sets, results_root=root, device="cpu")
    assert outcome.status == "interrupted" and outcome.exit_code == 130
    assert [r.job_id for r in outcome.store.records()] == ["lenet__fold0__seed0"]
    monkeypatch.setattr(profile_only, "profile_records", _fake_profile(calls))
    again = run_suite(EDGE, sets, results_root=root, device="cpu", resume=str(outcome.store.dir))
    assert again.status == "complete" and again.skipped == ["lenet__fold0__seed0"]
    assert calls == ["lenet__fold0__seed0", "lrnet__fold0__seed0", "lrnet__fold0__seed0"]
    assert sorted(p.name for p in (outcome.store.dir / "latency").iterdir()) == [
        "lenet__fold0__seed0.json", "lrnet__fold0__seed0.json"]


def _capture_profile_model(monkeypatch) -> list[dict]:
    import cxrbench.profiling.profiler as profiler

    seen: list[dict] = []

    def fake(model, cfg, input_size, in_chans, calib_images=None, evaluate=None, **kw):
        seen.append({"calib": calib_images, "evaluate": evaluate, "model": model, **kw})
        return [{"model": kw["name"], "runtime": "int8", "threads": 1, "batch_size": 1, "status": "ok",
                 "median_ms": 1.0, "p90_ms": 1.0, "accuracy_note": "no evaluation data given"}]

    monkeypatch.setattr(profiler, "profile_model", fake)
    return seen


def test_a_missing_dataset_is_replaced_by_synthetic_calibration_images(tmp_path, monkeypatch):
    seen = _capture_profile_model(monkeypatch)
    sets = ["dataset={name: kermany, variant: binary, root: " + str(tmp_path / "absent") + "}",
            "input.image_size=32", "profile.latency.runtimes=[int8]", "profile.latency.calib_images=20",
            "models=[lenet]"]
    outcome = run_suite(EDGE, sets, results_root=tmp_path / "results", device="cpu")
    assert outcome.status == "complete"
    header = outcome.store.read_header()
    assert header["dataset"]["name"] == "kermany" and header["dataset"]["standin"]["images"] == "synthetic_cxr"
    (call,) = seen
    assert tuple(call["calib"].shape) == (20, 3, 32, 32) and call["evaluate"] is None
    assert "synthetic_cxr" in call["calib_source"] and "kermany" in call["calib_source"]
    (lat,) = load_latency_records(tmp_path / "results", suite="edge_latency")
    assert "not available" in lat["accuracy_note"]


def test_int8_accuracy_only_for_trained_weights(tmp_path, monkeypatch):
    import torch

    from cxrbench.engine.jobs import build_model
    from cxrbench.plugins import get_registry

    seen = _capture_profile_model(monkeypatch)
    suite = load_suite(EDGE, [*TINY, "models=[lenet]"])
    weights = tmp_path / "lenet.pt"
    torch.save(build_model(suite, suite.models[0], get_registry())[0].state_dict(), weights)
    sets = [*TINY, "profile.latency.runtimes=[int8]", "profile.latency.calib_images=8",
            f"models=[lenet, {{name: lenet, label: lenet_trained, weights: {weights}}}]"]
    outcome = run_suite(EDGE, sets, results_root=tmp_path / "results", device="cpu")
    assert outcome.status == "complete"
    untrained, trained = seen
    assert untrained["evaluate"] is None and trained["evaluate"] is not None
    assert "training images of synthetic_cxr" in trained["calib_source"] and len(trained["calib"]) == 8
    # the evaluator scores the suite's test rows with the given predict function
    with torch.no_grad():
        scores = trained["evaluate"](trained["model"])
    assert 0.0 <= scores["accuracy"] <= 1.0
    notes = {r["model"]: r["accuracy_note"] for r in load_latency_records(tmp_path / "results", suite="edge_latency")}
    assert "untrained weights" in notes["lenet"] and notes["lenet_trained"] == "no evaluation data given"


def test_profile_only_runs_never_share_a_protocol_with_training_runs():
    profiled = load_suite(EDGE)
    trained = load_suite(EDGE, ["profile.only=false"])
    assert profiled.profile.only and protocol_hash(profiled) != protocol_hash(trained)
    assert protocol_hash(trained) == protocol_hash(load_suite(EDGE, ["profile.only=false", "profile.cost=false"]))


def test_validate_names_an_unknown_latency_runtime(capsys):
    assert main(["validate", str(EDGE)]) == 0
    assert main(["validate", str(EDGE), "--set", "profile.latency.runtimes=[torch, tensorrtt]"]) != 0
    err = capsys.readouterr().err
    assert "profile.latency.runtimes[1]:" in err and "'tensorrtt'" in err


def test_profile_suite_calibrates_like_a_profile_only_run(tmp_path, monkeypatch):
    """One policy: `cxrbench profile --suite` and `cxrbench run` of the same profile-only suite hand the
    profiler the same int8 calibration images (the suite's training rows, not synthetic_cxr images)."""
    import torch

    seen = _capture_profile_model(monkeypatch)
    sets = [*TINY, "profile.latency.runtimes=[int8]", "profile.latency.calib_images=8", "models=[lenet]",
            "dataset.options.difficulty=0.3"]
    outcome = run_suite(EDGE, sets, results_root=tmp_path / "results", device="cpu")
    assert outcome.status == "complete"
    assert main(["profile", "--suite", str(EDGE), *_cli_args(*sets), "--runtimes", "int8", "--json"]) == 0
    in_run, command = seen
    assert "training images of synthetic_cxr" in command["calib_source"]
    assert command["calib_source"] == in_run["calib_source"]
    assert torch.equal(command["calib"], in_run["calib"])
