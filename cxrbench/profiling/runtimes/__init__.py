"""Latency backends (runtimes), registered through the ``register_latency_backends`` hook."""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any, Callable

from cxrbench.errors import PluginError, UnknownNameError
from cxrbench.specs import LatencyBackendSpec


def latency_backends(registry: Any = None) -> dict[str, LatencyBackendSpec]:
    """Every registered latency backend by name (``registry`` defaults to the process-wide one)."""
    if registry is None or getattr(registry, "pm", None) is None:  # Ray workers' portable registry has no pm
        from cxrbench.plugins import get_registry

        registry = get_registry()
    hook = registry.pm.hook.register_latency_backends
    out: dict[str, LatencyBackendSpec] = {}
    for impl in reversed(hook.get_hookimpls()):  # registration order
        plugin = registry.pm.get_name(impl.plugin) or "?"
        try:
            specs = impl.function() or []
        except Exception as exc:  # noqa: BLE001
            raise PluginError(f"plugin {plugin!r}: register_latency_backends raised "
                              f"{type(exc).__name__}: {exc}") from exc
        for spec in specs:
            spec = replace(spec, plugin=plugin)
            if spec.name in out:
                raise PluginError(f"latency backend {spec.name!r} is registered twice: by plugin "
                                  f"{out[spec.name].plugin!r} and by plugin {plugin!r}")
            out[spec.name] = spec
    return out


def backend(name: str, registry: Any = None) -> LatencyBackendSpec:
    """One backend by name; :class:`UnknownNameError` listing the registered ones."""
    table = latency_backends(registry)
    if name not in table:
        raise UnknownNameError(f"unknown latency runtime {name!r}; registered: {', '.join(table) or 'none'}")
    return table[name]


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
