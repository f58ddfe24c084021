"""Conformance checks for plugin authors: does a model or dataset spec behave as the core expects?

In a plugin's test suite::

    from cxrbench.testing import check_dataset_spec, check_model_spec, check_plugin
    import my_plugin

    def test_conforms(tmp_path):
        check_plugin(my_plugin)          # every ModelSpec from my_plugin.register_models()
        check_dataset_spec(my_plugin.MY_DATASET, root=make_tiny_copy(tmp_path), options={"x": 1})

Each check raises :class:`AssertionError` with a message naming the spec and what is wrong.
:func:`one_thread` is an autouse fixture a plugin's ``conftest.py`` imports (``from cxrbench.testing
import one_thread``) to run its tests on one intra-op thread.
About 440 lines because the model and the dataset checks stay in one module, the one plugin authors import.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence, get_args

import numpy as np
import pluggy
import pytest
import torch
import torch.nn as nn
from pydantic import BaseModel, ValidationError

from cxrbench import hookspecs
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.specs import BuildRequest, DatasetSpec, ModelSpec, SampleTable, TaskType

BATCH = 2


def request_for(spec: ModelSpec, **kwargs: Any) -> BuildRequest:
    """The :class:`BuildRequest` the core hands ``spec``'s builder (params validated by its schema,
    224 px unless ``image_size`` is given): what a plugin's own tests should build with."""
    from cxrbench.models.factory import build_request

    return build_request(spec, **({"image_size": 224} | kwargs))


def _require(cond: bool, spec: ModelSpec, msg: str) -> None:
    if not cond:
        raise AssertionError(f"model spec {spec.name!r}: {msg}")


def _task(num_classes: int) -> str:
    return "binary" if num_classes == 2 else "multiclass" if num_classes == 3 else "multilabel"


def _check_metadata(spec: ModelSpec) -> BaseModel:
    _require(isinstance(spec.name, str) and spec.name.strip() == spec.name and bool(spec.name), spec,
             "name must be a non-empty string without surrounding spaces")
    _require(callable(spec.build), spec, "build must be callable (BuildRequest -> nn.Module)")
    for field in ("family", "paper", "classifier"):
        value = getattr(spec, field)
        _require(isinstance(value, str) and bool(value.strip()), spec, f"{field} must be a non-empty string")
    _require(isinstance(spec.default_input_size, int) and spec.default_input_size > 0, spec,
             f"default_input_size must be a positive int, got {spec.default_input_size!r}")
    _require(isinstance(spec.stages, tuple) and all(isinstance(s, str) and s for s in spec.stages), spec,
             f"stages must be a tuple of dotted module paths, got {spec.stages!r}")
    if spec.supports_pretrained:
        _require(bool(spec.weights_license.strip()) and not spec.weights_license.startswith("none"), spec,
                 "supports_pretrained is set: weights_license must say under which license the weights are")
    _require(isinstance(spec.params_schema, type) and issubclass(spec.params_schema, BaseModel), spec,
             "params_schema must be a pydantic BaseModel subclass")
    try:
        return spec.params_schema()
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"model spec {spec.name!r}: params_schema must be instantiable with defaults "
                             f"(every field needs a default): {exc}") from exc


def _module(spec: ModelSpec, model: nn.Module, path: str, what: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise AssertionError(f"model spec {spec.name!r}: {what} {path!r} is not a module of the built model "
                             f"(top-level modules: {', '.join(names)})") from None


def _check_paths(spec: ModelSpec, model: nn.Module, req: BuildRequest) -> None:
    head = _module(spec, model, spec.classifier, "classifier")
    _require(any(True for _ in head.parameters()), spec, f"classifier {spec.classifier!r} has no parameters")
    if spec.first_conv:
        conv = _module(spec, model, spec.first_conv, "first_conv")
        n_in = getattr(conv, "in_channels", req.in_chans)
        _require(n_in == req.in_chans, spec,
                 f"first_conv {spec.first_conv!r} takes {n_in} channels but in_chans={req.in_chans} was requested")
    for stage in spec.stages:
        _module(spec, model, stage, "stage")
    if spec.cam_layer:
        _module(spec, model, spec.cam_layer, "cam_layer")


def _build(spec: ModelSpec, req: BuildRequest, device: torch.device) -> nn.Module:
    try:
        model = spec.build(req)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"model spec {spec.name!r}: build failed for num_classes={req.num_classes}, "
                             f"in_chans={req.in_chans}: {type(exc).__name__}: {exc}") from exc
    _require(isinstance(model, nn.Module), spec, f"build returned {type(model).__name__}, not an nn.Module")
    return model.to(device)


