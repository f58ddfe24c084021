"""The hooks a cxrbench plugin can implement.

A plugin is a module (found through the ``cxrbench`` entry-point group) with functions decorated
by :data:`hookimpl` whose names match the specifications below. The core registers its own
built-in models, datasets, metrics, latency runtimes and executors through these same hooks (see ``cxrbench/builtins``).

Registration hooks return lists of specs and are called once when the registry is built.
Lifecycle hooks are notifications: their return values are ignored, and an exception in one is
reported without stopping the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:  # pragma: no cover
    from cxrbench.results.records import JobRecord, RunInfo
    from cxrbench.specs import DatasetSpec, MetricSpec, ModelSpec
    from cxrbench.specs import ExecutorSpec, LatencyBackendSpec, ModelNamespaceSpec

PROJECT = "cxrbench"
hookspec = HookspecMarker(PROJECT)
hookimpl = HookimplMarker(PROJECT)


@hookspec
def register_models() -> list[ModelSpec]:
    """Return the :class:`~cxrbench.specs.ModelSpec` objects this plugin provides.

    Names are global: two plugins registering the same name is an error naming both.
    """


@hookspec
def register_model_namespaces() -> list[ModelNamespaceSpec]:
    """Return the :class:`~cxrbench.specs.ModelNamespaceSpec` objects this plugin provides.

    A suite names their models ``<namespace>:<name>``; each is resolved to a
    :class:`~cxrbench.specs.ModelSpec` on first use, so a namespace of a thousand architectures
    costs nothing until one is named.
    """


@hookspec
def register_datasets() -> list[DatasetSpec]:
    """Return the :class:`~cxrbench.specs.DatasetSpec` objects this plugin provides."""


@hookspec
def register_metrics() -> list[MetricSpec]:
    """Return the :class:`~cxrbench.specs.MetricSpec` objects this plugin provides."""


@hookspec
def register_latency_backends() -> list[LatencyBackendSpec]:
    """Return the :class:`~cxrbench.specs.LatencyBackendSpec` runtimes this plugin provides.

    The latency profiler (``cxrbench profile``, a suite's ``profile.latency``) times a model on
    each runtime named in ``runtimes``; names are global, like model names.
    """


@hookspec
def register_executors() -> list[ExecutorSpec]:
    """Return the :class:`~cxrbench.specs.ExecutorSpec` executors this plugin provides.

    A suite picks one with ``executor.name`` (built in: ``local``, ``ray``); the executor receives
    the planned jobs and yields each finished record, the way pytest-xdist replaces pytest's loop.
    """


@hookspec
def on_run_start(run: RunInfo) -> None:
    """Called once before the first job of a run, after the suite is resolved and the data split.

    ``run`` carries the run id, folder, resolved suite and the planned jobs.
    """


@hookspec
def on_epoch_end(run: RunInfo, job: str, epoch: int, logs: dict[str, Any]) -> None:
    """Called after each training epoch of job ``job`` (``"model/fold/seed"``).

    ``logs`` holds ``epoch``, ``train_loss``, ``val_loss``, the validation metrics and ``lr``.
    """


@hookspec
def on_model_result(run: RunInfo, record: JobRecord) -> None:
    """Called when one job (model x fold x seed) has finished and its record is on disk.

    ``record.status`` is ``"ok"`` or ``"failed"`` (then ``record.error`` says why).
    """


@hookspec
def on_run_end(run: RunInfo, records: list[JobRecord], status: str) -> None:
    """Called once when a run stops: ``status`` is ``"complete"``, ``"failed"`` or ``"interrupted"``."""
