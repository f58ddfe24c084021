"""One job: build a model, train it on one fold with one seed, evaluate on test, hand back its artefacts."""

from __future__ import annotations

import io
import logging
import os
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from cxrbench.data.prepare import PreparedData
from cxrbench.data.transforms import eval_transform, normalization_stats, train_transform
from cxrbench.engine.evaluation import compute_metrics, score, write_predictions
from cxrbench.engine.external import evaluate_external, save_external
from cxrbench.engine.thresholding import apply_decision_threshold, check_fold, threshold_for_job
from cxrbench.engine.trainer import Batches, Trainer
from cxrbench.models.factory import apply_frozen_bn_eval, create_model
from cxrbench.plugins import Registry
from cxrbench.results.records import JobRecord, job_id
from cxrbench.results.store import RunStore, now_iso
from cxrbench.specs import BuildRequest
from cxrbench.suite.loader import sha256_of
from cxrbench.suite.schema import ModelEntry, Suite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One unit of work: a model entry of the suite, a fold and a seed."""

    entry: ModelEntry
    fold: int
    seed: int

    @property
    def id(self) -> str:
        return job_id(self.entry.key, self.fold, self.seed)


def plan_jobs(suite: Suite, n_folds: int) -> list[Job]:
    """Every (model, fold, seed) of the suite, in the order they run."""
    return [Job(m, f, s) for m in suite.models for f in range(n_folds) for s in suite.seeds]


def make_batches(suite: Suite, data: PreparedData,
                 stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> Batches:
    """Shared tensors + transforms for every job (normalisation statistics from fold 0's train rows,
    or ``stats`` = (mean, std) already computed by the driver)."""
    if stats is None:
        mean, std = normalization_stats(suite.input, data.images, data.folds[0].train)
        shape = (1, len(mean), 1, 1)
        stats = torch.tensor(mean).view(shape), torch.tensor(std).view(shape)
    with warnings.catch_warnings():  # arrays from Ray's object store are read-only; rows are only copied out
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        images = torch.from_numpy(data.images)
        labels = torch.as_tensor(data.table.labels)
    labels = labels.float() if suite.task.type == "multilabel" else labels.long()
    return Batches(images, labels, stats[0], stats[1], train_transform(list(suite.augment), suite.input),
                   eval_transform(suite.input))


def monitor_of(suite: Suite, registry: Registry) -> tuple[str, bool]:
    """The validation quantity early stopping and best-checkpoint selection follow, and its direction."""
    monitor = suite.train.early_stopping.monitor or f"val_{suite.metrics.primary}"
    if monitor == "val_loss":
        return monitor, False
    name = monitor.removeprefix("val_")
    return f"val_{name}", registry.metric(name).higher_is_better


def build_model(suite: Suite, entry: ModelEntry, registry: Registry) -> tuple[torch.nn.Module, Any]:
    """The entry's model, with its params validated, weights loaded and freeze policy applied."""
    spec = registry.model(entry.name)
    params = spec.params_schema.model_validate(entry.params)
    request = BuildRequest(num_classes=len(suite.task.classes), in_chans=suite.input.channels,
                           task=suite.task.type, pretrained=entry.pretrained, image_size=suite.input.image_size,
                           dropout=entry.dropout, params=params)
    return create_model(spec, request, weights=entry.weights, freeze=entry.freeze), spec


def model_cost(model: torch.nn.Module, suite: Suite) -> dict[str, Any]:
    """Parameters and MACs of the model as trained (suite input size, classes and channels)."""
    from cxrbench.profiling.cost import count_macs, count_params

    total, trainable = count_params(model)
    cost: dict[str, Any] = {"params": total, "params_trainable": trainable,
                            "input": [suite.input.channels, suite.input.image_size, suite.input.image_size]}
    try:
        cost.update(count_macs(model, suite.input.image_size, suite.input.channels))
    except Exception as exc:  # noqa: BLE001 - a counter failure must not lose a trained model
        log.warning("MAC count failed for %s: %s", type(model).__name__, exc)
        cost["macs_error"] = f"{type(exc).__name__}: {exc}"
    return cost


@dataclass
class JobOutput:
    """A finished job before it touches the run folder: the record and its artefacts as bytes.

    The Ray executor returns this from a worker so the driver alone writes the run folder (no
    shared file system needed). ``record.predictions_path``/``checkpoint_path`` are set by
    :func:`save_output`.
    """

    record: JobRecord
    predictions_csv: bytes
    checkpoint: bytes | None = None
    latency: list[dict[str, Any]] | None = None
    """Latency records (suite ``profile.latency``), written to ``<run>/latency/<job>.json``."""
    external_csv: dict[str, bytes] = field(default_factory=dict)
    """Predictions CSV per suite ``external_test`` set, written to ``<run>/external/<name>/<job>.csv``."""