def _forward(spec: ModelSpec, model: nn.Module, x: torch.Tensor, num_classes: int, where: str) -> torch.Tensor:
    try:
        out = model(x)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"model spec {spec.name!r}: forward failed ({where}, input {tuple(x.shape)}): "
                             f"{type(exc).__name__}: {exc}") from exc
    _require(isinstance(out, torch.Tensor), spec, f"forward must return a tensor of logits, got {type(out).__name__}")
    _require(tuple(out.shape) == (x.shape[0], num_classes), spec,
             f"output shape {tuple(out.shape)} for input {tuple(x.shape)}; expected {(x.shape[0], num_classes)} ({where})")
    _require(bool(torch.isfinite(out).all()), spec, f"non-finite logits ({where})")
    return out


def _check_train_step(spec: ModelSpec, model: nn.Module, req: BuildRequest, x: torch.Tensor) -> None:
    where = f"num_classes={req.num_classes}, in_chans={req.in_chans}"
    model.train()
    seen: list[Any] = []
    hook = model.get_submodule(spec.classifier).register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        out = _forward(spec, model, x, req.num_classes, "train mode, " + where)
    finally:
        hook.remove()
    head_shape = tuple(seen[0].shape) if seen and isinstance(seen[0], torch.Tensor) else None
    _require(head_shape is not None and len(head_shape) > 1 and head_shape[1] == req.num_classes, spec,
             f"classifier {spec.classifier!r} must be the layer producing the {req.num_classes} logits; "
             f"its output has shape {head_shape}")
    out.float().logsumexp(dim=1).mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    _require(not no_grad, spec, f"parameters that get no gradient (unused in forward?): {', '.join(no_grad[:5])}")
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
    _require(not bad, spec, f"non-finite gradients in {', '.join(bad[:5])} ({where})")

    model.eval()
    with torch.no_grad():
        a = _forward(spec, model, x, req.num_classes, "eval mode, " + where)
        b = model(x)
    _require(torch.equal(a, b), spec, f"eval mode is not deterministic: two forwards of the same input differ ({where})")


def _check_freeze(spec: ModelSpec, req: BuildRequest, device: torch.device, x: torch.Tensor) -> None:
    from cxrbench.models.factory import apply_frozen_bn_eval

    model = _create(spec, req, freeze="backbone").to(device)
    heads = tuple(h + "." for h in spec.heads)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {n for n, _ in model.named_parameters() if n.startswith(heads)}
    _require(trainable == expected, spec, "freeze 'backbone' must leave exactly the classifier trainable; "
             f"trainable: {sorted(trainable)[:5]}, classifier: {sorted(expected)[:5]}")
    if spec.stages:
        model = _create(spec, req, freeze=f"stages:{len(spec.stages)}").to(device)
        model.train()
        apply_frozen_bn_eval(model)
        _forward(spec, model, x, req.num_classes, f"freeze stages:{len(spec.stages)}").float().sum().backward()
        _require(all(p.grad is None for p in model.parameters() if not p.requires_grad), spec,
                 "frozen parameters received gradients")


def _create(spec: ModelSpec, req: BuildRequest, **kwargs: Any) -> nn.Module:
    from cxrbench.models.factory import create_model

    try:
        return create_model(spec, req, **kwargs)
    except Exception as exc:  # noqa: BLE001
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise AssertionError(f"model spec {spec.name!r}: create_model({args}) failed for "
                             f"num_classes={req.num_classes}, in_chans={req.in_chans}: "
                             f"{type(exc).__name__}: {exc}") from exc


