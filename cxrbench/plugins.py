"""Plugin discovery and the registry of models, datasets and metrics.

Built-in plugins (``cxrbench.builtins.*``) and third-party plugins found through the
``cxrbench`` entry-point group are registered with one :class:`pluggy.PluginManager`. Each
third-party plugin is imported inside its own guard: one that fails to import is remembered with
its error (``cxrbench plugins`` shows it) and breaks nothing else.
"""

from __future__ import annotations

import importlib
import logging
import traceback
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

import pluggy

from cxrbench import hookspecs
from cxrbench.errors import PluginError, UnknownNameError
from cxrbench.specs import DatasetSpec, MetricSpec, ModelSpec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cxrbench"
BUILTIN_PLUGINS = (
    "cxrbench.builtins.models",
    "cxrbench.builtins.datasets",
    "cxrbench.builtins.metrics",
    "cxrbench.builtins.latency",
)


@dataclass
class PluginInfo:
    """One plugin as ``cxrbench plugins`` reports it."""

    name: str
    module: str
    version: str
    distribution: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    builtin: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    return sorted(h.name for h in pm.get_hookcallers(plugin) or [])


def load_plugin_manager(extra_plugins: tuple[object, ...] = ()) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """Build a plugin manager with the built-ins, every entry-point plugin and ``extra_plugins``.

    Returns the manager and one :class:`PluginInfo` per plugin, including those that failed to
    load. A hook implementation whose name matches no hookspec raises :class:`PluginError`.
    """
    import cxrbench

    pm = _new_manager()
    infos: list[PluginInfo] = []
    for modname in BUILTIN_PLUGINS:
        mod = importlib.import_module(modname)
        pm.register(mod, name=modname)
        infos.append(PluginInfo(modname.rsplit(".", 1)[-1], modname, cxrbench.__version__, "cxrbench",
                                _hooks_of(pm, mod), builtin=True))

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        info = PluginInfo(ep.name, ep.value, version, dist)
        infos.append(info)
        if pm.has_plugin(ep.name):
            info.error = f"another plugin is already registered under the name {ep.name!r}"
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
            info.hooks = _hooks_of(pm, plugin)
        except Exception as exc:  # noqa: BLE001 - any import failure must be contained
            info.error = f"{type(exc).__name__}: {exc}"
            log.debug("plugin %s failed to load:\n%s", ep.name, traceback.format_exc())

    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", repr(plugin))
        pm.register(plugin, name=name)
        infos.append(PluginInfo(name, name, "-", "-", _hooks_of(pm, plugin)))

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{exc} (hook implementations must be named after a hook in cxrbench.hookspecs)") from exc
    return pm, infos


class Registry:
    """Every model, dataset and metric registered by the loaded plugins, by name."""

    def __init__(self, pm: pluggy.PluginManager, infos: list[PluginInfo]):
        self.pm = pm
        self.plugins = infos
        self.models: dict[str, ModelSpec] = self._collect("models", pm.hook.register_models)
        self.datasets: dict[str, DatasetSpec] = self._collect("datasets", pm.hook.register_datasets)
        self.metrics: dict[str, MetricSpec] = self._collect("metrics", pm.hook.register_metrics)

    def _collect(self, kind: str, hook: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for impl in hook.get_hookimpls():  # registration order: built-ins first
            plugin_name = self.pm.get_name(impl.plugin) or "?"
            try:
                specs = impl.function() or []
            except Exception as exc:  # noqa: BLE001
                info = self._info(plugin_name)
                msg = f"register_{kind} raised {type(exc).__name__}: {exc}"
                if info is not None:
                    info.error = msg
                    continue
                raise PluginError(f"plugin {plugin_name!r}: {msg}") from exc
            for spec in specs:
                spec = replace(spec, plugin=plugin_name)
                if spec.name in out:
                    raise PluginError(
                        f"{kind[:-1]} {spec.name!r} is registered twice: by plugin {out[spec.name].plugin!r} "
                        f"and by plugin {plugin_name!r}; uninstall one of them or rename the {kind[:-1]}"
                    )
                out[spec.name] = spec
        return out

    def _info(self, plugin_name: str) -> PluginInfo | None:
        return next((i for i in self.plugins if i.name == plugin_name or i.module == plugin_name), None)

    def model(self, name: str) -> ModelSpec:
        return _lookup("model", name, self.models)

    def dataset(self, name: str) -> DatasetSpec:
        return _lookup("dataset", name, self.datasets)

    def metric(self, name: str) -> MetricSpec:
        """A metric by name; ``base@level`` instantiates a parametric metric at that level."""
        if "@" in name and name not in self.metrics:
            base, _, level = name.partition("@")
            spec = _lookup("metric", base, self.metrics)
            if spec.with_param is None:
                raise UnknownNameError(f"metric {base!r} takes no parameter (got {name!r})")
            try:
                fn = spec.with_param(float(level))
            except ValueError as exc:
                raise UnknownNameError(f"metric {name!r}: bad level {level!r} ({exc})") from None
            return replace(spec, name=name, fn=fn, with_param=None)
        return _lookup("metric", name, self.metrics)


def _lookup(kind: str, name: str, table: dict[str, Any]) -> Any:
    try:
        return table[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown {kind} {name!r}{hint} (`cxrbench {kind}s` lists the {len(table)} registered)"
        ) from None


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    return Registry(*load_plugin_manager())


def reset_registry() -> None:
    """Forget the cached registry (tests that install or remove plugins call this)."""
    get_registry.cache_clear()
