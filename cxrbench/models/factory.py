"""Turning a :class:`ModelSpec` into a ready-to-train module: local weights, freezing, params.

Freezing rules (``freeze`` argument of :func:`create_model`):

- ``"none"``: everything trains.
- ``"backbone"``: only the ``spec.classifier`` module (and ``spec.extra_heads``) trains.
- ``"stages:N"``: freezes everything registered (in module order) before the start of
  ``spec.stages[N]`` -- the stem, the first N stages and whatever lies between them (e.g.
  ResNet's ``bn1`` after ``conv1``). ``N == len(spec.stages)`` freezes through the end of the
  last stage, or through the end of its enclosing container when that is not the model itself
  (e.g. all of VGG's or DenseNet's ``features``). ``stages:0`` freezes nothing; the classifier is
  never frozen.

Frozen BatchNorm layers must not update their running statistics: the engine calls
:func:`apply_frozen_bn_eval` right after every ``model.train()``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from pydantic import BaseModel, ValidationError

from cxrbench.errors import SuiteError, WeightsError
from cxrbench.models.adapt import heads_from_file, init_heads, load_adapted
from cxrbench.specs import BuildRequest, ModelSpec

log = logging.getLogger("cxrbench.models")

_STAGES = re.compile(r"^stages:(\d+)$")
_FROZEN_ATTR = "_cxrbench_frozen"


def create_model(spec: ModelSpec, request: BuildRequest, weights: str | None = None,
                 freeze: str = "none", head_init: str = "model") -> nn.Module:
    """Build ``spec`` for ``request``, load a local ``weights`` file, initialise fresh heads the
    protocol's way (``head_init``: ``model`` keeps the builder's, ``normal`` see
    :func:`cxrbench.models.adapt.init_heads`) and apply ``freeze``.

    With ``weights`` the model is built without upstream weights, then the file is loaded with the
    classifier re-initialised when its shape differs and the first conv adapted to ``in_chans``
    (see :func:`cxrbench.models.adapt.load_adapted`). Raises :class:`WeightsError` for a file that
    does not fit and :class:`SuiteError` for an unknown freeze policy.
    """
    policy = parse_freeze(freeze, spec)  # validate before the (possibly slow) build
    if weights is not None:
        if request.pretrained:
            log.info("%s: local weights %s take precedence over pretrained=True", spec.name, weights)
        request = replace(request, pretrained=False)
    model = spec.build(request)
    loaded_heads: list[str] = []
    if weights is not None:
        state = read_state_dict(weights)
        loaded_heads = heads_from_file(model, state, spec.heads)
        adapted = load_adapted(model, state, classifier=spec.heads, first_conv=spec.first_conv,
                               source=str(weights))
        log.info("%s: loaded weights from %s (%s)", spec.name, weights,
                 "; ".join(adapted) if adapted else "no adaptation needed")
    if head_init == "normal" and not request.zero_shot:  # a head the weights file or zero-shot supplies stays
        init_heads(model, spec.heads, skip=loaded_heads)
    apply_freeze(model, spec, policy)
    return model


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth``/``.pt``/``.bin`` (a state dict, or a dict holding one under
    ``state_dict``/``model``) or ``.safetensors`` file, on the CPU."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device="cpu")
        elif p.suffix in (".pth", ".pt", ".bin"):
            obj = torch.load(p, map_location="cpu", weights_only=True)
        else:
            raise WeightsError(f"weights file {p}: unsupported extension {p.suffix!r} "
                               "(use .pth, .pt or .safetensors)")
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
        raise WeightsError(f"weights file {p} cannot be read: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"weights file {p} does not hold a state dict (a mapping of names to tensors)")
    return obj


def parse_freeze(freeze: str, spec: ModelSpec) -> str | int:
    """``"none"``, ``"backbone"`` or the N of ``"stages:N"``; :class:`SuiteError` otherwise."""
    if freeze in ("none", "backbone"):
        return freeze
    m = _STAGES.match(freeze or "")
    if m is None:
        raise SuiteError(f"model {spec.name!r}: unknown freeze policy {freeze!r} "
                         "(use none, backbone or stages:N)")
    n = int(m.group(1))
    if n > len(spec.stages):
        raise SuiteError(f"model {spec.name!r}: freeze {freeze!r} asks for {n} stages but the model "
                         f"lists {len(spec.stages)}: {', '.join(spec.stages) or 'none'}")
    return n


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _stage_frozen_modules(model: nn.Module, spec: ModelSpec, n: int) -> set[str]:
    """Names of the modules (in ``named_modules`` order) that ``stages:n`` freezes."""
    order = [name for name, _ in model.named_modules()]
    index = {name: i for i, name in enumerate(order)}
    for s in spec.stages:
        if s not in index:
            raise SuiteError(f"model {spec.name!r}: stage {s!r} is not a module of the built model")
    if n == 0:
        return set()
    if n < len(spec.stages):
        stop = index[spec.stages[n]]
    else:
        last = spec.stages[-1]
        container = _parent(last) or last
        prefix = container + "."
        stop = max(i for i, name in enumerate(order) if name == container or name.startswith(prefix)) + 1
    return set(order[:stop])


def apply_freeze(model: nn.Module, spec: ModelSpec, freeze: str | int) -> None:
    """Set ``requires_grad`` per the freeze policy (see the module docstring) and mark frozen BN layers."""
    policy = parse_freeze(freeze, spec) if isinstance(freeze, str) else freeze
    if policy == "none":
        return
    try:
        model.get_submodule(spec.classifier)
    except AttributeError as exc:
        raise SuiteError(f"model {spec.name!r}: classifier {spec.classifier!r} is not a module of the model") from exc
    heads = spec.heads
    if policy == "backbone":
        frozen = {name for name, _ in model.named_modules()}
    else:
        frozen = _stage_frozen_modules(model, spec, int(policy))
    frozen = {n for n in frozen if n not in heads and not n.startswith(tuple(h + "." for h in heads))}
    for name, module in model.named_modules():
        if name not in frozen:
            continue
        for p in module.parameters(recurse=False):
            p.requires_grad_(False)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            setattr(module, _FROZEN_ATTR, True)


def apply_frozen_bn_eval(model: nn.Module) -> nn.Module:
    """Put frozen BatchNorm layers back in eval mode; call it after every ``model.train()``.

    A BN layer counts as frozen when :func:`apply_freeze` froze it or all its affine parameters
    have ``requires_grad=False``. Returns ``model``.
    """
    for module in model.modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        params = list(module.parameters(recurse=False))
        if getattr(module, _FROZEN_ATTR, False) or (params and not any(p.requires_grad for p in params)):
            module.eval()
    return model


def build_request(spec: ModelSpec, *, num_classes: int, in_chans: int = 3, task: str = "multiclass",
                  pretrained: bool = False, image_size: int | None = None, dropout: float | None = None,
                  params: dict[str, Any] | BaseModel | None = None, classes: tuple[str, ...] = (),
                  zero_shot: bool = False) -> BuildRequest:
    """The one way to make a :class:`BuildRequest`: ``params`` validated by the spec's schema.

    Every path that builds a model (suite jobs, ``cxrbench profile``, probes, report, latency)
    goes through here, so a builder can always read ``req.params.<field>``.
    """
    if not isinstance(params, spec.params_schema):
        params = validate_params(spec, params.model_dump() if isinstance(params, BaseModel) else params)
    return BuildRequest(num_classes=num_classes, in_chans=in_chans, task=task, pretrained=pretrained,  # type: ignore[arg-type]
                        image_size=image_size or spec.default_input_size, dropout=dropout, params=params,
                        classes=tuple(classes), zero_shot=zero_shot)


def build_model(spec: ModelSpec, *, weights: str | None = None, freeze: str = "none", head_init: str = "model",
                **request: Any) -> nn.Module:
    """:func:`build_request` then :func:`create_model`: the model with params validated, ``weights``
    loaded and ``freeze`` applied (``request`` are :func:`build_request`'s keyword arguments)."""
    return create_model(spec, build_request(spec, **request), weights=weights, freeze=freeze, head_init=head_init)


def validate_params(spec: ModelSpec, raw: dict[str, Any] | None) -> BaseModel:
    """``raw`` validated by ``spec.params_schema``; :class:`SuiteError` naming the model and field."""
    try:
        return spec.params_schema.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or '(params)'}: {err['msg']}" for err in exc.errors()
        )
        raise SuiteError(f"model {spec.name!r}: invalid params: {problems}") from None
