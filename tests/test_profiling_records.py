"""Latency files: writing, importing an edge device's file into results/, reading them back; the CLI."""

from __future__ import annotations

import argparse
import json

import pytest

from cxrbench.cli import main
from cxrbench.errors import ResultsError
from cxrbench.cli.profile import add_profile_arguments, add_results_parser, profile_command
from cxrbench.results.latency import LatencyRecord, latest_records, load_latency_records, write_latency_file
from cxrbench.results.importer import import_latency_file


def record(model: str, median: float, p90: float, device: str = "rpi5", when: str = "2026-01-01T00:00:00+00:00",
           **kw) -> dict:
    return LatencyRecord(model=model, runtime="torch", threads=1, batch_size=1, median_ms=median, p90_ms=p90,
                         device_name=device, measured_at=when, **kw).to_dict()


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cxrbench")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("profile")
    add_profile_arguments(p)
    p.set_defaults(func=profile_command)
    add_results_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_import_merges_an_edge_file_under_its_device_name(tmp_path):
    root = tmp_path / "results"
    edge = write_latency_file(tmp_path / "edge.json", [record("lenet", 4.0, 5.0), record("lrnet", 30.0, 33.0)],
                              suite="quickstart", device_name="rpi5")
    dest = import_latency_file(edge, root)
    assert dest.parent == root / "quickstart" / "_latency" / "rpi5"
    assert import_latency_file(edge, root) == dest                     # importing twice keeps one copy
    assert len(list(dest.parent.glob("*.json"))) == 1
    laptop = write_latency_file(tmp_path / "laptop.json", [record("lenet", 1.0, 1.2, device="laptop")],
                                suite="quickstart", device_name="laptop")
    import_latency_file(laptop, root)

    recs = load_latency_records(root)
    assert [(r["device_name"], r["model"], r["median_ms"], r["p90_ms"]) for r in recs] == [
        ("laptop", "lenet", 1.0, 1.2), ("rpi5", "lenet", 4.0, 5.0), ("rpi5", "lrnet", 30.0, 33.0)]
    assert {r["suite"] for r in recs} == {"quickstart"} and all(r["run"] is None for r in recs)
    assert [r["model"] for r in load_latency_records(root, device="rpi5")] == ["lenet", "lrnet"]
    assert load_latency_records(root, suite="other") == []


def test_run_profiles_are_read_too_and_latest_wins(tmp_path):
    root = tmp_path / "results"
    write_latency_file(root / "s" / "run1" / "latency" / "lenet__fold0__seed0.json",
                       [record("lenet", 9.0, 10.0, device="box", when="2026-01-01T00:00:00+00:00"),
                        record("lenet", 2.0, 2.5, device="box", when="2026-02-01T00:00:00+00:00"),
                        record("lenet", 1.0, 1.0, device="box", status="error")], suite="s", device_name="box")
    recs = load_latency_records(root, suite="s")
    assert {r["run"] for r in recs} == {"run1"} and len(recs) == 3
    (latest,) = latest_records(recs)
    assert latest["median_ms"] == 2.0


def test_import_rejects_files_that_are_not_latency_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"records": []}))
    with pytest.raises(ResultsError, match="not a cxrbench latency file"):
        import_latency_file(bad, tmp_path / "results")
    nosuite = write_latency_file(tmp_path / "n.json", [record("lenet", 1.0, 1.0)], suite=None, device_name="rpi5")
    with pytest.raises(ResultsError, match="names no suite"):
        import_latency_file(nosuite, tmp_path / "results")
    dest = import_latency_file(nosuite, tmp_path / "results", suite="tiny", device_name="jetson nano")
    assert dest.parent.name == "jetson_nano" and dest.parent.parent.parent.name == "tiny"


def test_profile_without_latency_options_prints_cost_only(capsys):
    from cxrbench.plugins import get_registry
    from cxrbench.models.cost import model_cost

    assert cli(["profile", "lenet", "--input-size", "32", "--in-chans", "1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    expected = model_cost(get_registry().model("lenet"), 2, 1, 32)
    assert "latency" not in row and row["macs"] == expected["macs"] and row["params"] == expected["params"]


def test_suite_profile_on_an_edge_device_then_import(tmp_path, suite_file, capsys):
    """Train a tiny run, profile its checkpoints as device 'rpi5' into a file, import it, read it back."""
    root = tmp_path / "results"
    suite = suite_file(train={"save_checkpoints": True})
    assert main(["run", str(suite), "--quiet", "--results", str(root)]) == 0
    run_id = next((root / "tiny").iterdir()).name
    capsys.readouterr()

    out = tmp_path / "rpi5.json"
    assert cli(["profile", "--suite", str(suite), "--run", run_id, "--results", str(root), "--runtimes", "torch",
                "--preset", "quick", "--min-seconds", "0.2", "--max-seconds", "2", "--device-name", "rpi5",
                "--calib", "random", "--out", str(out), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    (rec,) = row["latency"]
    assert row["model"] == rec["model"] == "lenet" and row["in_chans"] == 1 and row["input_size"] == 32
    assert rec["status"] == "ok" and rec["suite"] == "tiny" and rec["run"] == run_id
    assert rec["job"] == "lenet__fold0__seed0" and rec["input_shape"] == [1, 32, 32] and rec["num_classes"] == 2
    assert rec["params"] == row["params"] and rec["macs"] == row["macs"]

    assert cli(["results", "import", str(out), "--results", str(root)]) == 0
    (loaded,) = load_latency_records(root, suite="tiny", device="rpi5")
    assert loaded["median_ms"] == rec["median_ms"] and loaded["p90_ms"] == rec["p90_ms"]
    assert loaded["device"]["device_name"] == "rpi5" and loaded["samples_ms"] == rec["samples_ms"]
    # the imported file does not disturb the leaderboard's view of the run
    assert main(["leaderboard", "--results", str(root), "--format", "json"]) == 0
