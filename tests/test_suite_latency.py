"""A suite's ``profile.latency``: every trained model is profiled, and the leaderboard shows it per device."""

from __future__ import annotations

import json

import pytest

from cxrbench.cli import main
from cxrbench.results.latency import load_latency_records, write_latency_file
from cxrbench.results.importer import import_latency_file
from cxrbench.results.store import RunStore

QUICK = {"enabled": True, "preset": "quick", "runtimes": ["torch"], "threads": [1], "min_samples": 5,
         "min_seconds": 0.05, "max_seconds": 2, "warmup_seconds": 0.05, "calibration": False,
         "device_name": "box"}


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory):
    """One tiny run of two models with latency profiling on (shared: profiling spawns processes)."""
    from tests.conftest import write_suite

    tmp = tmp_path_factory.mktemp("latency")
    root = tmp / "results"
    suite = write_suite(tmp / "suite.yaml", models=["lenet", {"name": "lenet", "label": "lenet_b", "dropout": 0.5}],
                        profile={"latency": QUICK}, metrics={"bootstrap": 0})
    assert main(["run", str(suite), "--quiet", "--results", str(root)]) == 0
    (run_dir,) = (root / "tiny").iterdir()
    return tmp, root, suite, run_dir


def test_every_trained_model_is_profiled_into_the_run(profiled_run):
    _, root, _, run_dir = profiled_run
    files = sorted(p.name for p in (run_dir / "latency").glob("*.json"))
    assert files == ["lenet__fold0__seed0.json", "lenet_b__fold0__seed0.json"]
    recs = load_latency_records(root, suite="tiny")
    assert sorted(r["model"] for r in recs) == ["lenet", "lenet_b"]
    for r in recs:
        assert r["status"] == "ok" and r["runtime"] == "torch" and r["threads"] == 1 and r["batch_size"] == 1
        assert r["device_name"] == "box" and r["run"] == run_dir.name and r["job"] == f"{r['model']}__fold0__seed0"
        assert r["input_shape"] == [1, 32, 32] and r["n_samples"] >= 5 and len(r["samples_ms"]) == r["n_samples"]
        assert r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["max_ms"]
    # the trained model's cost in the job record and the profiler's agree
    records = {rec.model: rec for rec in RunStore(run_dir).records() if rec.kind == "model"}
    for r in recs:
        assert r["params"] == records[r["model"]].cost["params"]
        assert r["macs"] == records[r["model"]].cost["macs"]


def test_leaderboard_shows_median_and_p90_per_device(profiled_run, capsys):
    tmp, root, _, run_dir = profiled_run
    recs = {r["model"]: r for r in load_latency_records(root, suite="tiny")}
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(root), "--format", "json"]) == 0
    (board,) = json.loads(capsys.readouterr().out)
    got = {r["model"]: (r["device"], r["median_ms"], r["p90_ms"]) for r in board["latency"]}
    assert got == {m: ("box", pytest.approx(r["median_ms"], rel=1e-9), pytest.approx(r["p90_ms"], rel=1e-9))
                   for m, r in recs.items()}
    assert board["latency_setting"] == "torch, 1 thread, batch 1"

    assert main(["leaderboard", "--results", str(root), "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert "ms median / p90 ↓ box" in text
    for r in recs.values():
        lo, hi = r["median_ci_ms"]
        assert f"{r['median_ms']:.2f} [{lo:.2f}, {hi:.2f}] / {r['p90_ms']:.2f}" in text

    # an edge device's file adds a column; --device keeps one
    edge = dict(recs["lenet"], device_name="rpi5", median_ms=40.0, p90_ms=44.0, run=None, measured_at="2027-01-01")
    import_latency_file(write_latency_file(tmp / "rpi5.json", [edge], "tiny", "rpi5"), root)
    assert main(["leaderboard", "--results", str(root), "--format", "csv"]) == 0
    csv = capsys.readouterr().out
    header, *rows = csv.strip().splitlines()
    assert "p90_ms[box]" in header and "p90_ms[rpi5]" in header
    lenet = next(r for r in rows if r.split(",")[2] == "lenet")
    assert "44.0" in lenet.split(",")[header.split(",").index("p90_ms[rpi5]")]

    assert main(["leaderboard", "--results", str(root), "--format", "json", "--device", "rpi5"]) == 0
    (board,) = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["device"], r["p90_ms"]) for r in board["latency"]] == [("lenet", "rpi5", 44.0)]

    # another runtime: nothing measured, the note says how to get it
    assert main(["leaderboard", "--results", str(root), "--latency-runtime", "onnxruntime"]) == 0
    assert "latency: none recorded for onnxruntime" in capsys.readouterr().out


def test_pareto_plot_is_written(profiled_run, capsys):
    tmp, root, _, _ = profiled_run
    out = tmp / "plots"
    assert main(["leaderboard", "--results", str(root), "--plot", "pareto", "--plot-dir", str(out),
                 "--format", "json"]) == 0
    png, svg = out / "pareto-accuracy.png", out / "pareto-accuracy.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:500]
    text = svg.read_text()
    assert "lenet" in text and "p90 latency" in text  # the front is named; axis says what is plotted


def test_a_profiler_crash_keeps_the_trained_model(tmp_path, suite_file, monkeypatch):
    import cxrbench.engine.suite_profiling as suite_job

    def boom(*args, **kwargs):
        raise RuntimeError("profiler exploded")

    monkeypatch.setattr(suite_job, "profile_job_records", boom)
    root = tmp_path / "results"
    suite = suite_file(profile={"latency": QUICK}, metrics={"bootstrap": 0})
    assert main(["run", str(suite), "--quiet", "--results", str(root)]) == 0
    (run_dir,) = (root / "tiny").iterdir()
    (rec,) = [r for r in RunStore(run_dir).records() if r.kind == "model"]
    assert rec.status == "ok" and 0 <= rec.metrics["accuracy"] <= 1
    doc = json.loads((run_dir / "latency" / "lenet__fold0__seed0.json").read_text())
    (lat,) = doc["records"]
    assert lat["status"] == "error" and "profiler exploded" in lat["error"] and lat["runtime"] == "torch"


def test_latency_settings_do_not_change_the_protocol_hash(suite_file):
    from cxrbench.suite.loader import load_suite, protocol_hash

    plain = load_suite(suite_file())
    profiled = load_suite(suite_file(profile={"latency": QUICK}))
    assert profiled.profile.latency.enabled and not plain.profile.latency.enabled
    assert protocol_hash(plain) == protocol_hash(profiled)


def test_a_newer_profile_of_another_run_does_not_hide_this_runs_own(profiled_run, tmp_path, capsys):
    import shutil

    _, root, _, run_dir = profiled_run
    copy = tmp_path / "results"
    shutil.copytree(root, copy)
    own = {r["model"]: r for r in load_latency_records(copy, suite="tiny")}
    other = dict(own["lenet"], run="other-run", p90_ms=999.0, measured_at="2099-01-01T00:00:00+00:00")
    write_latency_file(copy / "tiny" / "other-run" / "latency" / "lenet__fold0__seed0.json", [other], "tiny", "box")
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(copy), "--run", run_dir.name, "--format", "json"]) == 0
    (board,) = json.loads(capsys.readouterr().out)
    got = {r["model"]: r["p90_ms"] for r in board["latency"]}
    assert got == {m: pytest.approx(r["p90_ms"], rel=1e-9) for m, r in own.items()}
