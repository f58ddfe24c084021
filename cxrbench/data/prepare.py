"""From a suite's dataset block to decoded images, labels and folds ready for every job."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench.data.cache import load_images
from cxrbench.data.images import subset_loader
from cxrbench.data.loading import load_dataset
from cxrbench.data.splits import Fold, leaked_patients, plan_folds, split_manifest
from cxrbench.errors import DatasetError
from cxrbench.plugins import Registry
from cxrbench.specs import SampleTable
from cxrbench.suite.schema import Suite


@dataclass
class PreparedData:
    """Everything the engine needs about the data, shared by all jobs of a run."""

    table: SampleTable
    images: np.ndarray
    """uint8 ``(N, C, S, S)``, row i = table row i."""
    folds: list[Fold]
    manifest: pd.DataFrame
    manifest_sha256: str
    synthetic: bool
    bad: list[tuple[str, str]] = field(default_factory=list)
    """(sample id, reason): unreadable images, and rows a dataset skipped (e.g. ``allow_missing``)."""
    notes: dict[str, Any] = field(default_factory=dict)
    """Extra facts for run.json (image cache, leakage inside an official split)."""
    external: list[Any] = field(default_factory=list)
    """The suite's external test sets (:class:`cxrbench.data.external.ExternalSet`), shipped to every job."""

    def summary(self) -> dict[str, Any]:
        return {
            "n_images": len(self.table),
            "synthetic": self.synthetic,
            "fingerprint": self.table.fingerprint,
            "bad_images": [{"id": i, "reason": r} for i, r in self.bad],
            "folds": [{"fold": f.index, "train": len(f.train), "val": len(f.val), "test": len(f.test)}
                      for f in self.folds],
            **self.notes,
        }


def _restrict(table: SampleTable, keep: np.ndarray) -> SampleTable:
    """The table restricted to rows ``keep`` (its per-row ``extras`` and label masks too)."""
    pick = lambda seq: None if seq is None else [seq[i] for i in keep]  # noqa: E731
    rows = lambda arr: None if arr is None else np.asarray(arr)[keep]  # noqa: E731
    extras = {k: v[keep] if isinstance(v, np.ndarray) else pick(v) for k, v in table.extras.items()}
    return replace(table, ids=pick(table.ids), labels=table.labels[keep], patient_ids=pick(table.patient_ids),
                   official_split=pick(table.official_split), load_image=subset_loader(table.load_image, keep),
                   extras=extras, label_mask=rows(table.label_mask), label_uncertain=rows(table.label_uncertain))


def load_table(suite: Suite, registry: Registry) -> SampleTable:
    """Ask the dataset plugin for the suite's rows; check labels fit the task."""
    spec = registry.dataset(suite.dataset.name)
    table = load_dataset(spec, suite.task.type, suite.task.classes, suite.dataset.root, suite.dataset.options,
                         suite.dataset.variant)
    k = len(suite.task.classes)
    labels = np.asarray(table.labels)
    if suite.task.type == "multilabel":
        if labels.ndim != 2 or labels.shape[1] != k:
            raise DatasetError(f"dataset {spec.name!r} gave labels of shape {labels.shape}, expected (N, {k})")
        if table.label_mask is not None and np.shape(table.label_mask) != labels.shape:
            raise DatasetError(f"dataset {spec.name!r} gave a label_mask of shape {np.shape(table.label_mask)}, "
                               f"expected {labels.shape}")
    elif labels.ndim != 1 or (len(labels) and (labels.min() < 0 or labels.max() >= k)):
        raise DatasetError(f"dataset {spec.name!r} gave labels outside 0..{k - 1} for classes {suite.task.classes}")
    if len(table) == 0:
        raise DatasetError(f"dataset {spec.name!r} has no images")
    return table


def _official_leaks(table: SampleTable) -> list[str]:
    """Patients a dataset's own official split puts in more than one part."""
    if table.patient_ids is None or table.official_split is None:
        return []
    parts: dict[str, set[str]] = {}
    for p, part in zip(table.patient_ids, table.official_split):
        parts.setdefault(p, set()).add(part)
    return sorted(p for p, s in parts.items() if len(s) > 1)


def prepare_data(suite: Suite, registry: Registry, progress: Any = None, strict: bool = False, *,
                 cache_dir: str | Path | None = None, use_cache: bool = True) -> PreparedData:
    """Load rows, decode every image once at the suite's size, drop (and list) unreadable ones, split.

    Decoded images come from the preprocessing cache (:mod:`cxrbench.data.cache`; ``cache_dir``
    overrides ``$CXRBENCH_CACHE``). Unreadable images are listed in ``bad`` and skipped, or raise
    a DatasetError when ``strict``. A patient the dataset's *own* official split puts on two sides
    is reported (``notes``), not fatal: the split the suite asked for is the dataset's.
    """
    table = load_table(suite, registry)
    size, channels = suite.input.decode_size, suite.input.channels
    arr = load_images(table, size, channels, dataset=suite.dataset.name, cache_dir=cache_dir,
                      use_cache=use_cache, progress=progress)
    if arr.bad and strict:
        listed = "\n".join(f"  {i}: {r}" for i, r in arr.bad[:20])
        raise DatasetError(f"{len(arr.bad)} unreadable image(s) (--strict):\n{listed}")
    skipped = [(str(i), str(r)) for i, r in table.skipped]
    table = _restrict(table, arr.keep) if len(arr.keep) != len(table) else table
    folds = plan_folds(table, suite.split)
    notes: dict[str, Any] = {"image_cache": arr.info()}
    official_leaks = _official_leaks(table) if suite.split.strategy == "official" else []
    if official_leaks:
        notes["official_split_shared_patients"] = {"count": len(official_leaks), "first": official_leaks[:20]}
        if progress is not None and hasattr(progress, "log"):
            progress.log(f"[yellow]warning: the dataset's official split puts {len(official_leaks)} patient(s) in "
                         f"more than one part (e.g. {official_leaks[:3]}); see `cxrbench datasets describe`[/yellow]")
    for fold in folds:
        leaks = leaked_patients(table, fold) if suite.split.group_by != "none" else set()
        leaks -= set(official_leaks)
        if leaks:
            raise DatasetError(f"fold {fold.index}: patients on two sides of the split: {sorted(leaks)[:5]}")
    manifest = split_manifest(table, folds)
    digest = hashlib.sha256(manifest.to_csv(index=False).encode()).hexdigest()
    synthetic = table.synthetic or registry.dataset(suite.dataset.name).synthetic
    return PreparedData(table, arr.images, folds, manifest, digest, synthetic, arr.bad + skipped, notes)
