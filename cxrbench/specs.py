"""What plugins register: model, dataset, metric, latency-runtime and executor specifications.

A plugin returns lists of these from the ``register_*`` hooks (see :mod:`cxrbench.hookspecs`). They are plain dataclasses so a
plugin author needs nothing but this module to describe what they add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

TaskType = Literal["binary", "multiclass", "multilabel"]
FreezePolicy = str  # "none" | "backbone" | "stages:N" (validated by the suite schema)


class NoParams(BaseModel):
    """Params schema for models that take no extra keyword arguments."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class BuildRequest:
    """Everything a model builder is given. ``params`` is already validated by the spec's schema."""

    num_classes: int
    in_chans: int = 3
    task: TaskType = "multiclass"
    pretrained: bool = False
    image_size: int = 224
    dropout: float | None = None
    params: BaseModel = field(default_factory=NoParams)
    classes: tuple[str, ...] = ()
    """The suite's class names in label order (empty when built outside a suite)."""
    zero_shot: bool = False
    """The suite trains 0 epochs: a builder declaring ``ModelSpec.head_labels`` keeps its pretrained
    head, mapped onto ``classes`` (:func:`cxrbench.data.label_space.head_map`), instead of a fresh one."""


@dataclass(frozen=True)
class ModelInput:
    """The input a model's weights were trained on: the one place a model declares its preprocessing.

    ``mean``/``std`` are per channel in [0, 1] units, as ``input.normalization`` (the model sees
    ``(x / 255 - mean) / std``; RGB values serve a 1-channel suite by their average). ``required``:
    the weights need this intensity mapping whatever the suite says (TorchXRayVision's [-1024, 1024]);
    otherwise they are the model's preferred statistics (timm's ``pretrained_cfg``, torchvision's
    weights' transforms), used when the suite asks for ``input.normalization: model``.
    ``channels``/``image_size`` are what its pretrained weights need (a suite with other values is
    refused before any work when the model is pretrained or given ``weights:``). None = the suite's
    setting. ``name`` is how run records name the mapping.
    """

    channels: int | None = None
    image_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    name: str = ""
    required: bool = True

    def stats(self, channels: int) -> tuple[list[float], list[float]] | None:
        """``(mean, std)`` for ``channels`` input channels (one value repeated), or None when not declared."""
        if self.mean is None or self.std is None:
            return None
        pick = lambda v: list(v) if len(v) == channels else [float(v[0])] * channels  # noqa: E731
        return pick(self.mean), pick(self.std)


@dataclass(frozen=True)
class ModelSpec:
    """A model a suite can name.

    ``build`` returns an ``nn.Module`` mapping ``(B, in_chans, H, W)`` to logits ``(B, num_classes)``
    for every task type (the engine applies softmax or sigmoid). When ``pretrained`` is set the
    builder loads upstream weights itself; local weight files, freezing and head/first-conv
    adaptation are done by the core using ``classifier``, ``first_conv`` and ``stages``.
    """

    name: str
    build: Callable[[BuildRequest], "nn.Module"]
    family: str
    paper: str
    default_input_size: int = 224
    params_schema: type[BaseModel] = NoParams
    classifier: str = "fc"
    """Dotted module path of the final classification layer (replaced/re-initialised on head change)."""
    first_conv: str | None = None
    """Dotted module path of the first convolution (adapted when channel counts differ)."""
    stages: tuple[str, ...] = ()
    """Dotted module paths of the backbone stages, input to output (for ``freeze: stages:N``)."""
    cam_layer: str | None = None
    """Dotted module path of the layer Grad-CAM should look at."""
    weights_license: str = "none (random init)"
    supports_pretrained: bool = False
    input: ModelInput | None = None
    """The preprocessing the model's weights need or prefer (channels, size, intensity mapping); None = the
    suite's (``input.normalization: model`` then means ImageNet's statistics)."""
    head_labels: tuple[str, ...] = ()
    """The pretrained head's outputs in order, in the vocabulary of :mod:`cxrbench.data.label_space`
    (``""`` for an output the weights never trained). Non-empty: the builder maps that head onto a
    suite's classes when ``BuildRequest.zero_shot`` (``train.epochs: 0``) instead of a fresh head."""
    notes: str = ""
    alias_of: str | None = None
    """The registered model whose network this one builds (same architecture, a paper's protocol or name
    for it, e.g. ``resnet18_finetune`` -> ``resnet18``); None for a distinct architecture."""
    plugin: str = ""
    """Filled in by the registry: the plugin that registered this spec."""
    fixed_input_size: int | None = None
    """The only input size the network takes (e.g. a ViT whose builder cannot resize its position
    embedding); the suite check refuses any other ``input.image_size`` before any work."""
    extra_heads: tuple[str, ...] = ()
    """Further classification layers besides ``classifier`` (a distilled model's ``head_dist``): re-initialised
    with it on a head change and trained with it under ``freeze: backbone``."""

    @property
    def heads(self) -> tuple[str, ...]:
        """``classifier`` and the ``extra_heads``."""
        return (self.classifier, *self.extra_heads)

    @property
    def architecture(self) -> str:
        """The network this spec builds: ``alias_of`` when set, else its own name."""
        return self.alias_of or self.name


