"""One job: build a model, train it on one fold with one seed, evaluate on test, write its record."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from cxrbench.data.prepare import PreparedData
from cxrbench.engine.evaluation import compute_metrics, score, write_predictions
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


def run_job(job: Job, suite: Suite, data: PreparedData, batches: Batches, registry: Registry,
            store: RunStore, device: torch.device, progress: Any = None,
            on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> JobRecord:
    """Train and evaluate one job and return its (not yet written) record; exceptions propagate."""
    entry, fold = job.entry, data.folds[job.fold]
    train_cfg = suite.model_train(entry)
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
    t0 = time.perf_counter()
    pred = trainer.predict(fold.test)
    scores = score(pred, suite.metrics.report, primary, registry, suite.metrics.bootstrap,
                   suite.metrics.confidence, seed=job.seed)
    eval_seconds = time.perf_counter() - t0
    ids = [data.table.ids[i] for i in fold.test]
    patients = [data.table.patient_ids[i] for i in fold.test] if data.table.patient_ids else None
    pred_path = store.predictions_path(job.id)
    write_predictions(pred_path, pred, ids, patients)
    ckpt = None
    if train_cfg.save_checkpoints:
        ckpt = store.checkpoint_path(job.id)
        torch.save(model.state_dict(), ckpt)
    config = entry.model_dump(mode="json") | {"train": train_cfg.model_dump(mode="json")}
    return JobRecord(
        job_id=job.id, model=entry.key, model_name=entry.name, fold=job.fold, seed=job.seed, status="ok",
        metrics=scores["metrics"], ci=scores["ci"], curves=fit.curves, best_epoch=fit.best_epoch,
        epochs_run=fit.epochs_run, confusion_matrix=scores["confusion_matrix"],
        class_report=scores["class_report"], cost=cost, model_config=config,
        model_config_sha256=sha256_of(config), plugin=spec.plugin,
        predictions_path=str(pred_path.relative_to(store.dir)),
        checkpoint_path=str(ckpt.relative_to(store.dir)) if ckpt else None,
        train_seconds=fit.seconds, eval_seconds=eval_seconds, n_train=len(fold.train), n_val=len(fold.val),
        n_test=len(fold.test), synthetic=data.synthetic, started_at=started, finished_at=now_iso())
