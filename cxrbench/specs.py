"""What plugins register: model, dataset, metric, latency-runtime and executor specifications.

A plugin returns lists of these from the ``register_*`` hooks (see :mod:`cxrbench.hookspecs`). They are plain dataclasses so a
plugin author needs nothing but this module to describe what they add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

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
    notes: str = ""
    plugin: str = ""
    """Filled in by the registry: the plugin that registered this spec."""


@dataclass
class SampleTable:
    """A dataset as a dataset plugin hands it to the core.

    One row per image. ``labels`` is ``(N,)`` integer class indices for binary/multiclass or
    ``(N, K)`` 0/1 for multilabel. ``load_image(i, size)`` returns a uint8 array ``(H, W)`` or
    ``(H, W, 3)``, ideally already close to ``size`` (the core resizes to exactly ``size``).
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
    """Optional per-row metadata, each value one entry per row. ``extras["source"]`` (hospital,
    scanner or archive of each image) is what ``cxrbench probe``'s source probe reads."""

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class DataRequest:
    """What a suite asks of a dataset."""

    task: TaskType
    classes: tuple[str, ...]
    root: str | None
    options: dict[str, Any]
    subset: str | None = None
    """Optional task variant understood by the dataset (e.g. kermany's ``binary`` / ``subtype``)."""


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset a suite can name. ``load`` raises :class:`cxrbench.errors.DatasetError` on bad data."""

    name: str
    load: Callable[[DataRequest], SampleTable]
    description: str
    tasks: tuple[TaskType, ...]
    synthetic: bool = False
    source: str = ""
    """Where to get the data (a public URL or citation)."""
    layout: str = ""
    """The expected on-disk layout, shown when the data is missing."""
    plugin: str = ""


@dataclass(frozen=True)
class Predictions:
    """One model's predictions on one split: what every metric is computed from.

    ``y_true`` is ``(N,)`` class indices or ``(N, K)`` multi-hot; ``y_prob`` is ``(N, K)``
    probabilities (softmax rows or per-label sigmoids); ``y_pred`` is ``(N,)`` predicted indices or
    ``(N, K)`` 0/1; ``positive`` is the positive class index for binary tasks.
    """

    y_true: np.ndarray
    y_prob: np.ndarray
    y_pred: np.ndarray
    task: TaskType
    class_names: tuple[str, ...]
    positive: int = 1
    loss: float | None = None

    def subset(self, idx: np.ndarray) -> "Predictions":
        """The same predictions restricted to rows ``idx`` (used by the bootstrap)."""
        return Predictions(self.y_true[idx], self.y_prob[idx], self.y_pred[idx], self.task,
                           self.class_names, self.positive, None)


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
