"""Both shortcut probes on a finished run folder, written to ``<run>/probes.json``.

The run is read through :class:`~cxrbench.results.view.RunView`: its resolved suite (``run.json``)
re-validated, its data prepared exactly as the engine did (same decode, split and normalisation,
checked against the run's split manifest hash), and
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
from cxrbench.data.prepare import PreparedData
from cxrbench.data.transforms import normalization_stats
from cxrbench.engine.baselines import baseline_predict
from cxrbench.metrics.scoring import compute_metrics
from cxrbench.engine.batches import make_batches
from cxrbench.engine.batches import Batches, model_input_for
from cxrbench.engine.trainer import Trainer
from cxrbench.errors import ResultsError
from cxrbench.plugins import Registry, get_registry
from cxrbench.probes.masking import (CONDITIONS, MIN_MARGIN, RETAIN, MaskGeometry, masking_transform,
                                     shortcut_verdict)
from cxrbench.probes.source import WARN_AUC, source_labels, source_probe
from cxrbench.results.records import JobRecord
from cxrbench.results.store import now_iso, write_json_atomic
from cxrbench.results.view import NO_CHECKPOINT, RunView
from cxrbench.specs import Predictions
from cxrbench.suite.schema import Suite


def _majority_score(primary: str, data: PreparedData, fold: Any, suite: Suite, registry: Registry) -> float:
    """The majority baseline's primary metric on the fold's test rows (fitted on its training rows)."""
    labels = np.asarray(data.table.labels)
    mask = data.table.label_mask
    k = len(suite.task.classes)
    prob, pred = baseline_predict("majority", labels[fold.train], len(fold.test), k,
                                  suite.task.type == "multilabel", np.random.default_rng(0),
                                  None if mask is None else np.asarray(mask)[fold.train])
    preds = Predictions(labels[fold.test], prob, pred, suite.task.type, tuple(suite.task.classes),
                        suite.task.positive_index, mask=None if mask is None else np.asarray(mask)[fold.test])
    return compute_metrics(preds, [primary], registry)[primary]


def _fill_value(suite: Suite, data: PreparedData, fold: Any) -> torch.Tensor:
    """Mean training pixel per channel, as uint8 (the constant the masked area is filled with)."""
    cfg = suite.input.model_copy(update={"normalization": "dataset"})
    mean, _ = normalization_stats(cfg, data.images, fold.train)
    return torch.tensor([round(255 * m) for m in mean], dtype=torch.uint8)


def _targets(run: RunView) -> tuple[dict[str, JobRecord], dict[str, str]]:
    """model label -> the record probed (first ok job with a checkpoint on disk); label -> why skipped."""
    found = run.first_checkpoints()
    chosen, skipped = {}, {}
    for entry in run.suite.models:
        recs = [r for r in run.records if r.model == entry.key]
        if entry.key in found:
            path = run.checkpoint(found[entry.key])
            if path.is_file():
                chosen[entry.key] = found[entry.key]
            else:
                skipped[entry.key] = f"checkpoint {run.store.relative(path)} is missing from the run folder"
        elif any(r.status == "ok" for r in recs):
            skipped[entry.key] = NO_CHECKPOINT
        else:
            skipped[entry.key] = "no successful job in this run"
    return chosen, skipped


def _probe_model(rec: JobRecord, run: RunView, data: PreparedData, batches: Batches, device: torch.device,
                 geometry: MaskGeometry, retain: float, min_margin: float) -> dict[str, Any]:
    from cxrbench.engine.thresholding import apply_decision_threshold  # the job's own decision threshold

    suite, registry = run.suite, run.registry
    entry = run.model_entry(rec)
    fold = data.folds[rec.fold]
    primary = suite.metrics.primary
    higher = registry.higher_is_better(primary)
    model = run.model(rec, device)  # built without upstream weights: no download
    batches = batches.for_model(model_input_for(suite, registry.model(rec.model_name)))
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

    view = RunView.open(run, results_root, registry or get_registry())
    registry, store, suite = view.registry, view.store, view.suite
    chosen, skipped = _targets(view)
    if not chosen:
        reasons = "; ".join(f"{m}: {why}" for m, why in skipped.items()) or "the suite has no models"
        raise ResultsError(f"run {store.run_id}: no model to probe ({reasons})")
    data = view.prepared_data()
    sources, origin = source_labels(data.table, source_column)  # a bad --source-column fails before the work
    batches = make_batches(suite, data)
    dev = resolve_device(device)
    models = [_probe_model(rec, view, data, batches, dev, geometry, retain, min_margin) for rec in chosen.values()]
    models += [{"model": m, "status": "skipped", "reason": why} for m, why in skipped.items()]
    primary = suite.metrics.primary
    out = {
        "run_id": store.run_id, "suite": suite.name, "created_at": now_iso(), "cxrbench_version": cxrbench.__version__,
        "synthetic": data.synthetic,
        "masking": {"primary": primary, "higher_is_better": registry.higher_is_better(primary),
                    "geometry": geometry.as_dict(), "retain": retain, "min_margin": min_margin,
                    "fill": "mean training pixel value (a constant)",
                    "rule": f"flagged when the model keeps >= {retain:g} of its margin over the majority baseline "
                            f"with the central {geometry.width:g} x {geometry.height:g} (lung) region masked; "
                            f"models less than {min_margin:g} above the baseline are not assessed",
                    "models": models},
        "source": _source_section(suite, data, sources, origin, source_column, warn_auc),
    }
    write_json_atomic(store.probes_path, out)
    return out
