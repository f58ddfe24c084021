"""The latency file format: one record per (model, runtime, threads, batch size), and the files that hold them.

A latency file is ``{"schema": "cxrbench.latency-file/1", "suite", "device_name", "created_at",
"records": [...]}``. ``cxrbench profile --out FILE`` writes one (e.g. on an edge device);
``cxrbench results import FILE`` copies it to ``results/<suite>/_latency/<device>/``; a suite
run's own profiles live in ``results/<suite>/<run-id>/latency/``. :func:`load_latency_records`
reads both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cxrbench.errors import ResultsError
from cxrbench.results.store import LATENCY_DIR, RUN_LATENCY_DIR, RunStore, device_label, now_iso, write_json_atomic

RECORD_SCHEMA = "cxrbench.latency/1"
FILE_SCHEMA = "cxrbench.latency-file/1"


@dataclass
class LatencyRecord:
    """One measured (or failed) configuration. Times in ms unless the name says seconds; sizes in bytes."""

    model: str
    """The model's label (suite row) or registered name."""
    runtime: str
    threads: int
    batch_size: int
    status: str = "ok"
    """``ok``; ``error`` (export, verification or worker failed: no latency); ``unavailable`` (not installed)."""
    error: str | None = None
    model_name: str | None = None
    suite: str | None = None
    run: str | None = None
    job: str | None = None
    device_name: str = ""
    device_type: str = "cpu"
    cpus: list[int] | None = None
    input_shape: list[int] = field(default_factory=list)
    """``[C, H, W]`` of one image."""
    num_classes: int | None = None
    # latency (kept samples)
    median_ms: float | None = None
    p90_ms: float | None = None
    mean_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    q1_ms: float | None = None
    q3_ms: float | None = None
    iqr_ms: float | None = None
    iqr_over_median: float | None = None
    median_ci_ms: list[float | None] | None = None
    """Distribution-free 95% CI ``[low, high]`` of the median (order statistics; None side = unbounded)."""
    median_ci_coverage: float | None = None
    """Exact coverage of ``median_ci_ms`` for independent samples."""
    p90_ci_ms: list[float | None] | None = None
    p90_ci_coverage: float | None = None
    n_samples: int | None = None
    unstable: bool | None = None
    throughput_ips: float | None = None
    """Images per second: batch size / median."""
    first_call_ms: float | None = None
    load_seconds: float | None = None
    """Worker: unpickling the model / creating the ONNX Runtime session."""
    export_seconds: float | None = None
    """Parent: pickling / ONNX export (+ verification) / quantisation."""
    warmup_iters: int | None = None
    warmup_seconds: float | None = None
    measure_seconds: float | None = None
    reached_cap: bool | None = None
    interference: dict[str, Any] = field(default_factory=dict)
    page_faults_per_iter: float | None = None
    """Minor page faults per timed iteration in the worker."""
    processes: int | None = None
    """Fresh timing processes whose samples were pooled."""
    process_medians_ms: list[float] = field(default_factory=list)
    process_spread: float | None = None
    """(max - min) of the per-process medians / pooled median: the process-to-process reproducibility."""
    # memory
    peak_rss_bytes: int | None = None
    baseline_rss_bytes: int | None = None
    """RSS of the worker after importing torch, before loading the model."""
    cuda_max_memory_allocated: int | None = None
    # cost
    params: int | None = None
    trainable_params: int | None = None
    macs: int | None = None
    flops: int | None = None
    """2 x MACs, per image."""
    macs_flopcounter: int | None = None
    macs_crosscheck_rel_diff: float | None = None
    counter: str | None = None
    counter_version: str | None = None
    counter_backend: str | None = None
    convention: str | None = None
    weights_bytes_fp32: int | None = None
    state_dict_bytes_fp32: int | None = None
    artifact_bytes: int | None = None
    """Size of what the runtime loads (pickled module, .onnx file)."""
    # physical reference
    calibration: dict[str, Any] = field(default_factory=dict)
    calibration_gflops: float | None = None
    achieved_gflops: float | None = None
    fraction_of_calibration: float | None = None
    # correctness
    verification: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, float] | None = None
    accuracy_fp32: dict[str, float] | None = None
    """The same metrics of the torch fp32 model, for comparison with ``accuracy``."""
    accuracy_note: str | None = None
    runtime_version: str | None = None
    runtime_plugin: str | None = None
    runtime_info: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    """Device fingerprint (``cxrbench.profiling.fingerprint.device_fingerprint``)."""
    config: dict[str, Any] = field(default_factory=dict)
    end_to_end: dict[str, Any] | None = None
    """Batch-1 records of ``cxrbench profile --end-to-end``: file -> decode -> resize -> normalise ->
    inference in the same processes: ``image`` (the file), ``stages_median_ms`` (``decode``,
    ``preprocess``, ``inference``, ``total``), the total's ``median_ms``/``p90_ms`` with
    ``median_ci_ms``/``p90_ci_ms``, ``model_only_median_ms``, ``overhead_ms``
    (:mod:`cxrbench.profiling.end_to_end`)."""
    measured_at: str = ""
    samples_ms: list[float] = field(default_factory=list)
    schema: str = RECORD_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LatencyRecord":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def latency_file(records: list[dict[str, Any]], suite: str | None, device_name: str) -> dict[str, Any]:
    """The JSON document holding ``records``."""
    return {"schema": FILE_SCHEMA, "suite": suite, "device_name": device_name, "created_at": now_iso(),
            "records": records}


