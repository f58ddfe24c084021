"""Suite checks that need the plugin registry: names exist, model params fit, metrics fit the task."""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from cxrbench.errors import SuiteError, UnknownNameError
from cxrbench.plugins import Registry
from cxrbench.specs import DatasetSpec, ModelSpec
from cxrbench.suite.schema import ExternalTestConfig, ModelEntry, Suite, TrainConfig


def dataset_problems(spec: DatasetSpec, task: str, options: Mapping[str, Any] | BaseModel,
                     variant: str | None, where: str = "dataset") -> list[str]:
    """What is wrong with asking ``spec`` for ``task`` with these options and variant, each line
    naming its field (``dataset.options.n_samples: ... (dataset 'synthetic_cxr')``)."""
    if task not in spec.tasks:
        return [f"{where}.name: dataset {spec.name!r} supports tasks {list(spec.tasks)}, not {task!r}"]
    problems = []
    try:
        spec.parse_options(options)
    except ValidationError as exc:
        known = ", ".join(spec.options_schema.model_fields) or "none"
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            hint = f"; known options: {known}" if err["type"] == "extra_forbidden" else ""
            problems.append(f"{where}.options{'.' + loc if loc else ''}: {err['msg']} (dataset {spec.name!r}{hint})")
    try:
        spec.pick_variant(task, variant)
    except ValueError as exc:
        problems.append(f"{where}.variant: {exc}")
    return problems


def external_task(cfg: ExternalTestConfig, suite_task: str, tasks: tuple[str, ...]) -> str:
    """The task an external test set is loaded as: its own ``task``, else the suite's when the
    dataset supports it, else the dataset's first."""
    if cfg.task is not None:
        if cfg.task not in tasks:
            raise SuiteError(f"task: dataset {cfg.dataset.name!r} supports tasks {list(tasks)}, not {cfg.task!r}")
        return cfg.task
    return suite_task if suite_task in tasks else tasks[0]


def model_input_problems(suite: Suite, entry: ModelEntry, spec: ModelSpec, epochs: int, where: str) -> list[str]:
    """A pretrained model fed another channel count or size than its weights need (``ModelSpec.input``),
    and ``train.epochs: 0`` for a model that would be evaluated with a fresh head."""
    problems = []
    need = spec.input
    if need is not None and (entry.pretrained or entry.weights):
        for field, have, want in (("channels", suite.input.channels, need.channels),
                                  ("image_size", suite.input.image_size, need.image_size)):
            if want is not None and have != want:
                problems.append(f"input.{field}: model {entry.name!r} ({where}) takes {want} with its weights "
                                f"({need.name or 'its own preprocessing'}), the suite has {have}: set "
                                f"input.{field}: {want}, or train it from scratch (pretrained: false)")
    if epochs == 0 and not suite.profile.only and not entry.weights and not (spec.head_labels and entry.pretrained):
        how = "pretrained: true (its head mapped onto the suite's classes)" if spec.head_labels else \
            "`weights:` (a checkpoint with this suite's head)"
        problems.append(f"{where}.train.epochs: 0 evaluates without training, but model {entry.name!r} would be "
                        f"scored with a freshly initialised head; give it {how}, or train it (epochs >= 1)")
    return problems


def check_suite(suite: Suite, registry: Registry, source: str) -> None:
    """Raise :class:`SuiteError` listing every problem, each with its field path."""
    problems: list[str] = []

    def unknown(where: str, exc: UnknownNameError) -> None:
        problems.append(f"  {where}: {exc}")

    task = suite.task.type
    try:
        ds = registry.dataset(suite.dataset.name)
        problems += [f"  {p}" for p in dataset_problems(ds, task, suite.dataset.options, suite.dataset.variant)]
    except UnknownNameError as exc:
        unknown("dataset.name", exc)
    for i, ext in enumerate(suite.external_test):
        where = f"external_test[{i}]"
        try:
            ext_spec = registry.dataset(ext.dataset.name)
            ext_task = external_task(ext, task, tuple(ext_spec.tasks))
        except UnknownNameError as exc:
            unknown(f"{where}.dataset.name", exc)
            continue
        except SuiteError as exc:
            problems.append(f"  {where}.{exc}")
            continue
        problems += [f"  {p}" for p in dataset_problems(ext_spec, ext_task, ext.dataset.options,
                                                        ext.dataset.variant, f"{where}.dataset")]

    for i, entry in enumerate(suite.models):
        where = f"models[{i}]"
        try:
            spec = registry.model(entry.name)
        except UnknownNameError as exc:
            unknown(f"{where}.name", exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a namespace that cannot resolve a name is the name's problem
            problems.append(f"  {where}.name: model {entry.name!r} cannot be resolved: {type(exc).__name__}: {exc}")
            continue
        if spec.fixed_input_size and spec.fixed_input_size != suite.input.image_size:
            problems.append(f"  {where}.name: model {entry.name!r} takes only {spec.fixed_input_size} px input, "
                            f"the suite's input.image_size is {suite.input.image_size} (set input.image_size="
                            f"{spec.fixed_input_size}, or pick a model that resizes)")
        try:
            spec.params_schema.model_validate(entry.params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"  {where}.params.{loc}: {err['msg']} (model {entry.name!r})")
        if entry.pretrained and not spec.supports_pretrained:
            problems.append(f"  {where}.pretrained: model {entry.name!r} has no upstream pretrained weights")
        if entry.freeze.startswith("stages:") and int(entry.freeze.split(":")[1]) > len(spec.stages):
            problems.append(f"  {where}.freeze: model {entry.name!r} has {len(spec.stages)} stages, "
                            f"cannot freeze {entry.freeze.split(':')[1]}")
        try:
            train = TrainConfig.model_validate(suite.model_train(entry).model_dump())
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"  {where}.train.{loc}: {err['msg']}")
        else:
            problems += [f"  {p}" for p in model_input_problems(suite, entry, spec, train.epochs, where)]

    metric_names = [suite.metrics.primary, *suite.metrics.report]
    for j, name in enumerate(metric_names):
        where = "metrics.primary" if j == 0 else f"metrics.report[{j - 1}]"
        try:
            metric = registry.metric(name)
        except UnknownNameError as exc:
            unknown(where, exc)
            continue
        if task not in metric.tasks:
            problems.append(f"  {where}: metric {name!r} is not defined for {task} tasks")
        if metric.with_param is not None:
            problems.append(f"  {where}: metric {name!r} needs a level, e.g. {name}@0.9")

    monitor = suite.train.early_stopping.monitor
    if monitor and monitor != "val_loss":
        try:
            registry.metric(monitor.removeprefix("val_"))
        except UnknownNameError:
            problems.append(f"  train.early_stopping.monitor: {monitor!r} is neither val_loss nor a metric name")

    try:
        registry.executor(suite.executor.name)
    except UnknownNameError as exc:
        unknown("executor.name", exc)

    latency = suite.profile.latency
    if latency.enabled or suite.profile.only:
        for i, runtime in enumerate(latency.runtimes):
            try:
                registry.latency_backend(runtime)
            except UnknownNameError as exc:
                unknown(f"profile.latency.runtimes[{i}]", exc)

    from cxrbench.suite.threshold_checks import threshold_problems

    problems += [f"  {p}" for p in threshold_problems(suite)]

    # A reference block never blocks a run: a model it names that the suite does not run gets no
    # comparison row, a model it does not name gets none (leaderboard.table.Board.comparison).

    if problems:
        raise SuiteError(f"{source}: suite does not fit the installed plugins ({len(problems)} problem"
                         f"{'s' if len(problems) > 1 else ''})\n" + "\n".join(problems))
