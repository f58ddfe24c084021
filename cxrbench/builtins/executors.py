"""Built-in executors (``local``, ``ray``), registered through the same hook a third-party plugin uses."""

from __future__ import annotations

import importlib.util
from typing import Any

from cxrbench.hookspecs import hookimpl
from cxrbench.specs import ExecutorSpec


def _local(config: Any) -> Any:
    from cxrbench.engine.executors.local import LocalExecutor

    return LocalExecutor(config)


def _ray(config: Any) -> Any:
    from cxrbench.engine.executors.ray import RayExecutor

    return RayExecutor(config)


def _ray_check() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "executor 'ray' needs Ray, which is not installed; pip install cxrbench[ray]"
    return None


@hookimpl
def register_executors() -> list[ExecutorSpec]:
    return [
        ExecutorSpec("local", _local, "one job after another in this process (live progress bars)"),
        ExecutorSpec("ray", _ray, "each job a Ray task with declared resources (cluster or this machine)",
                     check=_ray_check),
    ]
