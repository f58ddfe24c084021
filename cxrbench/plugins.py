"""Plugin discovery and the one registry of everything plugins provide.

Built-in plugins (``cxrbench.builtins.*``) and third-party plugins found through the ``cxrbench``
entry-point group are registered with one :class:`pluggy.PluginManager`. Each third-party plugin
is imported inside its own guard: one that fails to import is remembered with its error
(``cxrbench plugins`` shows it) and breaks nothing else.

:class:`Registry` collects every kind of spec (:data:`KINDS`) with one routine, one order
(registration order: built-ins, then entry points by name, then plugins given in code), one
duplicate-name policy (an error naming both plugins) and one error policy (a plugin whose
``register_*`` hook raises is marked failed and skipped). It is frozen once collected;
:meth:`Registry.portable` is the picklable view shipped to worker processes.
"""

from __future__ import annotations

import importlib
import logging
import traceback
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Iterable

import pluggy

from cxrbench import hookspecs
from cxrbench.errors import PluginError, UnknownNameError

if TYPE_CHECKING:  # pragma: no cover
    from cxrbench.specs import (DatasetSpec, ExecutorSpec, LatencyBackendSpec, MetricSpec, ModelNamespaceSpec,
                                ModelSpec)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cxrbench"
BUILTIN_PLUGINS = (
    "cxrbench.builtins.models",
    "cxrbench.builtins.datasets",
    "cxrbench.builtins.metrics",
    "cxrbench.builtins.latency",
    "cxrbench.builtins.executors",
)
KINDS: dict[str, tuple[str, str]] = {
    "models": ("register_models", "model"),
    "model_namespaces": ("register_model_namespaces", "model namespace"),
    "datasets": ("register_datasets", "dataset"),
    "metrics": ("register_metrics", "metric"),
    "latency_backends": ("register_latency_backends", "latency runtime"),
    "executors": ("register_executors", "executor"),
}
"""Registry table -> (the hook that fills it, what one entry is called in messages)."""


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