def _check_weights_round_trip(spec: ModelSpec, params: BaseModel, num_classes: Sequence[int],
                              in_chans: Sequence[int], image_size: int, device: torch.device) -> None:
    n_a = num_classes[0]
    n_b = next((n for n in num_classes if n != n_a), n_a + 1)
    c = 3 if 3 in in_chans else in_chans[0]
    req = BuildRequest(num_classes=n_a, in_chans=c, task=_task(n_a), image_size=image_size, params=params)  # type: ignore[arg-type]
    src = _build(spec, req, torch.device("cpu")).eval()
    src_state = {k: v.detach().clone() for k, v in src.state_dict().items()}
    x = torch.randn(BATCH, c, image_size, image_size)
    head = tuple(h + "." for h in spec.heads)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "weights.pth")
        torch.save(src.state_dict(), path)

        same = _create(spec, req, weights=path).eval()
        with torch.no_grad():
            _require(torch.allclose(same(x), src(x)), spec, "reloading its own state dict changes the outputs")

        other = _create(spec, replace(req, num_classes=n_b, task=_task(n_b)), weights=path)  # type: ignore[arg-type]
        state = other.state_dict()
        differ = [k for k, v in src_state.items() if not k.startswith(head) and not torch.equal(state[k], v)]
        _require(not differ, spec, f"weights loaded with a new head ({n_a} -> {n_b} classes) changed backbone "
                 f"values: {', '.join(differ[:5])}")
        _forward(spec, other.to(device).eval(), x.to(device), n_b, "weights loaded with a new head")

        if spec.first_conv and 1 in in_chans and c == 3:
            grey = _create(spec, replace(req, in_chans=1), weights=path)
            key = f"{spec.first_conv}.weight"
            _require(torch.allclose(grey.state_dict()[key], src_state[key].sum(dim=1, keepdim=True)), spec,
                     "loading RGB weights into a 1-channel model must sum the first conv over its channels")


def check_model_spec(spec: ModelSpec, num_classes: Sequence[int] = (2, 3, 14), in_chans: Sequence[int] = (1, 3),
                     image_size: int = 64, device: str | torch.device = "cpu") -> None:
    """Assert that ``spec`` is complete and its models behave as the core expects.

    Checks the metadata (family, paper, input size, params schema with defaults), then for every
    ``num_classes`` x ``in_chans``: the build, that classifier / first_conv / stages / cam_layer
    are modules of the model, logits of shape ``(B, K)``, finite gradients reaching every
    trainable parameter, deterministic eval mode. Then ``freeze: backbone`` (only the classifier
    trains) and ``stages:N``, and a weights round trip through a file with a different head. A spec
    with ``fixed_input_size`` is checked at that size.
    """
    device = torch.device(device)
    image_size = spec.fixed_input_size or image_size  # a fixed-size model is checked at its size
    params = _check_metadata(spec)
    generator_state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny batches: more threads only add contention on a busy machine
    try:
        for n in num_classes:
            for c in in_chans:
                req = BuildRequest(num_classes=n, in_chans=c, task=_task(n), image_size=image_size,  # type: ignore[arg-type]
                                   params=params)
                model = _build(spec, req, device)
                _check_paths(spec, model, req)
                x = torch.randn(BATCH, c, image_size, image_size, device=device)
                _check_train_step(spec, model, req, x)
        n, c = num_classes[0], in_chans[-1]
        req = BuildRequest(num_classes=n, in_chans=c, task=_task(n), image_size=image_size, params=params)  # type: ignore[arg-type]
        _check_freeze(spec, req, device, torch.randn(BATCH, c, image_size, image_size, device=device))
        _check_weights_round_trip(spec, params, num_classes, in_chans, image_size, device)
    finally:
        torch.random.set_rng_state(generator_state)
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def one_thread():
    """Each test on one intra-op thread (on a shared 2-core machine OpenMP spinning makes small models
    up to 10x slower with 2 threads than with 1); the previous count is restored after the test."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def check_plugin(module_or_plugin: Any, **kwargs: Any) -> list[str]:
    """Run :func:`check_model_spec` on every spec the plugin's ``register_models`` hook returns.

    Also checks that the plugin's hooks are valid cxrbench hooks. ``kwargs`` go to
    :func:`check_model_spec`. Returns the names of the checked models.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    try:
        pm.register(module_or_plugin)
        pm.check_pending()
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise AssertionError(f"plugin {module_or_plugin!r} is not a valid cxrbench plugin: {exc}") from exc
    impls = [i for i in pm.hook.register_models.get_hookimpls() if i.plugin is module_or_plugin]
    if not impls:
        raise AssertionError(f"plugin {module_or_plugin!r} has no register_models hook decorated with "
                             "@cxrbench.hookimpl")
    specs = impls[0].function()
    if not isinstance(specs, list) or not all(isinstance(s, ModelSpec) for s in specs):
        raise AssertionError(f"register_models of {module_or_plugin!r} must return a list of ModelSpec")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AssertionError(f"register_models of {module_or_plugin!r} returns duplicate names: {dupes}")
    for spec in specs:
        check_model_spec(spec, **kwargs)
    return names