@dataclass(frozen=True)
class ModelNamespaceSpec:
    """A family of models named ``<namespace>:<name>`` and resolved on first use (``timm:convnext_tiny``).

    ``names()`` lists what the namespace offers without building anything (rows with at least
    ``name``, ``pretrained``); ``resolve(name)`` returns the :class:`ModelSpec` of one entry (its
    ``name`` is the full ``namespace:name``) or raises :class:`cxrbench.errors.UnknownNameError`.
    Both must be picklable callables, like model builders.
    """

    name: str
    resolve: Callable[[str], ModelSpec]
    names: Callable[[], list[dict[str, Any]]]
    description: str = ""
    plugin: str = ""


class NoOptions(BaseModel):
    """Options schema for datasets that take no ``dataset.options``."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class SampleTable:
    """A dataset as a dataset plugin hands it to the core.

    One row per image. ``labels`` is ``(N,)`` integer class indices for binary/multiclass or
    ``(N, K)`` 0/1 for multilabel, in the order of ``class_names``. ``load_image(i, size)`` returns
    a uint8 array ``(H, W)`` or ``(H, W, 3)``, ideally already close to ``size`` (the core resizes
    to exactly ``size``). Every field after ``extras`` describes the table as a whole.
    """

    ids: list[str]
    labels: np.ndarray
    class_names: list[str]
    load_image: Callable[[int, int], np.ndarray]
    patient_ids: list[str] | None = None
    official_split: list[str] | None = None
    """Per-row 'train' / 'val' / 'test' when the dataset ships an official split."""
    synthetic: bool = False
    fingerprint: str = ""
    """Changes whenever the underlying files change (used as a cache key)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Per-row metadata only: each value is a list or 1-D array with one entry per row.
    ``extras["source"]`` (hospital, scanner or archive of each image) is what ``cxrbench probe``'s
    source probe reads; ``extras["view"]`` is the projection (PA, AP, lateral)."""
    root: str | None = None
    """The folder the image files live in (ids are relative to it); part of the cache slot."""
    label_file: str | None = None
    """The CSV the rows were read from (the source probe looks per-image columns up in it)."""
    archive: str | None = None
    """One file holding every image when there are no image files (e.g. MedMNIST's ``.npz``)."""
    image_shape: tuple[int, ...] | None = None
    """The shape every image shares, when known without decoding (``describe`` shows it)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(row, reason) of rows the dataset left out (e.g. with ``allow_missing``); run.json lists them."""
    notes: list[str] = field(default_factory=list)
    """Facts worth telling the user about the table (``cxrbench datasets describe`` prints them)."""
    missing: list[str] = field(default_factory=list)
    """Folders the dataset's layout needs but its root lacks (e.g. ``/data/chest_xray/train/``): the
    table holds what is there, ``datasets describe`` shows it and lists these, a run refuses."""
    label_mask: np.ndarray | None = None
    """Multilabel only: ``(N, K)`` bool, False where that row's label is not annotated (a class the
    archive lacks, a blank, an uncertain label under ``uncertain: ignore``). Masked entries count in
    neither the loss nor the metrics. None = every label known. See :mod:`cxrbench.data.label_space`."""
    label_uncertain: np.ndarray | None = None
    """Multilabel only, optional: ``(N, K)`` bool, True where the archive marks the label *uncertain*
    (CheXpert's -1), whatever the loader's uncertainty policy made of it. ``describe`` counts these
    apart; training and metrics read only ``labels`` and ``label_mask``."""

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class DataRequest:
    """What the core asks of a dataset's ``load``: everything already validated and resolved."""

    task: TaskType
    classes: tuple[str, ...]
    """The suite's class names in label order; empty = the dataset's own default list."""
    root: Path | None
    """``dataset.root`` resolved by the core (:func:`cxrbench.data.loading.resolve_root`): ``~`` and
    ``$VARS`` expanded, absolute; ``$CXRBENCH_DATA/<default_folder>`` when the suite leaves it null.
    None only for a dataset without ``default_folder`` whose suite gives no root."""
    options: BaseModel = field(default_factory=NoOptions)
    """``dataset.options`` as an instance of the spec's ``options_schema``."""
    variant: str | None = None
    """The ``dataset.variant`` (one of the spec's ``variants``, the task's default when the suite
    gives none); None for a dataset without variants."""


@dataclass(frozen=True)
class DatasetVariant:
    """A value ``dataset.variant`` may take, and the task types it serves."""

    name: str
    tasks: tuple[TaskType, ...]
    description: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset a suite can name. ``load`` raises :class:`cxrbench.errors.DatasetError` on bad data.

    The core validates ``dataset.options`` against ``options_schema`` and ``dataset.variant``
    against ``variants`` (at ``cxrbench validate``, before any work) and resolves the root, so
    ``load`` receives a :class:`DataRequest` it can trust.
    """

    name: str
    load: Callable[[DataRequest], SampleTable]
    description: str
    tasks: tuple[TaskType, ...]
    synthetic: bool = False
    source: str = ""
    """Where to get the data (a public URL or citation)."""
    layout: str = ""
    """The expected on-disk layout, shown when the data is missing."""
    options_schema: type[BaseModel] = NoOptions
    """Pydantic model of ``dataset.options`` (use ``extra="forbid"`` so typos are errors)."""
    variants: tuple[DatasetVariant | str, ...] = ()
    """Allowed ``dataset.variant`` values; a plain string serves every task of ``tasks``. The
    default for a task is the first variant serving it. Empty: the dataset has no variants."""
    default_folder: str | None = None
    """Folder under ``$CXRBENCH_DATA`` used when ``dataset.root`` is null; None: the dataset reads
    no folder by default (its root stays None unless the suite gives one)."""
    fallback_root: str | None = None
    """Root used when ``dataset.root`` is null and ``$CXRBENCH_DATA`` is unset (e.g. ``~/.medmnist``)."""
    root_must_exist: bool = True
    """False when ``load`` may create its root (e.g. to download into it)."""
    plugin: str = ""

    def __post_init__(self) -> None:
        variants = tuple(v if isinstance(v, DatasetVariant) else DatasetVariant(v, tuple(self.tasks))
                         for v in self.variants)
        object.__setattr__(self, "variants", variants)

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]  # type: ignore[union-attr]

    def parse_options(self, options: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        """``options`` as an ``options_schema`` instance (raises pydantic's ``ValidationError``)."""
        if isinstance(options, self.options_schema):
            return options
        return self.options_schema.model_validate(dict(options or {}))

    def pick_variant(self, task: str, variant: str | None) -> str | None:
        """The variant to load for ``task`` (the default when ``variant`` is None); raises ``ValueError``."""
        variants: tuple[DatasetVariant, ...] = self.variants  # type: ignore[assignment]
        if not variants:
            if variant is not None:
                raise ValueError(f"dataset {self.name!r} has no variants (got {variant!r})")
            return None
        if variant is None:
            for v in variants:
                if task in v.tasks:
                    return v.name
            raise ValueError(f"no variant of dataset {self.name!r} serves a {task} task "
                             f"(variants: {self.variant_names})")
        chosen = next((v for v in variants if v.name == variant), None)
        if chosen is None:
            raise ValueError(f"unknown variant {variant!r} of dataset {self.name!r}; choose one of "
                             f"{self.variant_names}")
        if task not in chosen.tasks:
            kinds = " or ".join(chosen.tasks)
            raise ValueError(f"variant {variant!r} is a {kinds} task, but the suite's task is {task!r}")
        return chosen.name


@dataclass(frozen=True)
class Predictions:
    """One model's predictions on one split: what every metric is computed from.

    ``y_true`` is ``(N,)`` class indices or ``(N, K)`` multi-hot; ``y_prob`` is ``(N, K)``
    probabilities (softmax rows or per-label sigmoids); ``y_pred`` is ``(N,)`` predicted indices or
    ``(N, K)`` 0/1; ``positive`` is the positive class index for binary tasks. ``mask`` (multilabel
    only) is ``(N, K)`` bool, False where that row's label is not annotated: every metric of a label
    uses its unmasked rows only (``y_true`` there is a placeholder 0). None = every label known.
    """

    y_true: np.ndarray
    y_prob: np.ndarray
    y_pred: np.ndarray
    task: TaskType
    class_names: tuple[str, ...]
    positive: int = 1
    loss: float | None = None
    mask: np.ndarray | None = None

    def subset(self, idx: np.ndarray) -> "Predictions":
        """The same predictions restricted to rows ``idx`` (used by the bootstrap)."""
        return Predictions(self.y_true[idx], self.y_prob[idx], self.y_pred[idx], self.task,
                           self.class_names, self.positive, None,
                           None if self.mask is None else self.mask[idx])


@dataclass(frozen=True)
class MetricSpec:
    """A scalar metric: ``fn(predictions) -> float`` (``nan`` when undefined, e.g. AUC of one class)."""

    name: str
    fn: Callable[[Predictions], float]
    higher_is_better: bool = True
    tasks: tuple[TaskType, ...] = ("binary", "multiclass", "multilabel")
    description: str = ""
    bootstrappable: bool = True
    """False for metrics that are not a function of the rows alone (e.g. average loss)."""
    with_param: Callable[[float], Callable[[Predictions], float]] | None = None
    """For a parametric metric: ``with_param(level) -> fn``; suites name it ``<name>@<level>``
    (e.g. ``sensitivity_at_specificity@0.9``)."""
    plugin: str = ""


@dataclass(frozen=True)
class LatencyBackendSpec:
    """An inference runtime the latency profiler can time models on (``register_latency_backends``).

    ``prepare(ExportContext) -> Prepared`` runs in the parent process: it turns the eval-mode model
    into what the runtime loads (e.g. an ``.onnx`` file) and must raise
    ``cxrbench.profiling.runtimes.base.VerificationError`` when the converted model's outputs
    differ from torch's. ``load(LoadContext) -> Loaded`` runs in the fresh timing subprocess with
    the thread count already set; it must be a module-level function (the worker imports it by its
    qualified name). ``check()`` returns ``None`` when the runtime is usable, else a message saying
    how to install it. The context and result types live in ``cxrbench.profiling.runtimes.base``.
    """

    name: str
    prepare: Callable[[Any], Any]
    load: Callable[[Any], Any]
    description: str = ""
    check: Callable[[], str | None] | None = None
    devices: tuple[str, ...] = ("cpu",)
    """Devices ``load`` supports (``cpu``, ``cuda``); others fall back to the CPU."""
    plugin: str = ""


@dataclass(frozen=True)
class ExecutorSpec:
    """Where a run's jobs execute (``register_executors``); a suite names it in ``executor.name``.

    ``create(config)`` gets the suite's validated ``executor:`` block
    (:class:`cxrbench.suite.schema.ExecutorConfig`) and returns an executor: an object with
    ``describe() -> dict`` (settings, written to run.json) and ``run(jobs, ctx)``, a generator
    yielding ``(job, record)`` as each job finishes, for every job handed to it.
    ``ctx`` (:class:`cxrbench.engine.executors.base.RunContext`) is what every job of the run
    shares, and runs one job in this process with ``ctx.attempt(job)`` (its kind executed,
    artefacts saved, failures retried and turned into a ``failed`` record); the driver writes
    the records and calls the lifecycle hooks. An optional ``stats`` dict on the executor is
    added to run.json. ``check()`` returns ``None`` when usable, else how to install what is
    missing (called before any work).
    """

    name: str
    create: Callable[[Any], Any]
    description: str = ""
    check: Callable[[], str | None] | None = None
    plugin: str = ""


def names(specs: Sequence[Any]) -> list[str]:
    """Names of a list of specs, in order."""
    return [s.name for s in specs]
