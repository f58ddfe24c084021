"""What a run writes: the run header (``run.json``) and one record per job."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class JobRecord:
    """One trained and evaluated model x fold x seed (``records/<job>.json``)."""

    job_id: str
    model: str
    """The model's label in the suite (its leaderboard row)."""
    model_name: str
    """The registered model name."""
    fold: int
    seed: int
    status: str = "ok"
    """``ok`` or ``failed``."""
    kind: str = "model"
    """``model``, or ``baseline`` for the trivial predictors (majority, stratified)."""
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    ci_unit: dict[str, Any] = field(default_factory=dict)
    """What the ``ci`` bootstrap resampled: ``unit`` (``patient``/``image``), ``n_units``, ``n_resamples``,
    ``confidence``; empty for records written before it existed."""
    curves: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    epochs_run: int = 0
    confusion_matrix: list = field(default_factory=list)
    class_report: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    model_config_sha256: str = ""
    plugin: str = ""
    predictions_path: str | None = None
    checkpoint_path: str | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    threshold: dict[str, Any] | None = None
    """Decision threshold applied to the test predictions (suite ``metrics.threshold``): ``rule``,
    ``level``, ``value`` (a float, or one per label), ``fitted_on`` (``"val"``, or None for ``fixed``)
    and ``n_val``; None for multiclass (argmax) and for records written before thresholds existed."""
    input: dict[str, Any] = field(default_factory=dict)
    """What the model was fed: ``channels``, ``image_size``, ``mean``/``std`` ([0, 1] units) and
    ``normalization`` (``suite: imagenet``, or ``model: <name>`` when ``ModelSpec.input`` set them);
    empty for records written before it existed."""
    synthetic: bool = False
    started_at: str = ""
    finished_at: str = ""
    runtime: dict[str, Any] = field(default_factory=dict)
    """How the job ran on its device: ``device``, ``precision``, ``grad_scaler``, ``channels_last``,
    ``compile`` (off | on | failed: ...), ``resampler`` (torchvision | kornia | None without
    augmentation) and ``loader_workers``; empty for records written before it existed."""
    external: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Suite ``external_test`` name -> ``metrics``, ``ci``, ``n``, ``dropped``, ``predictions_path``, ...
    (:mod:`cxrbench.engine.external`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobRecord":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def first_checkpoints(records: list[JobRecord]) -> dict[str, JobRecord]:
    """model label -> the record of its first ok job (lowest fold, then seed) that saved a checkpoint."""
    out: dict[str, JobRecord] = {}
    for rec in sorted(records, key=lambda r: (r.fold, r.seed)):
        if rec.status == "ok" and rec.checkpoint_path and rec.model not in out:
            out[rec.model] = rec
    return out


def job_id(model: str, fold: int, seed: int) -> str:
    """Stable id of one job, also its file stem: ``resnet18__fold0__seed0``. Characters a file name
    cannot safely hold (``timm:convnext_tiny``, ``hf-hub:org/repo``) become ``-``."""
    return f"{file_stem(model)}__fold{fold}__seed{seed}"


def file_stem(label: str) -> str:
    """``label`` with every character but letters, digits and ``_ . + -`` replaced by ``-``."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", label)


@dataclass
class RunInfo:
    """A run as the lifecycle hooks see it."""

    run_id: str
    run_dir: Path
    suite_name: str
    suite: dict[str, Any]
    """The resolved suite (plain JSON data)."""
    jobs: list[str]
    header: dict[str, Any] = field(default_factory=dict)
    """The contents of run.json."""