def failing_model_plugin(name: str = "exploding_net", message: str = "this model always fails to build") -> Any:
    """A plugin object registering one model, ``name``, whose build always raises ``RuntimeError(message)``.

    For tests of failure handling: pass it as ``load_plugin_manager(extra_plugins=(plugin,))``; a
    suite listing ``name`` must record that job as failed and finish the others.
    """

    class FailingModelPlugin:
        @hookspecs.hookimpl
        def register_models(self) -> list[ModelSpec]:
            def explode(request: BuildRequest) -> nn.Module:
                raise RuntimeError(message)

            return [ModelSpec(name=name, build=explode, family="test", paper="none")]

    return FailingModelPlugin()


# ----------------------------------------------------------------------------- datasets

SPLIT_NAMES = frozenset({"train", "val", "test"})


def _ds_require(cond: bool, spec: DatasetSpec, msg: str) -> None:
    if not cond:
        raise AssertionError(f"dataset spec {spec.name!r}: {msg}")


def _check_dataset_metadata(spec: DatasetSpec, options: Mapping[str, Any]) -> None:
    _ds_require(isinstance(spec.name, str) and bool(spec.name) and spec.name.strip() == spec.name, spec,
                "name must be a non-empty string without surrounding spaces")
    _ds_require(callable(spec.load), spec, "load must be callable (DataRequest -> SampleTable)")
    _ds_require(isinstance(spec.description, str) and bool(spec.description.strip()), spec,
                "description must be a non-empty string")
    _ds_require(bool(spec.tasks) and set(spec.tasks) <= set(get_args(TaskType)) and
                len(set(spec.tasks)) == len(spec.tasks), spec,
                f"tasks must name binary / multiclass / multilabel, each once, got {spec.tasks!r}")
    _ds_require(spec.default_folder is None or (bool(spec.default_folder) and "/" not in spec.default_folder
                                                and "\\" not in spec.default_folder), spec,
                f"default_folder must be one folder name under $CXRBENCH_DATA, got {spec.default_folder!r}")
    names = spec.variant_names
    _ds_require(len(set(names)) == len(names), spec, f"variant names must be unique, got {names}")
    for v in spec.variants:
        _ds_require(bool(v.tasks) and set(v.tasks) <= set(spec.tasks), spec,  # type: ignore[union-attr]
                    f"variant {v.name!r} serves tasks {v.tasks} outside the spec's {spec.tasks}")  # type: ignore[union-attr]
    if names:
        served = {t for v in spec.variants for t in v.tasks}  # type: ignore[union-attr]
        _ds_require(served >= set(spec.tasks), spec, f"no variant serves task(s) {sorted(set(spec.tasks) - served)}")
    schema = spec.options_schema
    _ds_require(isinstance(schema, type) and issubclass(schema, BaseModel), spec,
                "options_schema must be a pydantic BaseModel subclass")
    try:
        schema.model_validate({**options, "__not_an_option__": 1})
    except ValidationError:
        pass
    else:
        raise AssertionError(f"dataset spec {spec.name!r}: options_schema accepts unknown keys; "
                             "set model_config = ConfigDict(extra='forbid')")


