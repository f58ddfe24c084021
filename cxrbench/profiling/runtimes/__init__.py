"""Latency backends (runtimes), registered through the ``register_latency_backends`` hook and
collected by the one registry (``registry.latency_backends``); the built-ins live in this package."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from cxrbench.errors import PluginError


def qualified_name(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a module-level function, checked to resolve back to ``fn``."""
    ref = f"{fn.__module__}:{fn.__qualname__}"
    if resolve(ref) is not fn:
        raise PluginError(f"latency backend load function {ref} must be a module-level function "
                          "(the timing subprocess imports it by name)")
    return ref


def resolve(ref: str) -> Callable[..., Any]:
    """The function named by ``module:qualname``."""
    module, _, qual = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    return obj
