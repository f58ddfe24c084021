"""The one registry: every kind collected by one routine, one order, one duplicate and error policy,
frozen after collection, with a picklable view for workers."""

from __future__ import annotations

import pickle

import pytest

from cxrbench import hookimpl
from cxrbench.errors import PluginError, UnknownNameError
from cxrbench.plugins import KINDS, Registry, get_registry, load_plugin_manager
from cxrbench.specs import ExecutorSpec, LatencyBackendSpec, MetricSpec


def registry_with(*plugins) -> Registry:
    return Registry(*load_plugin_manager(extra_plugins=plugins))


def test_every_kind_is_a_table_in_registration_order():
    reg = get_registry()
    assert set(KINDS) == {"models", "model_namespaces", "datasets", "metrics", "latency_backends", "executors"}
    # built-ins in the order their hooks return them (the latency table used to be reversed)
    assert list(reg.latency_backends)[:3] == ["torch", "onnxruntime", "int8"]
    assert list(reg.executors)[:2] == ["local", "ray"]
    assert reg.executor("local").plugin == "cxrbench.builtins.executors"


class _Later:
    @staticmethod
    @hookimpl
    def register_latency_backends():
        return [LatencyBackendSpec(name="zz_runtime", prepare=lambda c: None, load=lambda c: None)]

    @staticmethod
    @hookimpl
    def register_executors():
        return [ExecutorSpec(name="zz_exec", create=lambda config: None)]


def test_a_plugin_comes_after_the_builtins_in_every_table():
    reg = registry_with(_Later)
    assert list(reg.latency_backends)[-1] == "zz_runtime" and list(reg.executors)[-1] == "zz_exec"
    assert reg.latency_backend("zz_runtime").plugin == "_Later"


@pytest.mark.parametrize("hook, spec", [
    ("register_executors", ExecutorSpec(name="local", create=lambda c: None)),
    ("register_latency_backends", LatencyBackendSpec(name="torch", prepare=lambda c: None, load=lambda c: None)),
    ("register_metrics", MetricSpec(name="accuracy", fn=lambda p: 0.0)),
])
def test_one_duplicate_policy_for_every_kind(hook, spec):
    plugin = type("dup_plugin", (), {hook: staticmethod(hookimpl(lambda: [spec]))})
    plugin.__name__ = "dup_plugin"
    noun = {"register_executors": "executor", "register_latency_backends": "latency runtime",
            "register_metrics": "metric"}[hook]
    with pytest.raises(PluginError, match=rf"{noun} '{spec.name}' is registered twice: by plugin "
                                          rf"'cxrbench.builtins.\w+' and by plugin 'dup_plugin'"):
        registry_with(plugin)


def test_one_error_policy_a_raising_hook_marks_its_plugin_failed():
    class Broken:
        @staticmethod
        @hookimpl
        def register_executors():
            raise RuntimeError("boom")

    pm, infos = load_plugin_manager()
    infos.append(type(infos[0])("broken_plugin", "broken_plugin", "1", "x"))
    pm.register(Broken, name="broken_plugin")  # as an entry point would be
    reg = Registry(pm, infos)
    assert "local" in reg.executors
    assert next(i for i in reg.plugins if i.name == "broken_plugin").error == \
        "register_executors raised RuntimeError: boom"


def test_frozen_after_collection():
    reg = get_registry()
    with pytest.raises(TypeError, match="frozen"):
        reg.models["x"] = reg.models["lenet"]
    with pytest.raises(TypeError, match="frozen"):
        reg.metrics.pop("accuracy")
    with pytest.raises(TypeError, match="frozen"):
        reg.models = {}


def test_portable_view_pickles_and_keeps_only_what_is_named():
    reg = get_registry()
    with pytest.raises(TypeError, match="portable"):
        pickle.dumps(reg)
    view = reg.portable(models=["lenet"], metrics=["val_accuracy", "loss"], datasets=())
    back = pickle.loads(pickle.dumps(view))
    assert list(back.models) == ["lenet"] and back.datasets == {}
    assert set(back.metrics) == {"accuracy", "loss"}
    levelled = reg.portable(metrics=["sensitivity_at_specificity@0.9"])  # the base metric travels
    assert levelled.metric("sensitivity_at_specificity@0.9").name == "sensitivity_at_specificity@0.9"
    assert set(back.latency_backends) == set(reg.latency_backends)  # not named: shipped whole
    assert back.pm is None
    with pytest.raises(PluginError, match="lifecycle hooks run on the driver"):
        back.hooks.on_run_start
    with pytest.raises(TypeError, match="frozen"):
        back.models["y"] = None


def test_unknown_names_list_close_matches_for_every_kind():
    reg = get_registry()
    with pytest.raises(UnknownNameError, match=r"unknown executor 'rey'; did you mean ray\?.*local, ray"):
        reg.executor("rey")
    with pytest.raises(UnknownNameError, match=r"unknown latency runtime 'onnx'.*torch, onnxruntime, int8"):
        reg.latency_backend("onnx")
    with pytest.raises(UnknownNameError, match=r"unknown model 'lenett'; did you mean lenet"):
        reg.model("lenett")
