"""Latency records end to end on a tiny model: fields and units, ONNX checks, int8 accuracy, backends."""

from __future__ import annotations

import importlib.util
import platform

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.metrics import accuracy_score

from cxrbench.hookspecs import hookimpl
from cxrbench.plugins import Registry, get_registry, load_plugin_manager
from cxrbench.suite.latency import LatencyConfig
from cxrbench.profiling.profiler import profile_model
from cxrbench.results.latency import LatencyRecord
from cxrbench.specs import LatencyBackendSpec


class Tiny(nn.Module):
    """conv 1->4 (3x3, pad 1) + ReLU + global pool + linear 4->3; module level so the worker can unpickle it."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x).relu()).flatten(1))


SIZE = 32
TINY_PARAMS = (1 * 9 * 4 + 4) + (4 * 3 + 3)                 # 55
TINY_MACS = SIZE * SIZE * 4 * (1 * 9 + 1) + (4 + 1) * 3     # conv with bias + linear with bias


def tiny() -> Tiny:
    torch.manual_seed(0)
    return Tiny().eval()


def fast_cfg(**kw) -> LatencyConfig:
    base = dict(preset="quick", warmup_seconds=0.1, min_samples=20, min_seconds=0.2, max_seconds=2.0, calibration=False,
                device_name="test-box", calib_images=64)
    return LatencyConfig(**(base | kw))


def images(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_builtin_backends_register_through_the_hook():
    table = get_registry().latency_backends
    assert list(table)[:3] == ["torch", "onnxruntime", "int8"]
    assert {table[n].plugin for n in ("torch", "onnxruntime", "int8")} == {"cxrbench.builtins.latency"}
    assert "cuda" in table["torch"].devices


class _ExtraBackends:
    """A plugin module stand-in implementing register_latency_backends."""

    @staticmethod
    @hookimpl
    def register_latency_backends():
        return [LatencyBackendSpec(name="torch", prepare=lambda c: None, load=lambda c: None)]


def test_a_plugin_backend_with_a_taken_name_is_an_error():
    from cxrbench.errors import PluginError

    with pytest.raises(PluginError, match="latency runtime 'torch' is registered twice"):
        Registry(*load_plugin_manager(extra_plugins=(_ExtraBackends,)))


def test_missing_onnxruntime_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    recs = profile_model(tiny(), fast_cfg(runtimes=["onnxruntime", "int8"]), SIZE, 1, name="tiny")
    assert {r["status"] for r in recs} == {"unavailable"}
    assert all("pip install 'cxrbench[edge]'" in r["error"] and r["median_ms"] is None for r in recs)


def test_record_fields_and_units():
    model = tiny()
    recs = profile_model(model, fast_cfg(runtimes=["torch"], batch_sizes=[1, 3], calibration=True,
                                         calibration_size=128, calibration_repeats=1),
                         SIZE, 1, images(), name="tiny", meta={"suite": "s1"})
    assert [(r["runtime"], r["batch_size"]) for r in recs] == [("torch", 1), ("torch", 3)]
    for r in recs:
        assert r["status"] == "ok", r["error"]
        assert set(LatencyRecord.__dataclass_fields__) <= set(r)
        assert r["model"] == "tiny" and r["suite"] == "s1" and r["threads"] == 1 and len(r["cpus"]) == 1
        assert r["input_shape"] == [1, SIZE, SIZE] and r["num_classes"] == 3
        # cost: against hand counts
        assert r["params"] == r["trainable_params"] == TINY_PARAMS
        assert r["macs"] == TINY_MACS and r["flops"] == 2 * TINY_MACS
        assert r["counter"] == "ptflops" and r["counter_backend"] == "aten" and r["counter_version"]
        assert abs(r["macs_flopcounter"] - TINY_MACS) <= SIZE * SIZE * 4 + 3   # FlopCounterMode skips bias adds
        assert r["weights_bytes_fp32"] == 4 * TINY_PARAMS
        # latency in ms, summarised from the stored samples
        s = np.asarray(r["samples_ms"])
        assert len(s) == r["n_samples"] >= 20
        assert r["median_ms"] == pytest.approx(np.median(s)) and r["p90_ms"] == pytest.approx(np.percentile(s, 90))
        assert r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert 0 < r["median_ms"] < 1000 and r["first_call_ms"] > 0
        assert r["throughput_ips"] == pytest.approx(r["batch_size"] * 1000 / r["median_ms"])
        assert r["unstable"] == (r["iqr_over_median"] > 0.10) or r["interference"]["all_chunks_busy"]
        assert r["interference"]["chunks_total"] >= 1 and r["warmup_iters"] >= 5 and r["page_faults_per_iter"] >= 0
        assert r["load_seconds"] >= 0 and r["export_seconds"] >= 0
        # memory in bytes: the worker process (torch alone is > 50 MB)
        assert r["peak_rss_bytes"] > 50e6 and r["baseline_rss_bytes"] > 50e6
        # physical reference
        cal = r["calibration"]
        assert cal["before"]["gflops"] > 0 and cal["after"]["gflops"] > 0 and cal["before"]["threads"] == 1
        assert r["calibration_gflops"] == max(cal["before"]["gflops"], cal["after"]["gflops"])
        achieved = 2 * TINY_MACS * r["batch_size"] / (r["median_ms"] / 1e3) / 1e9
        assert r["achieved_gflops"] == pytest.approx(achieved)
        assert r["fraction_of_calibration"] == pytest.approx(achieved / r["calibration_gflops"])
        # device fingerprint
        dev = r["device"]
        assert r["device_name"] == dev["device_name"] == "test-box"
        assert dev["python"] == platform.python_version() and dev["torch"] == torch.__version__
        assert dev["cpu_model"] and dev["ram_bytes"] > 0 and dev["cpus_used"] == r["cpus"]
        assert {"gpu", "os", "onnxruntime", "logical_cpus"} <= set(dev)
        assert r["config"]["min_samples"] == 20


def test_model_left_in_its_training_mode():
    model = tiny().train()
    profile_model(model, fast_cfg(runtimes=["nope"]), SIZE, 1)
    assert model.training


def test_unknown_runtime_is_an_error_record():
    recs = profile_model(tiny(), fast_cfg(runtimes=["nope"]), SIZE, 1)
    assert recs[0]["status"] == "error" and "unknown latency runtime 'nope'" in recs[0]["error"]


@pytest.fixture
def ort():
    return pytest.importorskip("onnxruntime")


def test_onnx_outputs_are_checked_against_torch(ort, tmp_path):
    from cxrbench.profiling.runtimes import onnx as onnx_backend
    from cxrbench.profiling.runtimes.base import ExportContext

    model = tiny()
    example = images(2, seed=5)
    ctx = ExportContext(model=model, workdir=tmp_path, example=example, calib_images=images(16), calib_source="test",
                        cfg=fast_cfg(), device="cpu")
    prepared = onnx_backend.prepare(ctx)
    check = prepared.info["verification"]
    assert check["passed"] and check["n_checked"] == 2 + 16
    # independently: run the exported file in a fresh session and compare with torch ourselves
    sess = ort.InferenceSession(prepared.payload["path"], providers=["CPUExecutionProvider"])
    x = images(5, seed=9)   # a batch size the check never saw: the batch dimension is dynamic
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(out - ref).max() <= check["tolerance"]
    assert check["max_abs_diff"] <= check["tolerance"] == pytest.approx(1e-12 + 1e-3 * check["max_abs_torch"])


def test_corrupted_export_is_rejected_not_timed(ort, monkeypatch):
    import onnx
    from onnx import numpy_helper

    from cxrbench.profiling.runtimes import onnx as onnx_backend

    real_export = onnx_backend.export_onnx

    def corrupting_export(model, path, example, *args, **kwargs):
        info = real_export(model, path, example, *args, **kwargs)
        proto = onnx.load(str(path))
        for init in proto.graph.initializer:
            w = numpy_helper.to_array(init)
            if w.ndim == 4:   # the conv weight: a sign flip changes every output
                init.CopyFrom(numpy_helper.from_array(-w, init.name))
        onnx.save(proto, str(path))
        return info

    monkeypatch.setattr(onnx_backend, "export_onnx", corrupting_export)
    recs = profile_model(tiny(), fast_cfg(runtimes=["onnxruntime", "int8"]), SIZE, 1, images())
    assert [r["runtime"] for r in recs] == ["onnxruntime", "int8"]
    for r in recs:
        assert r["status"] == "error" and "VerificationError" in r["error"] and "differ" in r["error"]
        assert r["median_ms"] is None and r["samples_ms"] == []


def test_int8_accuracy_is_reported_next_to_fp32(ort):
    model = tiny()
    x = images(48, seed=3)
    labels = torch.randint(0, 3, (48,), generator=torch.Generator().manual_seed(4)).numpy()
    seen: list[np.ndarray] = []

    def evaluate(predict):
        logits = np.concatenate([predict(x[i:i + 16]).numpy() for i in range(0, len(x), 16)])
        seen.append(logits)
        return {"accuracy": float(accuracy_score(labels, logits.argmax(1)))}

    recs = profile_model(model, fast_cfg(runtimes=["int8"]), SIZE, 1, images(64), evaluate, name="tiny",
                         calib_source="64 random images")
    (r,) = recs
    assert r["status"] == "ok", r["error"]
    with torch.no_grad():
        torch_logits = model(x).numpy()
    fp32_logits, int8_logits = seen
    assert np.allclose(fp32_logits, torch_logits, atol=1e-6)
    assert not np.array_equal(int8_logits, torch_logits)     # really the quantised model
    assert r["accuracy_fp32"]["accuracy"] == accuracy_score(labels, torch_logits.argmax(1))
    assert r["accuracy"]["accuracy"] == accuracy_score(labels, int8_logits.argmax(1))
    info = r["runtime_info"]
    assert info["precision"] == "int8" and "QDQ" in info["quantization"] and "per-channel" in info["quantization"]
    assert info["calibration_images"] == 64 and info["calibration_source"] == "64 random images"
    assert 0 <= r["verification"]["top1_agreement"] <= 1 and r["median_ms"] > 0


def test_int8_without_evaluation_data_says_so(ort, monkeypatch):
    import cxrbench.profiling.profiler as profiler

    monkeypatch.setattr(profiler, "spawn", lambda job, timeout: {"ok": False, "error": "not timed in this test"})
    recs = profile_model(tiny(), fast_cfg(runtimes=["int8"]), SIZE, 1)
    assert recs[0]["status"] == "error" and recs[0]["error"] == "not timed in this test"
    assert recs[0]["accuracy"] is None and "not measured" in recs[0]["accuracy_note"]
    assert "random" in recs[0]["runtime_info"]["calibration_source"]


def test_suite_job_profile_calibrates_on_train_and_scores_test(ort, suite_file, tmp_path):
    """What the engine calls after evaluating a job: int8 accuracy on the fold's test rows."""
    from cxrbench.engine.runner import make_batches
    from cxrbench.data.prepare import prepare_data
    from cxrbench.plugins import get_registry
    from cxrbench.results.latency import load_latency_records
    from cxrbench.engine.suite_profiling import profile_job
    from cxrbench.suite.loader import load_suite

    registry = get_registry()
    suite = load_suite(suite_file())
    data = prepare_data(suite, registry)
    batches, fold = make_batches(suite, data), data.folds[0]
    torch.manual_seed(0)
    model = Tiny(num_classes=2).eval()
    run_dir = tmp_path / "results" / "tiny" / "run-1"
    recs = profile_job(model, fast_cfg(runtimes=["int8"]), suite, batches, fold, registry, run_dir,
                       "tiny__fold0__seed0", "tiny", "tiny_net")
    (r,) = recs
    assert r["status"] == "ok", r["error"]
    assert r["runtime_info"]["calibration_source"] == f"{min(64, len(fold.train))} training images of fold 0"
    # fp32 accuracy, recomputed independently on the same test rows
    xs, ys = zip(*batches.iterate(fold.test, 64, torch.device("cpu"), train=False))
    with torch.no_grad():
        pred = model(torch.cat(xs)).argmax(1).numpy()
    assert r["accuracy_fp32"]["accuracy"] == pytest.approx(accuracy_score(torch.cat(ys).numpy(), pred))
    assert set(r["accuracy"]) == {"accuracy", "f1", "roc_auc"}
    (stored,) = load_latency_records(tmp_path / "results", suite="tiny")
    assert stored["run"] == "run-1" and stored["job"] == "tiny__fold0__seed0" and stored["median_ms"] == r["median_ms"]
