"""A suite's ``profile.latency``: profile one trained job's model and store the records in its run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn

from cxrbench.profiling.config import LatencyConfig
from cxrbench.profiling.data import calibration_images, make_evaluator
from cxrbench.profiling.fingerprint import default_device_name, safe_name
from cxrbench.profiling.profiler import profile_model
from cxrbench.profiling.records import RUN_LATENCY_DIR, write_latency_file


def profile_job(model: nn.Module, cfg: LatencyConfig, suite: Any, batches: Any, fold: Any, registry: Any,
                run_dir: str | Path, job_id: str, label: str, model_name: str) -> list[dict[str, Any]]:
    """Latency records of a trained model, written to ``<run_dir>/latency/<job_id>.json``.

    int8 is calibrated on ``cfg.calib_images`` training rows of ``fold`` and its accuracy (and the
    fp32 model's) measured on the fold's test rows with the suite's metrics. ``batches`` is the
    run's :class:`cxrbench.engine.trainer.Batches`.
    """
    quantised = "int8" in cfg.runtimes
    n = cfg.calib_images if quantised else 16
    calib = calibration_images(batches, fold.train, n)
    names = [m for m in dict.fromkeys([suite.metrics.primary, *suite.metrics.report]) if m != "loss"]
    evaluate = make_evaluator(batches, fold.test, suite.task.type, tuple(suite.task.classes),
                              suite.task.positive_index, names, registry) if quantised and len(fold.test) else None
    run_dir = Path(run_dir)
    records = profile_model(model, cfg, suite.input.image_size, suite.input.channels, calib, evaluate, name=label,
                            meta={"model_name": model_name, "suite": suite.name, "run": run_dir.name, "job": job_id},
                            calib_source=f"{len(calib)} training images of fold {fold.index}", registry=registry)
    device = safe_name(cfg.device_name) if cfg.device_name else default_device_name()
    write_latency_file(run_dir / RUN_LATENCY_DIR / f"{job_id}.json", records, suite.name, device)
    return records
