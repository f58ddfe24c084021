"""Both shortcut probes on a finished run folder, written to ``<run>/probes.json``.

The run's resolved suite (``run.json``) is re-validated, its data prepared exactly as the engine
did (same decode, split and normalisation, checked against the run's split manifest hash), and
each model's checkpoint of its first successful job (lowest fold, then seed) re-evaluated on that
job's test rows through the engine's own :meth:`Trainer.predict` (and the job's recorded decision
threshold).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import cxrbench
from cxrbench.data.prepare import PreparedData, prepare_data
from cxrbench.data.transforms import normalization_stats
from cxrbench.engine.baselines import baseline_predict
from cxrbench.metrics.scoring import compute_metrics
from cxrbench.engine.batches import make_batches
from cxrbench.engine.batches import Batches
from cxrbench.engine.trainer import Trainer
from cxrbench.errors import ResultsError
from cxrbench.plugins import Registry, get_registry
from cxrbench.probes import PROBES_FILE
from cxrbench.probes.masking import (CONDITIONS, MIN_MARGIN, RETAIN, MaskGeometry, masking_transform,
                                     shortcut_verdict)
from cxrbench.probes.source import WARN_AUC, source_labels, source_probe
from cxrbench.results.records import JobRecord
from cxrbench.results.store import RunStore, now_iso, write_json_atomic
from cxrbench.specs import Predictions
from cxrbench.suite.schema import Suite

NO_CHECKPOINT = "no checkpoint saved (set train.save_checkpoints: true in the suite and run it again)"


def _suite_of(store: RunStore) -> Suite:
    header = store.read_header()
    try:
        return Suite.model_validate(header["suite"])
    except Exception as exc:  # noqa: BLE001 - pydantic or a missing key
        raise ResultsError(f"{store.dir}: the run's suite no longer validates: {type(exc).__name__}: {exc}") from None


def _majority_score(primary: str, data: PreparedData, fold: Any, suite: Suite, registry: Registry) -> float:
    """The majority baseline's primary metric on the fold's test rows (fitted on its training rows)."""
    labels = np.asarray(data.table.labels)
    k = len(suite.task.classes)
    prob, pred = baseline_predict("majority", labels[fold.train], len(fold.test), k,
                                  suite.task.type == "multilabel", np.random.default_rng(0))
    preds = Predictions(labels[fold.test], prob, pred, suite.task.type, tuple(suite.task.classes),
                        suite.task.positive_index)
    return compute_metrics(preds, [primary], registry)[primary]


def _fill_value(suite: Suite, data: PreparedData, fold: Any) -> torch.Tensor:
    """Mean training pixel per channel, as uint8 (the constant the masked area is filled with)."""
    cfg = suite.input.model_copy(update={"normalization": "dataset"})
    mean, _ = normalization_stats(cfg, data.images, fold.train)
    return torch.tensor([round(255 * m) for m in mean], dtype=torch.uint8)


def _targets(store: RunStore, suite: Suite) -> tuple[dict[str, JobRecord], dict[str, str]]:
    """model label -> the record probed (first ok job with a checkpoint on disk); label -> why skipped."""
    found = store.first_checkpoints()
    records = store.records()
    chosen, skipped = {}, {}
    for entry in suite.models:
        recs = [r for r in records if r.model == entry.key]
        if entry.key in found:
            path = store.dir / found[entry.key].checkpoint_path
            if path.is_file():
                chosen[entry.key] = found[entry.key]
            else:
                skipped[entry.key] = f"checkpoint {path.relative_to(store.dir)} is missing from the run folder"
        elif any(r.status == "ok" for r in recs):
            skipped[entry.key] = NO_CHECKPOINT
        else:
            skipped[entry.key] = "no successful job in this run"
    return chosen, skipped


def _probe_model(rec: JobRecord, store: RunStore, suite: Suite, data: PreparedData, batches: Batches,
                 registry: Registry, device: torch.device, geometry: MaskGeometry, retain: float,
                 min_margin: float) -> dict[str, Any]:
    from cxrbench.engine.thresholding import apply_decision_threshold  # the job's own decision threshold
    from cxrbench.report.gradcam import load_checkpoint  # builds without upstream weights: no download

    entry = next(e for e in suite.models if e.key == rec.model)
    fold = data.folds[rec.fold]
    primary = suite.metrics.primary
    higher = registry.metric(primary).higher_is_better
    model = load_checkpoint(suite, entry, store.dir / rec.checkpoint_path, registry, device)
    fill = _fill_value(suite, data, fold)
    scores = {}
    for condition in CONDITIONS:
        variant = replace(batches, eval_transform=masking_transform(condition, geometry, fill, batches.eval_transform))
        trainer = Trainer(model, variant, fold, suite.model_train(entry), suite.task.type, tuple(suite.task.classes),
                          suite.task.positive_index, device, rec.seed, val_score=lambda p: {}, monitor="val_loss",
                          higher_is_better=False)
        pred = apply_decision_threshold(trainer.predict(fold.test), getattr(rec, "threshold", None))
        scores[condition] = compute_metrics(pred, [primary], registry)[primary]
    chance = _majority_score(primary, data, fold, suite, registry)
    recorded = rec.metrics.get(primary)
    return {"model": rec.model, "model_name": rec.model_name, "job": rec.job_id, "fold": rec.fold, "seed": rec.seed,
            "status": "ok", "n_test": len(fold.test), "scores": scores, "majority": chance, "recorded": recorded,
            "reproduced": recorded is not None and math.isclose(scores["original"], recorded, abs_tol=1e-4),
            "fill": fill.tolist(), **shortcut_verdict(scores, chance, higher, retain, min_margin)}


def _source_section(suite: Suite, data: PreparedData, sources: np.ndarray | None, origin: str, column: str | None,
                    warn_auc: float) -> dict[str, Any]:
    if sources is None:
        return {"status": "skipped", "message": origin}
    labels = np.asarray(data.table.labels)
    result = source_probe(data.images, sources, data.table.patient_ids,
                          labels=labels if labels.ndim == 1 else None, class_names=list(suite.task.classes),
                          warn_auc=warn_auc)
    return {"column": column or "source", "origin": origin, **result}


def run_probes(run: str | Path, *, results_root: Path | None = None, geometry: MaskGeometry = MaskGeometry(),
               retain: float = RETAIN, min_margin: float = MIN_MARGIN, source_column: str | None = None,
               warn_auc: float = WARN_AUC, device: str = "auto", registry: Registry | None = None) -> dict[str, Any]:
    """Run the masking probe on every model with a checkpoint and the source probe; write ``probes.json``.

    Raises :class:`ResultsError` when no model of the run has a checkpoint, or when the dataset
    now gives a different split than the run's. Returns what was written.
    """
    from cxrbench.engine.device import resolve_device

    registry = registry or get_registry()
    store = RunStore.open(run, results_root)
    header = store.read_header()
    suite = _suite_of(store)
    chosen, skipped = _targets(store, suite)
    if not chosen:
        reasons = "; ".join(f"{m}: {why}" for m, why in skipped.items()) or "the suite has no models"
        raise ResultsError(f"run {store.run_id}: no model to probe ({reasons})")
    data = prepare_data(suite, registry)
    expected = header.get("split_manifest_sha256")
    if expected and data.manifest_sha256 != expected:
        raise ResultsError(f"run {store.run_id}: the dataset now gives a different split than the run's (its files "
                           "changed?), so the run's test rows cannot be re-created")
    sources, origin = source_labels(data.table, source_column)  # a bad --source-column fails before the work
    batches = make_batches(suite, data)
    dev = resolve_device(device)
    models = [_probe_model(rec, store, suite, data, batches, registry, dev, geometry, retain, min_margin)
              for rec in chosen.values()]
    models += [{"model": m, "status": "skipped", "reason": why} for m, why in skipped.items()]
    primary = suite.metrics.primary
    out = {
        "run_id": store.run_id, "suite": suite.name, "created_at": now_iso(), "cxrbench_version": cxrbench.__version__,
        "synthetic": data.synthetic,
        "masking": {"primary": primary, "higher_is_better": registry.metric(primary).higher_is_better,
                    "geometry": geometry.as_dict(), "retain": retain, "min_margin": min_margin,
                    "fill": "mean training pixel value (a constant)",
                    "rule": f"flagged when the model keeps >= {retain:g} of its margin over the majority baseline "
                            f"with the central {geometry.width:g} x {geometry.height:g} (lung) region masked; "
                            f"models less than {min_margin:g} above the baseline are not assessed",
                    "models": models},
        "source": _source_section(suite, data, sources, origin, source_column, warn_auc),
    }
    write_json_atomic(store.dir / PROBES_FILE, out)
    return out
