"""Train + evaluate: the job kind of every suite that trains (one model x fold x seed per job).

Each job builds the model, trains it on the fold's training rows (best epoch on validation),
fits the decision threshold on validation rows only, scores the test rows and every external
set, and profiles latency when the suite asks; the driver scores the baselines before the jobs.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from typing import Any, Callable

import torch

from cxrbench.data.external import attach_external, load_external_sets
from cxrbench.data.label_space import head_map
from cxrbench.data.prepare import PreparedData, prepare_data
from cxrbench.engine.baselines import baseline_records
from cxrbench.engine.batches import Batches, model_input_for
from cxrbench.metrics.scoring import compute_metrics, score
from cxrbench.engine.external import evaluate_external
from cxrbench.engine.jobs.kernel import Job, JobKind, JobOutput, build_model, describe_error, model_cost
from cxrbench.engine.thresholding import apply_decision_threshold, check_fold, threshold_for_job
from cxrbench.engine.trainer import Trainer
from cxrbench.models.factory import apply_frozen_bn_eval
from cxrbench.plugins import Registry
from cxrbench.results.predictions import predictions_csv
from cxrbench.results.records import JobRecord
from cxrbench.results.store import RunStore, now_iso
from cxrbench.suite.loader import sha256_of
from cxrbench.suite.schema import Suite

log = logging.getLogger(__name__)

MODEL_INIT_LOCK = threading.Lock()
"""Seeding the CPU generator and building a model happen together (jobs may run in threads, one per GPU)."""


class TrainEvaluate(JobKind):
    """Train each (model, fold, seed), evaluate it on test and external sets."""

    name = "train"
    record_kind = "model"

    def prepare_data(self, suite: Suite, registry: Registry, progress: Any = None,
                     strict: bool = False) -> PreparedData:
        check_zero_shot(suite, registry)  # before any decoding
        external = load_external_sets(suite, registry, progress, strict=strict)  # a bad label map fails first
        return attach_external(prepare_data(suite, registry, progress, strict=strict), external)

    def plan(self, suite: Suite, data: PreparedData) -> list[Job]:
        return plan_jobs(suite, len(data.folds))

    def before_jobs(self, suite: Suite, data: PreparedData, registry: Registry, store: RunStore,
                    done: set[str]) -> None:
        if suite.metrics.baselines:
            baseline_records(suite, data, registry, store, done)

    def execute(self, job: Job, suite: Suite, data: PreparedData, batches: Batches, registry: Registry,
                device: torch.device, progress: Any = None,
                on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> JobOutput:
        return train_job(job, suite, data, batches, registry, device, progress, on_epoch_end)


def check_zero_shot(suite: Suite, registry: Registry) -> None:
    """Every ``train.epochs: 0`` model with a pretrained head can map it onto the suite's classes
    (:func:`cxrbench.data.label_space.head_map`); :class:`SuiteError` otherwise, before any work."""
    for entry in suite.models:
        spec = registry.model(entry.name)
        if spec.head_labels and suite.model_train(entry).epochs == 0:
            head_map(spec.head_labels, suite.task.classes, suite.task.type, repr(entry.name))


def plan_jobs(suite: Suite, n_folds: int) -> list[Job]:
    """Every (model, fold, seed) of the suite, in the order they run."""
    return [Job(m, f, s) for m in suite.models for f in range(n_folds) for s in suite.seeds]


def monitor_of(suite: Suite, registry: Registry) -> tuple[str, bool]:
    """The validation quantity early stopping and best-checkpoint selection follow, and its direction."""
    monitor = suite.train.early_stopping.monitor or f"val_{suite.metrics.primary}"
    if monitor == "val_loss":
        return monitor, False
    name = monitor.removeprefix("val_")
    return f"val_{name}", registry.higher_is_better(name)


def train_job(job: Job, suite: Suite, data: PreparedData, batches: Batches, registry: Registry,
              device: torch.device, progress: Any = None,
              on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> JobOutput:
    """Train and evaluate one job without writing anything; exceptions propagate."""
    entry, fold = job.entry, data.folds[job.fold]
    train_cfg = suite.model_train(entry)
    check_fold(suite, fold, batches.labels.numpy())  # a threshold that cannot be fitted fails before training
    started = now_iso()
    with MODEL_INIT_LOCK:  # model initialisation is part of what the seed fixes
        torch.default_generator.manual_seed(job.seed)
        model, spec = build_model(suite, entry, registry)
    model_input = model_input_for(suite, spec)  # declared by the model, or input.normalization: model
    batches = batches.for_model(model_input)  # a model's own intensity mapping (e.g. TorchXRayVision's)
    cost = model_cost(model, suite) if suite.profile.cost else {}
    monitor, higher = monitor_of(suite, registry)
    primary = suite.metrics.primary
    val_names = [primary] if monitor == "val_loss" else list(dict.fromkeys([primary, monitor.removeprefix("val_")]))
    if progress is not None:
        progress.start_job(job.id, train_cfg.epochs)
    trainer = Trainer(model, batches, fold, train_cfg, suite.task.type, tuple(suite.task.classes),
                      suite.task.positive_index, device, job.seed,
                      val_score=lambda p: compute_metrics(p, val_names, registry), monitor=monitor,
                      higher_is_better=higher, progress=progress, on_epoch_end=on_epoch_end,
                      freeze_bn=apply_frozen_bn_eval)
    fit = trainer.fit()
    threshold = threshold_for_job(suite, fold, trainer.predict)  # validation rows only
    t0 = time.perf_counter()
    pred = apply_decision_threshold(trainer.predict(fold.test), threshold)
    patients = [data.table.patient_ids[i] for i in fold.test] if data.table.patient_ids else None
    scores = score(pred, suite.metrics.report, primary, registry, suite.metrics.bootstrap,
                   suite.metrics.confidence, seed=job.seed, patients=patients)
    eval_seconds = time.perf_counter() - t0
    ids = [data.table.ids[i] for i in fold.test]
    csv = predictions_csv(pred, ids, patients)
    external, external_csv = evaluate_external(trainer, data, batches, suite, registry, job.seed, threshold)
    checkpoint = None
    if train_cfg.save_checkpoints:
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        checkpoint = buffer.getvalue()
    latency = None
    if suite.profile.latency.enabled:
        if progress is not None:
            progress.log(f"{job.id}: profiling latency ({', '.join(suite.profile.latency.runtimes)})")
        latency = profile_latency(job, model, suite, batches, fold, registry)
    config = entry.model_dump(mode="json") | {"train": train_cfg.model_dump(mode="json")}
    record = JobRecord(
        job_id=job.id, model=entry.key, model_name=entry.name, fold=job.fold, seed=job.seed, status="ok",
        metrics=scores["metrics"], ci=scores["ci"], ci_unit=scores["ci_unit"], curves=fit.curves, best_epoch=fit.best_epoch,
        epochs_run=fit.epochs_run, confusion_matrix=scores["confusion_matrix"],
        class_report=scores["class_report"], cost=cost, model_config=config,
        model_config_sha256=sha256_of(config), plugin=spec.plugin,
        train_seconds=fit.seconds, eval_seconds=eval_seconds, n_train=len(fold.train), n_val=len(fold.val),
        n_test=len(fold.test), synthetic=data.synthetic, started_at=started, finished_at=now_iso(),
        external=external, threshold=threshold, input=batches.describe(suite, model_input),
        runtime=trainer.runtime())
    return JobOutput(record, csv, checkpoint, latency, external_csv)


def profile_latency(job: Job, model: torch.nn.Module, suite: Suite, batches: Batches, fold: Any,
                    registry: Registry) -> list[dict[str, Any]]:
    """The suite's latency profile of a trained model; a profiler failure is an ``error`` record,
    never a lost model."""
    from cxrbench.engine.suite_profiling import profile_job_records

    try:
        return profile_job_records(model, suite.profile.latency, suite, batches, fold, registry, job.id,
                                   job.entry.key, job.entry.name)
    except Exception as exc:  # noqa: BLE001 - the trained model and its metrics are kept either way
        log.warning("latency profiling of %s failed: %s", job.id, exc)
        return [{"model": job.entry.key, "model_name": job.entry.name, "runtime": runtime, "threads": 0,
                 "batch_size": 0, "status": "error", "error": describe_error(exc), "suite": suite.name,
                 "job": job.id} for runtime in suite.profile.latency.runtimes]
