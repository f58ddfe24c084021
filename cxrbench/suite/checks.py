"""Suite checks that need the plugin registry: names exist, model params fit, metrics fit the task."""

from __future__ import annotations

from pydantic import ValidationError

from cxrbench.errors import SuiteError, UnknownNameError
from cxrbench.plugins import Registry
from cxrbench.suite.schema import Suite, TrainConfig


def check_suite(suite: Suite, registry: Registry, source: str) -> None:
    """Raise :class:`SuiteError` listing every problem, each with its field path."""
    problems: list[str] = []

    def unknown(where: str, exc: UnknownNameError) -> None:
        problems.append(f"  {where}: {exc}")

    task = suite.task.type
    try:
        ds = registry.dataset(suite.dataset.name)
        if task not in ds.tasks:
            problems.append(f"  dataset.name: dataset {ds.name!r} supports tasks {list(ds.tasks)}, not {task!r}")
    except UnknownNameError as exc:
        unknown("dataset.name", exc)

    for i, entry in enumerate(suite.models):
        where = f"models[{i}]"
        try:
            spec = registry.model(entry.name)
        except UnknownNameError as exc:
            unknown(f"{where}.name", exc)
            continue
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
            TrainConfig.model_validate(suite.model_train(entry).model_dump())
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"  {where}.train.{loc}: {err['msg']}")

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

    if suite.reference is not None:
        labels = {m.key for m in suite.models}
        for model in suite.reference.models:
            if model not in labels:
                problems.append(f"  reference.models.{model}: no model with that label in the suite "
                                f"(labels: {sorted(labels)})")

    if problems:
        raise SuiteError(f"{source}: suite does not fit the installed plugins ({len(problems)} problem"
                         f"{'s' if len(problems) > 1 else ''})\n" + "\n".join(problems))
