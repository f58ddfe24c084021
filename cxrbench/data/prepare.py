"""From a suite's dataset block to decoded images, labels and folds ready for every job."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from cxrbench.data.images import materialize
from cxrbench.data.splits import Fold, leaked_patients, plan_folds, split_manifest
from cxrbench.errors import DatasetError
from cxrbench.plugins import Registry
from cxrbench.specs import DataRequest, SampleTable
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

    def summary(self) -> dict[str, Any]:
        return {
            "n_images": len(self.table),
            "synthetic": self.synthetic,
            "fingerprint": self.table.fingerprint,
            "bad_images": [{"id": i, "reason": r} for i, r in self.bad],
            "folds": [{"fold": f.index, "train": len(f.train), "val": len(f.val), "test": len(f.test)}
                      for f in self.folds],
        }


def _restrict(table: SampleTable, keep: np.ndarray) -> SampleTable:
    pick = lambda seq: None if seq is None else [seq[i] for i in keep]  # noqa: E731
    return replace(table, ids=pick(table.ids), labels=table.labels[keep], patient_ids=pick(table.patient_ids),
                   official_split=pick(table.official_split))


def load_table(suite: Suite, registry: Registry) -> SampleTable:
    """Ask the dataset plugin for the suite's rows; check labels fit the task."""
    spec = registry.dataset(suite.dataset.name)
    root = os.path.expandvars(os.path.expanduser(suite.dataset.root)) if suite.dataset.root else None
    request = DataRequest(task=suite.task.type, classes=tuple(suite.task.classes), root=root,
                          options=dict(suite.dataset.options), subset=suite.dataset.variant)
    table = spec.load(request)
    k = len(suite.task.classes)
    labels = np.asarray(table.labels)
    if suite.task.type == "multilabel":
        if labels.ndim != 2 or labels.shape[1] != k:
            raise DatasetError(f"dataset {spec.name!r} gave labels of shape {labels.shape}, expected (N, {k})")
    elif labels.ndim != 1 or (len(labels) and (labels.min() < 0 or labels.max() >= k)):
        raise DatasetError(f"dataset {spec.name!r} gave labels outside 0..{k - 1} for classes {suite.task.classes}")
    if len(table) == 0:
        raise DatasetError(f"dataset {spec.name!r} has no images")
    return table


def prepare_data(suite: Suite, registry: Registry, progress: Any = None, strict: bool = False) -> PreparedData:
    """Load rows, decode every image once at the suite's size, drop (and list) unreadable ones, split."""
    table = load_table(suite, registry)
    size, channels = suite.input.decode_size, suite.input.channels
    if progress is not None:
        progress.start_phase(f"decoding {len(table)} images at {size}px", len(table))
    arr = materialize(table, size, channels, progress.advance_phase if progress is not None else None)
    if progress is not None:
        progress.end_phase()
    if arr.bad and strict:
        listed = "\n".join(f"  {i}: {r}" for i, r in arr.bad[:20])
        raise DatasetError(f"{len(arr.bad)} unreadable image(s) (--strict):\n{listed}")
    table = _restrict(table, arr.keep) if arr.bad else table
    folds = plan_folds(table, suite.split)
    for fold in folds:
        leaks = leaked_patients(table, fold) if suite.split.group_by != "none" else set()
        if leaks:
            raise DatasetError(f"fold {fold.index}: patients on two sides of the split: {sorted(leaks)[:5]}")
    manifest = split_manifest(table, folds)
    digest = hashlib.sha256(manifest.to_csv(index=False).encode()).hexdigest()
    synthetic = table.synthetic or registry.dataset(suite.dataset.name).synthetic
    return PreparedData(table, arr.images, folds, manifest, digest, synthetic, arr.bad)
