"""The suite schema: one YAML file describes a whole benchmark protocol.

Every field is validated (pydantic v2, unknown keys rejected) before any work starts. Checks that
need the plugin registry (model names, model params, metric names) live in
:mod:`cxrbench.suite.checks`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from cxrbench.suite.augment import (  # noqa: F401  (re-exported: the schema's public names)
    Affine,
    AugmentStep,
    ColorJitter,
    HorizontalFlip,
    RandomCrop,
    RandomResizedCrop,
    Rotation,
    Strict,
    VerticalFlip,
)
from cxrbench.suite.latency import LatencyConfig

TaskType = Literal["binary", "multiclass", "multilabel"]


class TaskConfig(Strict):
    """What is predicted."""

    type: TaskType
    classes: list[str] = Field(min_length=1, description="Class (or label) names, in label-index order.")
    positive_class: str | None = Field(None, description="Binary tasks: the positive class (default: the second).")

    @model_validator(mode="after")
    def _check_classes(self) -> "TaskConfig":
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"duplicate class names in {self.classes}")
        if self.type == "binary":
            if len(self.classes) != 2:
                raise ValueError(f"a binary task needs exactly 2 classes, got {len(self.classes)}")
            if self.positive_class is None:
                self.positive_class = self.classes[1]
        elif self.type == "multiclass" and len(self.classes) < 3:
            raise ValueError("a multiclass task needs at least 3 classes (use type: binary for 2)")
        if self.positive_class is not None and self.positive_class not in self.classes:
            raise ValueError(f"positive_class {self.positive_class!r} is not one of {self.classes}")
        return self

    @property
    def positive_index(self) -> int:
        return self.classes.index(self.positive_class) if self.positive_class else 1


class DatasetConfig(Strict):
    """Which data, and where it lives."""

    name: str
    root: str | None = Field(None, description="Folder or file of the data (environment variables expand).")
    variant: str | None = Field(None, description="Task variant the dataset understands (e.g. kermany: subtype).")
    options: dict[str, Any] = Field(default_factory=dict, description="Dataset-specific options.")


class RatioSplit(Strict):
    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, ge=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "RatioSplit":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:g}")
        return self


class SplitConfig(Strict):
    """How rows become train / validation / test (and folds)."""

    strategy: Literal["official", "ratio", "kfold"] = "ratio"
    ratios: RatioSplit = Field(default_factory=RatioSplit)
    folds: int = Field(5, ge=2, description="kfold: number of folds (each fold is the test set once).")
    val_fraction: float = Field(
        0.15, ge=0, lt=1,
        description="kfold, or official splits without a usable val set: share of training rows kept for validation.",
    )
    carve_val: bool = Field(
        False, description="official: fold the dataset's own val rows into train and carve val_fraction instead.")
    group_by: Literal["auto", "patient", "none"] = Field(
        "auto", description="auto = group by patient whenever the dataset has patient ids.")
    stratify: bool = True
    seed: int = Field(0, description="Seed of the split alone, so every training seed sees the same split.")


class Normalization(Strict):
    mean: list[float]
    std: list[float]


class InputConfig(Strict):
    """How images reach the model."""

    image_size: int = Field(224, ge=8, le=2048)
    channels: Literal[1, 3] = 3
    cache_size: int | None = Field(
        None, ge=8, le=4096,
        description="Resize to this size when decoding (default image_size); random_crop then crops image_size.")
    normalization: Union[Literal["imagenet", "dataset", "none", "model"], Normalization] = Field(
        "imagenet", description="imagenet | dataset (training rows' statistics) | none | model (each model's own "
                                "mean/std: timm pretrained_cfg, torchvision weights' transforms; ImageNet's when a model "
                                "declares none; recorded per job) | {mean: [...], std: [...]}")
    augment_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where training augmentation runs: cpu (torchvision, per image, in the loader "
                            "workers) or cuda (kornia, whole batches on the GPU); auto = the training device "
                            "when it is a GPU and kornia is installed. The resampler that ran is recorded.")
    workers: Union[Annotated[int, Field(ge=0)], Literal["auto"]] = Field(
        "auto", description="Background loader processes gathering (and on the CPU augmenting) batches; 0 = "
                            "in the training process; auto = 0 on a CPU, up to 8 on a GPU. Never changes results.")

    @model_validator(mode="after")
    def _sizes(self) -> "InputConfig":
        if self.cache_size is not None and self.cache_size < self.image_size:
            raise ValueError(f"cache_size ({self.cache_size}) must be >= image_size ({self.image_size})")
        if isinstance(self.normalization, Normalization):
            n = self.normalization
            if len(n.mean) != self.channels or len(n.std) != self.channels:
                raise ValueError(f"normalization mean/std need {self.channels} values each")
            if any(s <= 0 for s in n.std):
                raise ValueError("normalization std values must be > 0")
        return self

    @property
    def decode_size(self) -> int:
        return self.cache_size or self.image_size


class OptimizerConfig(Strict):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only.")
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0)


class ScheduleConfig(Strict):
    name: Literal["none", "step", "cosine"] = "none"
    step_size: int = Field(10, ge=1, description="step: epochs between decays.")
    gamma: float = Field(0.1, gt=0, le=1, description="step: decay factor.")
    min_lr: float = Field(0.0, ge=0, description="cosine: final learning rate.")
    warmup_epochs: float = Field(0.0, ge=0, description=(
        "Linear warm-up over this many epochs' steps (fractions allowed), from lr/steps up to the schedule's "
        "lr, then the schedule as usual; 0 = none. Networks trained from scratch with Adam at a high lr "
        "otherwise blow up their first steps (huge logits, dead ReLUs)."))


class EarlyStopping(Strict):
    monitor: str | None = Field(None, description="val_loss or a metric name; default: the primary metric.")
    patience: int | None = Field(None, ge=1, description="Epochs without improvement before stopping; null = off.")
    min_delta: float = Field(0.0, ge=0)


class TrainConfig(Strict):
    epochs: int = Field(10, ge=0, description="0 = evaluate without training (a pretrained head mapped onto "
                                              "the classes, or a `weights:` file with the suite's head).")
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    checkpoint: Literal["best", "last"] = Field("best", description="Which epoch's weights are evaluated on test.")
    save_checkpoints: bool = True
    max_steps_per_epoch: int | None = Field(None, ge=1, description="Cap on batches per epoch (quick runs).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Autocast dtype: auto = bf16 on a GPU that supports it (no GradScaler), else fp16 "
                            "with a GradScaler; fp32 on a CPU. The resolved precision is part of the protocol.")
    compile: bool = Field(False, description="torch.compile the model (falls back to eager, with a message, "
                                             "where compilation fails). Not part of the protocol.")
    head_init: Literal["model", "normal"] = Field("model", description=(
        "How a fresh classification head starts: model = as its builder draws it; normal = N(0, 0.01^2) weights "
        "and zero biases for every model alike (libraries differ by 40x here: timm's MobileNet heads for two "
        "classes start at logit std ~3). A head a weights file or a zero-shot mapping supplies is kept."))
    bn_recalibration: int = Field(0, ge=0, description=(
        "Before each evaluation, recompute every BatchNorm layer's running statistics over this many training "
        "batches (eval transforms, fixed sample, weights untouched; 'precise BN'); 0 = off. Short schedules need "
        "it: slow running averages (torchvision MobileNetV3: momentum 0.01) otherwise evaluate the network with "
        "statistics of its early, very different weights."))


FREEZE_RE = re.compile(r"^(none|backbone|stages:\d+)$")


class ModelEntry(Strict):
    """One model of the suite, with its per-model overrides."""

    name: str = Field(description="Registered model name (`cxrbench models`).")
    label: str | None = Field(None, description="Row name in results (default: name); unique per suite.")
    pretrained: bool = False
    weights: str | None = Field(None, description="Local .pth/.safetensors file to initialise from.")
    freeze: str = Field("none", description="none | backbone | stages:N")
    dropout: float | None = Field(None, ge=0, lt=1)
    params: dict[str, Any] = Field(default_factory=dict, description="Model kwargs, checked by the model's schema.")
    train: dict[str, Any] = Field(default_factory=dict, description="Overrides deep-merged into the suite's train.")

    @field_validator("freeze")
    @classmethod
    def _freeze(cls, v: str) -> str:
        if not FREEZE_RE.match(v):
            raise ValueError(f"freeze must be none, backbone or stages:N, got {v!r}")
        return v

    @property
    def key(self) -> str:
        return self.label or self.name


class ThresholdConfig(Strict):
    """How binary / multilabel probabilities become predictions (multiclass always takes the argmax).

    Every rule but ``fixed`` is fitted on each fold's validation predictions of the trained model
    (per label for multilabel) and applied unchanged to test; see :mod:`cxrbench.metrics.thresholds`.
    """

    rule: Literal["fixed", "youden", "sensitivity", "specificity"] = Field(
        "fixed", description="fixed: `value`; youden: max sensitivity + specificity - 1 on validation; "
                             "sensitivity / specificity: reach `level` on validation.")
    value: float = Field(0.5, ge=0, le=1, description="fixed: positive when the probability is >= value.")
    level: float | None = Field(None, gt=0, le=1, description="sensitivity / specificity: the validation rate "
                                                              "the threshold must reach.")

    @model_validator(mode="after")
    def _level_fits_rule(self) -> "ThresholdConfig":
        needs_level = self.rule in ("sensitivity", "specificity")
        if needs_level and self.level is None:
            raise ValueError(f"rule {self.rule!r} needs a level, e.g. level: 0.9")
        if not needs_level and self.level is not None:
            raise ValueError(f"level is only used by the sensitivity and specificity rules, not {self.rule!r}")
        return self


class MetricsConfig(Strict):
    primary: str = "accuracy"
    report: list[str] = Field(default_factory=lambda: ["accuracy", "precision", "recall", "f1", "roc_auc"])
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for the 95% CI (0 = off).")
    confidence: float = Field(0.95, gt=0, lt=1)
    baselines: bool = Field(True, description="Also score majority-class and stratified-random predictors.")
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig, description=(
        "Decision threshold of binary / multilabel tasks, fitted on validation (recorded per job)."))


class ProfileConfig(Strict):
    """What each trained model's cost is measured as (never changes its metrics: not part of the protocol hash)."""

    cost: bool = Field(True, description="Count parameters and MACs (ptflops, aten backend) per model.")
    latency: LatencyConfig = Field(default_factory=LatencyConfig, description=(
        "Latency profiling of each trained model after evaluation (`enabled: true` to turn on; method in "
        "cxrbench/profiling/README.md)."))
    only: bool = Field(False, description=(
        "Profile-only suite: build every model (untrained, or its pretrained/weights), never train it, and "
        "profile it with `latency` (enabled or not); one `kind: profile` record per model."))