def _check_table(spec: DatasetSpec, table: SampleTable, task: str, classes: Sequence[str]) -> None:
    """The table invariants (its type and per-row ``extras`` are checked by the core's load_dataset)."""
    n = len(table.ids)
    _ds_require(n > 0 and all(isinstance(i, str) and i for i in table.ids), spec, "ids must be non-empty strings")
    dupes = sorted({i for i, c in Counter(table.ids).items() if c > 1})
    _ds_require(not dupes, spec, f"ids must be unique; repeated: {dupes[:5]}")
    names = table.class_names
    _ds_require(isinstance(names, list) and bool(names) and all(isinstance(c, str) for c in names)
                and len(set(names)) == len(names), spec, f"class_names must be a list of unique strings: {names!r}")
    if classes:
        _ds_require(list(names) == list(classes), spec, f"class_names {names} must be the requested {list(classes)}")
    y, k = table.labels, len(names)
    _ds_require(isinstance(y, np.ndarray) and np.issubdtype(y.dtype, np.integer), spec,
                f"labels must be an integer numpy array, got {type(y).__name__} {getattr(y, 'dtype', '')}")
    if task == "multilabel":
        _ds_require(y.shape == (n, k) and bool(np.isin(y, (0, 1)).all()), spec,
                    f"multilabel labels must be 0/1 of shape ({n}, {k}), got {y.shape}")
        for field_name in ("label_mask", "label_uncertain"):
            m = getattr(table, field_name)
            _ds_require(m is None or (isinstance(m, np.ndarray) and m.dtype == bool and m.shape == (n, k)), spec,
                        f"{field_name} must be None or a bool array of shape ({n}, {k}), got "
                        f"{getattr(m, 'dtype', type(m).__name__)} {getattr(m, 'shape', '')}")
    else:
        _ds_require(y.shape == (n,) and (y.min() >= 0) and (y.max() < k), spec,
                    f"{task} labels must be class indices 0..{k - 1} of shape ({n},), got {y.shape} "
                    f"in {y.min()}..{y.max()}")
        _ds_require(task != "binary" or k == 2, spec, f"a binary table needs 2 class names, got {names}")
    if table.patient_ids is not None:
        _ds_require(len(table.patient_ids) == n and all(isinstance(p, str) and p for p in table.patient_ids), spec,
                    f"patient_ids must be {n} non-empty strings")
    if table.official_split is not None:
        bad = sorted(set(table.official_split) - SPLIT_NAMES)
        _ds_require(len(table.official_split) == n and not bad, spec,
                    f"official_split must be {n} values of train / val / test (bad: {bad[:5]})")
    _ds_require(all(isinstance(s, (tuple, list)) and len(s) == 2 and all(isinstance(x, str) for x in s)
                    for s in table.skipped), spec, "skipped must be (row, reason) pairs of strings")
    _ds_require(all(isinstance(s, str) for s in table.notes), spec, "notes must be strings")
    _ds_require(isinstance(table.fingerprint, str), spec, "fingerprint must be a string")
    for i in sorted({0, n // 2, n - 1}):
        try:
            img = table.load_image(i, 32)
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"dataset spec {spec.name!r}: load_image({i}, 32) raised "
                                 f"{type(exc).__name__}: {exc} (row {table.ids[i]!r})") from exc
        _ds_require(isinstance(img, np.ndarray) and img.dtype == np.uint8 and
                    (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)), spec,
                    f"load_image({i}, 32) must return uint8 (H, W) or (H, W, 3), got "
                    f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")


def _load(spec: DatasetSpec, *args: Any) -> SampleTable:
    try:
        return load_dataset(spec, *args)
    except DatasetError as exc:
        raise AssertionError(f"dataset spec {spec.name!r}: loading failed: {exc}") from exc
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"dataset spec {spec.name!r}: load raised {type(exc).__name__}, not DatasetError: "
                             f"{exc}") from exc


def check_dataset_spec(spec: DatasetSpec, root: str | os.PathLike | None = None,
                       options: Mapping[str, Any] | None = None, *, task: str | None = None,
                       classes: Sequence[str] = (), variant: str | None = None) -> SampleTable:
    """Assert that ``spec`` is complete and loads, through the core, a table that keeps the contract.

    Checks the metadata (tasks, variants, default folder, an ``options_schema`` that rejects
    unknown keys), loads ``root`` with ``options`` for ``task`` (default: the spec's first) the
    way a suite does, then the table: unique string ids, labels of the task's shape and dtype
    matching ``class_names`` (the requested ``classes`` when given), patient ids and official
    split of one entry per row, per-row ``extras``, ``load_image`` returning uint8 ``(H, W)`` or
    ``(H, W, 3)``; that loading twice gives the same rows and fingerprint; and that a root that
    does not exist raises :class:`~cxrbench.errors.DatasetError`. Returns the table.
    """
    options = dict(options or {})
    _check_dataset_metadata(spec, options)
    task = task or spec.tasks[0]
    table = _load(spec, task, classes, root, options, variant)
    _check_table(spec, table, task, classes)
    again = _load(spec, task, classes, root, options, variant)
    _ds_require(again.ids == table.ids and again.fingerprint == table.fingerprint, spec,
                "loading the same files twice must give the same ids and fingerprint")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            load_dataset(spec, task, classes, Path(tmp) / "does-not-exist", options, variant)
        except DatasetError:
            pass
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"dataset spec {spec.name!r}: a missing root raised {type(exc).__name__}, "
                                 f"not DatasetError: {exc}") from exc
        else:
            raise AssertionError(f"dataset spec {spec.name!r}: a root that does not exist loaded without a "
                                 "DatasetError")
    return table
