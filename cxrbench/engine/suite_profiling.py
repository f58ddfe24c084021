"""A suite's ``profile.latency``: profile one job's model with the suite's data and metrics.

:func:`profile_job_records` measures and writes nothing (so a Ray worker can run it and hand the
records to the driver); :func:`cxrbench.results.latency.write_latency_job` writes them to
``<run>/latency/<job>.json``. :func:`profile_job` does both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn

from cxrbench.suite.latency import LatencyConfig
from cxrbench.profiling.data import calibration_images, make_evaluator
from cxrbench.profiling import profiler
from cxrbench.results.latency import write_latency_job
from cxrbench.results.store import RunStore


def profile_job_records(model: nn.Module, cfg: LatencyConfig, suite: Any, batches: Any, fold: Any, registry: Any,
                        job_id: str, label: str, model_name: str, run_id: str | None = None, *,
                        measure_accuracy: bool = True, calib_from: str | None = None) -> list[dict[str, Any]]:
    """Latency records of a model (nothing written).

    int8 is calibrated on ``cfg.calib_images`` training rows of ``fold`` (``calib_from`` says what
    they are, default "training images of fold K"), and, with ``measure_accuracy``, its
    accuracy (and the fp32 model's) is measured on the fold's test rows with the suite's metrics.
    ``batches`` is the run's :class:`cxrbench.engine.trainer.Batches`.
    """
    quantised = "int8" in cfg.runtimes
    calib = calibration_images(batches, fold.train, cfg.calib_images if quantised else 16)
    evaluate = None
    if quantised and measure_accuracy and len(fold.test):
        names = [m for m in dict.fromkeys([suite.metrics.primary, *suite.metrics.report]) if m != "loss"]
        evaluate = make_evaluator(batches, fold.test, suite.task.type, tuple(suite.task.classes),
                                  suite.task.positive_index, names, registry)
    return profiler.profile_model(model, cfg, suite.input.image_size, suite.input.channels, calib, evaluate, name=label,
                         meta={"model_name": model_name, "suite": suite.name, "run": run_id, "job": job_id},
                         calib_source=f"{len(calib)} {calib_from or f'training images of fold {fold.index}'}",
                         registry=registry)


def profile_job(model: nn.Module, cfg: LatencyConfig, suite: Any, batches: Any, fold: Any, registry: Any,
                run_dir: str | Path, job_id: str, label: str, model_name: str) -> list[dict[str, Any]]:
    """:func:`profile_job_records` then :func:`save_job_latency`; returns the records."""
    store = RunStore(run_dir)
    records = profile_job_records(model, cfg, suite, batches, fold, registry, job_id, label, model_name,
                                  run_id=store.run_id)
    write_latency_job(store, job_id, records)
    return records