class FrozenTable(dict):
    """A name -> spec table that refuses changes after collection (and pickles as a plain copy)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("the registry is frozen after collection; register specs through a plugin hook")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return FrozenTable, (dict(self),)

    def __init__(self, items: Any = ()):
        dict.__init__(self, items)


class Registry:
    """Every model, dataset, metric, latency runtime and executor the loaded plugins registered.

    Tables are read-only mappings by name (``registry.models``, ...); lookups by name raise
    :class:`UnknownNameError` with close matches. ``hooks`` calls the lifecycle hooks (driver only).
    """

    models: FrozenTable
    model_namespaces: FrozenTable
    datasets: FrozenTable
    metrics: FrozenTable
    latency_backends: FrozenTable
    executors: FrozenTable

    def __init__(self, pm: pluggy.PluginManager | None, infos: Iterable[PluginInfo],
                 tables: dict[str, dict[str, Any]] | None = None):
        object.__setattr__(self, "_pm", pm)
        object.__setattr__(self, "plugins", list(infos))
        if tables is None:
            tables = {kind: self._collect(kind) for kind in KINDS}
            _check_aliases(tables["models"])
        for kind in KINDS:
            object.__setattr__(self, kind, FrozenTable(tables.get(kind, {})))
        object.__setattr__(self, "_resolved", {})  # namespaced model specs, resolved on first use

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"the registry is frozen (cannot set {name!r})")

    @property
    def pm(self) -> pluggy.PluginManager | None:
        """The plugin manager (``None`` in a portable view)."""
        return self._pm

    @property
    def hooks(self) -> Any:
        """``registry.hooks.on_run_start(...)``: the lifecycle hooks of every plugin."""
        if self._pm is None:
            raise PluginError("a portable registry view has no plugin hooks; lifecycle hooks run on the driver")
        return self._pm.hook

    def _collect(self, kind: str) -> dict[str, Any]:
        hook_name, noun = KINDS[kind]
        out: dict[str, Any] = {}
        hook = getattr(self._pm.hook, hook_name, None)
        for impl in hook.get_hookimpls() if hook is not None else ():  # registration order
            plugin_name = self._pm.get_name(impl.plugin) or "?"
            try:
                specs = impl.function() or []
            except Exception as exc:  # noqa: BLE001 - one plugin's bug must not hide the others
                info = self._info(plugin_name)
                msg = f"{hook_name} raised {type(exc).__name__}: {exc}"
                if info is None or info.builtin:
                    raise PluginError(f"plugin {plugin_name!r}: {msg}") from exc
                info.error = msg
                log.debug("plugin %s: %s\n%s", plugin_name, msg, traceback.format_exc())
                continue
            for spec in specs:
                spec = replace(spec, plugin=plugin_name)
                if spec.name in out:
                    raise PluginError(
                        f"{noun} {spec.name!r} is registered twice: by plugin {out[spec.name].plugin!r} "
                        f"and by plugin {plugin_name!r}; uninstall one of them or rename the {noun}")
                out[spec.name] = spec
        return out

    def _info(self, plugin_name: str) -> PluginInfo | None:
        return next((i for i in self.plugins if i.name == plugin_name or i.module == plugin_name), None)

    def get(self, kind: str, name: str) -> Any:
        """The spec ``name`` of table ``kind`` (a key of :data:`KINDS`)."""
        return _lookup(KINDS[kind][1], name, getattr(self, kind))

    def model(self, name: str) -> ModelSpec:
        """A registered model, or ``namespace:name`` resolved by its namespace on first use (cached)."""
        if name in self.models:
            return self.models[name]
        if name in self._resolved:
            return self._resolved[name]
        prefix, sep, rest = name.partition(":")
        if not sep or prefix not in self.model_namespaces:
            return self.get("models", name)
        if not rest:
            raise UnknownNameError(f"model {name!r}: name a model of the {prefix!r} namespace, e.g. "
                                   f"`cxrbench models --namespace {prefix}`")
        ns: ModelNamespaceSpec = self.model_namespaces[prefix]
        spec = replace(ns.resolve(rest), plugin=ns.plugin)
        self._resolved[name] = spec
        return spec

    def is_model(self, name: str) -> bool:
        """Whether ``name`` is a registered model or names one through a known namespace (nothing resolved)."""
        return name in self.models or name.partition(":")[0] in self.model_namespaces and ":" in name

    def dataset(self, name: str) -> DatasetSpec:
        return self.get("datasets", name)

    def latency_backend(self, name: str) -> LatencyBackendSpec:
        return self.get("latency_backends", name)

    def executor(self, name: str) -> ExecutorSpec:
        return self.get("executors", name)

    def metric(self, name: str) -> MetricSpec:
        """A metric by name; ``base@level`` instantiates a parametric metric at that level."""
        if "@" in name and name not in self.metrics:
            base, _, level = name.partition("@")
            spec = self.get("metrics", base)
            if spec.with_param is None:
                raise UnknownNameError(f"metric {base!r} takes no parameter (got {name!r})")
            try:
                fn = spec.with_param(float(level))
            except ValueError as exc:
                raise UnknownNameError(f"metric {name!r}: bad level {level!r} ({exc})") from None
            return replace(spec, name=name, fn=fn, with_param=None)
        return self.get("metrics", name)

    def higher_is_better(self, metric: str) -> bool:
        """The direction of ``metric`` from its :class:`~cxrbench.specs.MetricSpec`: ranking, arrows,
        best epoch, early stopping, paired tests and the report all ask here. A metric no installed
        plugin registers (an old run's) counts as higher-is-better."""
        try:
            return self.metric(metric).higher_is_better
        except UnknownNameError:
            return True

    def portable(self, **keep: Iterable[str] | None) -> "Registry":
        """A picklable view without the plugin manager, for worker processes.

        ``keep`` names, per table, the entries to ship (``models=["lenet"]``); a table not named is
        shipped whole, ``None`` or ``()`` ships none. Metric names may carry ``@level`` or ``val_``.
        """
        unknown = set(keep) - set(KINDS)
        if unknown:
            raise TypeError(f"unknown registry tables {sorted(unknown)} (known: {list(KINDS)})")
        tables: dict[str, dict[str, Any]] = {}
        for kind in KINDS:
            table = getattr(self, kind)
            if kind not in keep:
                tables[kind] = dict(table)
                continue
            wanted = keep[kind] or ()
            if kind == "models":
                tables[kind] = {n: self.model(n) for n in dict.fromkeys(wanted) if self.is_model(n)}
                continue
            if kind == "metrics":
                wanted = [n.removeprefix("val_").partition("@")[0] if n.removeprefix("val_") not in table
                          else n.removeprefix("val_") for n in wanted]
            tables[kind] = {n: table[n] for n in dict.fromkeys(wanted) if n in table}
        return Registry(None, self.plugins, tables)

    def __reduce__(self) -> tuple[Any, ...]:
        if self._pm is not None:
            raise TypeError("a Registry with its plugin manager cannot be pickled; ship registry.portable(...)")
        return Registry, (None, self.plugins, {kind: dict(getattr(self, kind)) for kind in KINDS})


def _check_aliases(models: dict[str, ModelSpec]) -> None:
    """Every ``alias_of`` names a registered model that is itself a distinct architecture."""
    for spec in models.values():
        if spec.alias_of is None:
            continue
        target = models.get(spec.alias_of)
        if target is None or target.alias_of is not None:
            why = "is not registered" if target is None else f"is itself an alias of {target.alias_of!r}"
            raise PluginError(f"plugin {spec.plugin!r}: model {spec.name!r} has alias_of={spec.alias_of!r}, "
                              f"which {why}; alias_of must name a registered distinct architecture")


def _lookup(kind: str, name: str, table: dict[str, Any]) -> Any:
    try:
        return table[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        listing = f": {', '.join(table)}" if len(table) <= 10 else ""
        where = f"`cxrbench {kind}s` lists the " if kind in ("model", "dataset", "metric") else ""
        raise UnknownNameError(f"unknown {kind} {name!r}{hint} ({where}{len(table)} registered{listing})"
        ) from None


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    return Registry(*load_plugin_manager())


def reset_registry() -> None:
    """Forget the cached registry (tests that install or remove plugins call this)."""
    get_registry.cache_clear()