def write_latency_file(path: str | Path, records: list[dict[str, Any]], suite: str | None,
                       device_name: str) -> Path:
    """Write a latency file atomically; returns its path."""
    path = Path(path)
    write_json_atomic(path, latency_file(records, suite, device_name))
    return path


def read_latency_file(path: str | Path) -> dict[str, Any]:
    """A latency file's document; :class:`ResultsError` when it is not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read latency file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != FILE_SCHEMA or not isinstance(doc.get("records"), list):
        raise ResultsError(f"{path}: not a cxrbench latency file (expected schema {FILE_SCHEMA!r}; "
                           "write one with `cxrbench profile ... --out FILE`)")
    for i, rec in enumerate(doc["records"]):
        if not isinstance(rec, dict) or not {"model", "runtime", "threads", "batch_size"} <= set(rec):
            raise ResultsError(f"{path}: record {i} lacks model/runtime/threads/batch_size")
    return doc


def content_sha256(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def load_latency_records(results_root: str | Path, suite: str | None = None,
                         device: str | None = None) -> list[dict[str, Any]]:
    """Every latency record under ``results_root``, optionally of one suite and/or device name.

    Reads imported files (``<root>/<suite>/_latency/<device>/*.json``) and run profiles
    (``<root>/<suite>/<run>/latency/*.json``). Each returned dict is a :class:`LatencyRecord` as a
    dict (``model``, ``runtime``, ``threads``, ``batch_size``, ``status``, ``median_ms``,
    ``p90_ms``, ..., ``device_name``) plus ``suite``, ``run`` (None for imported files) and
    ``source`` (the file). Sorted by suite, device, model, runtime, threads, batch, time.
    """
    root = Path(results_root)
    if not root.is_dir():
        return []
    suites = [root / suite] if suite else sorted(p for p in root.iterdir() if p.is_dir())
    files: list[tuple[str, str | None, Path]] = []
    for sdir in suites:
        files += [(sdir.name, None, p) for p in sorted(sdir.glob(f"{LATENCY_DIR}/*/*.json"))]
        files += [(sdir.name, p.parent.parent.name, p) for p in sorted(sdir.glob(f"*/{RUN_LATENCY_DIR}/*.json"))
                  if p.parent.parent.name != LATENCY_DIR]  # a device named "latency" is not a run
    out = []
    for suite_name, run, path in files:
        doc = read_latency_file(path)
        for rec in doc["records"]:
            rec = LatencyRecord.from_dict(rec).to_dict()
            rec["device_name"] = rec.get("device_name") or doc.get("device_name") or ""
            if device and rec["device_name"] != device:
                continue
            rec |= {"suite": suite_name, "run": run or rec.get("run"), "source": str(path)}
            out.append(rec)
    out.sort(key=lambda r: (r["suite"], r["device_name"], r["model"], r["runtime"], r["threads"], r["batch_size"],
                            r.get("measured_at") or ""))
    return out


def latest_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest ``ok`` record per (suite, device, model, runtime, threads, batch size)."""
    best: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r.get("status") != "ok":
            continue
        key = (r.get("suite"), r["device_name"], r["model"], r["runtime"], r["threads"], r["batch_size"])
        if key not in best or (r.get("measured_at") or "") >= (best[key].get("measured_at") or ""):
            best[key] = r
    return list(best.values())


def write_latency_job(store: RunStore, job_id: str, records: list[dict[str, Any]]) -> Path:
    """Write a job's latency records to ``store.latency_path(job_id)`` (run id filled in).

    The file's suite and device name are the records' (the suite folder's name if they have none).
    """
    records = [{**r, "run": r.get("run") or store.run_id} for r in records]
    head = records[0] if records else {}
    suite = head.get("suite") or store.dir.parent.name
    device = device_label(head.get("device_name"))
    return write_latency_file(store.latency_path(job_id), records, suite, device)