def train_job(job: Job, suite: Suite, data: PreparedData, batches: Batches, registry: Registry,
              device: torch.device, progress: Any = None,
              on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> JobOutput:
    """Train and evaluate one job without writing anything; exceptions propagate.

    A profile-only suite's job is built and profiled instead (:mod:`cxrbench.engine.profile_only`)."""
    if suite.profile.only:
        from cxrbench.engine.profile_only import profile_only_job

        return profile_only_job(job, suite, data, batches, registry, device, progress)
    entry, fold = job.entry, data.folds[job.fold]
    train_cfg = suite.model_train(entry)
    check_fold(suite, fold, batches.labels.numpy())  # a threshold that cannot be fitted fails before training
    started = now_iso()
    torch.manual_seed(job.seed)  # model initialisation is part of what the seed fixes
    model, spec = build_model(suite, entry, registry)
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
    scores = score(pred, suite.metrics.report, primary, registry, suite.metrics.bootstrap,
                   suite.metrics.confidence, seed=job.seed)
    eval_seconds = time.perf_counter() - t0
    ids = [data.table.ids[i] for i in fold.test]
    patients = [data.table.patient_ids[i] for i in fold.test] if data.table.patient_ids else None
    with tempfile.TemporaryDirectory(prefix="cxrbench-") as tmp:  # write_predictions is the one CSV format
        csv_path = Path(tmp) / "predictions.csv"
        write_predictions(csv_path, pred, ids, patients)
        predictions_csv = csv_path.read_bytes()
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
        metrics=scores["metrics"], ci=scores["ci"], curves=fit.curves, best_epoch=fit.best_epoch,
        epochs_run=fit.epochs_run, confusion_matrix=scores["confusion_matrix"],
        class_report=scores["class_report"], cost=cost, model_config=config,
        model_config_sha256=sha256_of(config), plugin=spec.plugin,
        train_seconds=fit.seconds, eval_seconds=eval_seconds, n_train=len(fold.train), n_val=len(fold.val),
        n_test=len(fold.test), synthetic=data.synthetic, started_at=started, finished_at=now_iso(),
        external=external, threshold=threshold)
    return JobOutput(record, predictions_csv, checkpoint, latency, external_csv)


def profile_latency(job: Job, model: torch.nn.Module, suite: Suite, batches: Batches, fold: Any,
                    registry: Registry) -> list[dict[str, Any]]:
    """The suite's latency profile of a trained model; a profiler failure is an ``error`` record,
    never a lost model."""
    from cxrbench.profiling.suite_job import profile_job_records

    try:
        return profile_job_records(model, suite.profile.latency, suite, batches, fold, registry, job.id,
                                   job.entry.key, job.entry.name)
    except Exception as exc:  # noqa: BLE001 - the trained model and its metrics are kept either way
        log.warning("latency profiling of %s failed: %s", job.id, exc)
        return [{"model": job.entry.key, "model_name": job.entry.name, "runtime": runtime, "threads": 0,
                 "batch_size": 0, "status": "error", "error": describe_error(exc), "suite": suite.name,
                 "job": job.id} for runtime in suite.profile.latency.runtimes]


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # open() keeps the umask's file mode
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_output(output: JobOutput, store: RunStore) -> JobRecord:
    """Write a job's predictions (and checkpoint) into the run folder; the record, with their paths."""
    record = output.record
    pred_path = store.predictions_path(record.job_id) if output.predictions_csv else None  # none: profile-only
    if pred_path is not None:
        _write_bytes_atomic(pred_path, output.predictions_csv)
    ckpt = None
    if output.checkpoint is not None:
        ckpt = store.checkpoint_path(record.job_id)
        _write_bytes_atomic(ckpt, output.checkpoint)
    if output.latency:
        from cxrbench.profiling.suite_job import save_job_latency

        save_job_latency(store.dir, record.job_id, output.latency)
    if output.external_csv:
        record = replace(record, external=save_external(store, record, output.external_csv))
    return replace(record, predictions_path=str(pred_path.relative_to(store.dir)) if pred_path else None,
                   checkpoint_path=str(ckpt.relative_to(store.dir)) if ckpt else None)


def run_job(job: Job, suite: Suite, data: PreparedData, batches: Batches, registry: Registry,
            store: RunStore, device: torch.device, progress: Any = None,
            on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> JobRecord:
    """Train and evaluate one job, write its predictions (and checkpoint), return its (not yet
    written) record; exceptions propagate."""
    output = train_job(job, suite, data, batches, registry, device, progress, on_epoch_end)
    return save_output(output, store)


def describe_error(exc: BaseException) -> str:
    """``Type: message (at file:line)``: how a failed job's record names its error."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"