class ReferenceConfig(Strict):
    """A paper's reported figures, shown next to ours."""

    source: str
    note: str = ""
    models: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="model label -> metric -> value (fractions, not percent).")
    image_size: int | None = Field(None, ge=1, description=(
        "The paper's input size (px); default: the suite's input.image_size as written, before --set. "
        "Figures measured at another size are marked not comparable."))
    channels: int | None = Field(None, ge=1, description="The paper's input channels; default: the suite's, before --set.")
    num_classes: int | None = Field(None, ge=1, description="The paper's number of classes; default: the suite's, "
                                                            "before --set.")


class ExecutorConfig(Strict):
    """Where jobs run. It never changes results (not part of the protocol hash)."""

    name: str = Field("local", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="A registered executor (checked against the plugins): local: one job after "
                                  "another in this process; ray: each job is a Ray task (`pip install "
                                  "cxrbench[ray]`); or one a plugin registers.")
    address: str | None = Field(None, description="ray: cluster to join (auto, HOST:PORT, ray://...); "
                                "null starts a local Ray on this machine.")
    num_cpus: float = Field(1, gt=0, description="ray: CPUs reserved per job.")
    num_gpus: float = Field(0, ge=0, description="ray: GPUs reserved per job (fractions share a GPU).")
    memory_gb: float | None = Field(None, gt=0, description="ray: memory reserved per job (scheduling only).")
    retries: int = Field(0, ge=0, description="Times a failed job is run again before it is recorded as failed.")
    threads: int | None = Field(None, ge=1, description="ray: torch CPU threads per job; default: the driver's "
                                "torch.get_num_threads(), so CPU metrics equal a local run's.")
    options: dict[str, Any] = Field(default_factory=dict, description="Settings of a plugin's executor "
                                    "(read by that executor; the built-ins take none).")
    images: Literal["object_store", "shared_cache"] = Field(
        "object_store", description="ray: ship decoded images once through Ray's object store, or let each "
                                    "worker memory-map the image cache entry from a path every node shares.")


