"""``cxrbench card RUN MODEL``: the card's figures are the run record's, the front matter is model-index."""

from __future__ import annotations

import pytest
import yaml

from cxrbench.cli import main
from cxrbench.engine.runner import run_suite
from cxrbench.results.latency import write_latency_job


@pytest.fixture
def tiny_run(suite_file, tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_MLFLOW", "0")
    suite = suite_file(models=["lenet"], metrics={"primary": "roc_auc", "report": ["accuracy", "roc_auc"],
                                                  "bootstrap": 50})
    outcome = run_suite(suite, results_root=tmp_path / "results", device="cpu")
    (rec,) = [r for r in outcome.records if r.kind == "model"]
    write_latency_job(outcome.store, rec.job_id, [
        {"model": "lenet", "model_name": "lenet", "runtime": "torch", "threads": 1, "batch_size": 1, "status": "ok",
         "median_ms": 1.25, "p90_ms": 1.75, "device_name": "rpi5", "suite": "tiny"}])
    return outcome.store, rec


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_numbers_are_the_records(tiny_run, tmp_path, capsys):
    store, rec = tiny_run
    out = tmp_path / "card.md"
    assert main(["card", str(store.dir), "lenet", "--out", str(out)]) == 0
    text = out.read_text()
    meta = front_matter(text)
    (entry,) = meta["model-index"]
    assert entry["name"] == "lenet"
    (result,) = entry["results"]
    assert result["task"]["type"] == "image-classification"
    assert result["dataset"] == {"name": "synthetic_cxr (synthetic)", "type": "synthetic_cxr", "split": "test"}
    (stored,) = [r for r in store.records() if r.kind == "model"]  # the record as written to disk
    by_type = {m["type"]: m for m in result["metrics"]}
    assert set(by_type) == {"roc_auc", "accuracy"}
    for name, metric in by_type.items():
        assert metric["value"] == pytest.approx(stored.metrics[name], abs=1e-6)
        low, high = stored.ci[name]
        assert f"95% CI {low:.4f}-{high:.4f}" in metric["name"]
    header = store.read_header()
    assert header["protocol_sha256"] in text
    assert f"parameters: {stored.cost['params']:,}" in text and f"{stored.cost['macs']:,}" in text
    assert "| rpi5 | torch | 1 | 1 | 1.25 | 1.75 |" in text
    assert "licence of the initial weights: none (random init)" in text
    assert "synthetic images" in text


def test_unknown_model_is_a_clear_error(tiny_run, capsys):
    store, _ = tiny_run
    assert main(["card", str(store.dir), "resnet18"]) == 2
    err = capsys.readouterr().err
    assert "no model 'resnet18'" in err and "lenet" in err