class ExternalTestConfig(Strict):
    """A dataset every trained model is also evaluated on (never trained or tuned on).

    Rules of ``label_map`` (external name -> suite class, null = drop the rows having it) are in
    :mod:`cxrbench.data.external`.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="Label of the leaderboard columns (ext:<name>); unique per suite.")
    dataset: DatasetConfig
    task: TaskType | None = Field(
        None, description="Task to load the external dataset as (default: the suite's task when the dataset "
                          "supports it, else the dataset's first task, e.g. chestxray14: multilabel).")
    classes: list[str] | None = Field(
        None, description="Class/label names to ask the external dataset for (default: its own full list).")
    split: Literal["test", "all"] = Field(
        "test", description="test = the dataset's official test rows (every row when it ships no official "
                            "split); all = every row.")
    label_map: dict[str, str | None] | None = Field(
        None, min_length=1,
        description="External class/label name -> suite class name; null drops those rows. Omitted: the "
                    "shared label space (cxrbench.data.label_space): a multilabel suite asks the dataset for "
                    "its own labels by their vocabulary names (a label the archive lacks is not evaluated); "
                    "a single-label suite needs the dataset's classes to be the suite's.")


class Suite(Strict):
    """A benchmark protocol."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    notice: str = Field("", description="Shown under every table of this suite (e.g. 'exploratory labels').")
    task: TaskConfig
    dataset: DatasetConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    augment: list[AugmentStep] = Field(default_factory=list)
    models: list[ModelEntry] = Field(min_length=1)
    train: TrainConfig = Field(default_factory=TrainConfig)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    profile: ProfileConfig = Field(default_factory=ProfileConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    reference: ReferenceConfig | None = None
    external_test: list[ExternalTestConfig] = Field(
        default_factory=list, description="External test sets: every trained model is also scored on each.")

    @field_validator("seeds", mode="before")
    @classmethod
    def _one_seed(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v

    @field_validator("executor", mode="before")
    @classmethod
    def _bare_executor(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v  # `executor: ray`

    @field_validator("models", mode="before")
    @classmethod
    def _bare_names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": m} if isinstance(m, str) else m for m in v]
        return v

    @model_validator(mode="after")
    def _unique_labels(self) -> "Suite":
        seen: set[str] = set()
        for m in self.models:
            if m.key in seen:
                raise ValueError(f"model label {m.key!r} appears twice; give one a distinct `label:`")
            seen.add(m.key)
        return self

    @model_validator(mode="after")
    def _unique_external_names(self) -> "Suite":
        names = [e.name for e in self.external_test]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"external_test names must be unique; {twice} appear more than once")
        return self

    def model_build_args(self, entry: ModelEntry) -> dict[str, Any]:
        """Keyword arguments of :func:`cxrbench.models.factory.build_model` for ``entry`` under this suite."""
        train = self.model_train(entry)
        return {"num_classes": len(self.task.classes), "in_chans": self.input.channels, "task": self.task.type,
                "pretrained": entry.pretrained, "image_size": self.input.image_size, "dropout": entry.dropout,
                "params": entry.params, "weights": entry.weights, "freeze": entry.freeze,
                "classes": tuple(self.task.classes), "zero_shot": train.epochs == 0, "head_init": train.head_init}

    def model_train(self, entry: ModelEntry) -> TrainConfig:
        """The suite's train config with ``entry.train`` deep-merged over it."""
        from cxrbench.suite.merge import deep_merge

        return TrainConfig.model_validate(deep_merge(self.train.model_dump(), entry.train))
