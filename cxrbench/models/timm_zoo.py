"""``timm:<name>`` and ``hf-hub:<org>/<repo>``: any timm architecture as a :class:`ModelSpec`.

A spec is resolved from timm's pretrained config (``classifier``, ``first_conv``, ``mean``/``std``,
``fixed_input_size``) and the model's ``feature_info`` (``stages``, the Grad-CAM layer), read from
a copy built on the meta device (no memory, no init cost). Builders are picklable partials.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field

from cxrbench.errors import UnknownNameError, WeightsError
from cxrbench.specs import BuildRequest, ModelInput, ModelSpec

TIMM_NOTE = ("timm `{arch}` resolved from its pretrained config and feature_info; timm adapts the first conv "
             "(in_chans) and the head (num_classes) itself; dropout -> drop_rate.")


class TimmParams(BaseModel):
    """Extra keyword arguments for ``timm.create_model`` (e.g. ``drop_path_rate``)."""

    model_config = ConfigDict(extra="forbid")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to timm.create_model")


def split_tag(name: str) -> tuple[str, str | None]:
    """``convnext_tiny.fb_in1k`` -> (``convnext_tiny``, ``fb_in1k``)."""
    base, _, tag = name.partition(".")
    return base, tag or None


def _meta_model(arch: str, **kwargs: Any) -> nn.Module:
    """``arch`` built on the meta device (no memory), or on the CPU when its constructor needs real values."""
    import timm

    try:
        with torch.device("meta"):
            return timm.create_model(arch, pretrained=False, num_classes=2, **kwargs)
    except (NotImplementedError, RuntimeError):
        return timm.create_model(arch, pretrained=False, num_classes=2, **kwargs)


def accepts(arch: str, **kwargs: Any) -> bool:
    """Whether ``timm.create_model(arch, **kwargs)`` takes these keyword arguments."""
    try:
        _meta_model(arch, **kwargs)
    except TypeError:
        return False
    except Exception:  # noqa: BLE001 - a meta-device failure says nothing about the kwargs
        return True
    return True


RESIZE_PROBE = 128
"""The size a model that claims ``img_size`` is tried at (on the meta device) before it counts as resizable."""


def resizes(arch: str, size: int) -> bool:
    """Whether ``arch`` built with ``img_size=RESIZE_PROBE`` (or ``size`` when equal) runs a forward pass
    at that size: some models take ``img_size`` but keep fixed-size attention biases."""
    probe = RESIZE_PROBE if size != RESIZE_PROBE else RESIZE_PROBE // 2
    try:
        model = _meta_model(arch, img_size=probe)
        device = next((p.device for p in model.parameters()), torch.device("meta"))
        with torch.no_grad():
            model.eval()(torch.empty(1, 3, probe, probe, device=device))
    except Exception:  # noqa: BLE001 - any failure: not resizable
        return False
    return True


def _first(value: Any) -> str | None:
    if isinstance(value, (tuple, list)):
        return str(value[0]) if value else None
    return str(value) if value else None


def _stages_and_cam(model: nn.Module, size: int) -> tuple[tuple[str, ...], str | None]:
    """feature_info modules that exist, in module order, and the last one with an NCHW output."""
    info = getattr(model, "feature_info", None)
    entries = list(info.get_dicts() if hasattr(info, "get_dicts") else info or [])
    modules = dict(model.named_modules())
    order = {n: i for i, n in enumerate(modules)}
    stages = tuple(sorted({e["module"] for e in entries if e.get("module") in modules}, key=order.__getitem__))
    chans = {e["module"]: e.get("num_chs") for e in entries}
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [modules[s].register_forward_hook(lambda _m, _i, out, s=s: shapes.__setitem__(
        s, tuple(out.shape) if isinstance(out, torch.Tensor) else ())) for s in stages]
    device = next((p.device for p in model.parameters()), torch.device("meta"))
    try:
        with torch.no_grad():
            model(torch.empty(1, 3, size, size, device=device))
    except Exception:  # noqa: BLE001 - no shapes: Grad-CAM falls back to the last stage
        shapes = {s: () for s in stages}
    finally:
        for h in hooks:
            h.remove()
    if not stages:
        return stages, None
    last = stages[-1]
    shape = shapes.get(last, ())
    if shapes and all(v == () for v in shapes.values()):
        return stages, last  # forward failed on the meta device: trust feature_info
    nchw = len(shape) == 4 and shape[1] == chans.get(last, shape[1])
    return stages, last if nchw else None


def timm_spec(arch_name: str, *, full_name: str | None = None, plugin_cfg: dict[str, Any] | None = None,
              hub_repo: str | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of timm ``arch_name`` (``arch`` or ``arch.tag``), named ``full_name``."""
    import timm
    from timm.models import get_pretrained_cfg

    arch, tag = split_tag(arch_name)
    if not timm.is_model(arch):
        import difflib

        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown timm model {arch!r}{hint} (`cxrbench models --namespace timm` lists "
                               f"{len(timm.list_models())})")
    cfg = (plugin_cfg or {}) or (get_pretrained_cfg(arch_name if tag else arch) or get_pretrained_cfg(arch)).to_dict()
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    resizable = accepts(arch, img_size=size) and (not cfg.get("fixed_input_size") or resizes(arch, size))
    fixed = size if cfg.get("fixed_input_size") and not resizable else None
    model = _meta_model(arch, **({"img_size": size} if resizable and cfg.get("fixed_input_size") else {}))
    stages, cam = _stages_and_cam(model, size)
    classifier = _first(cfg.get("classifier")) or "head"
    named = dict(model.named_modules())
    raw = cfg.get("classifier")
    extra = tuple(str(h) for h in raw[1:] if str(h) in named) if isinstance(raw, (tuple, list)) else ()
    first_conv = _first(cfg.get("first_conv"))
    if first_conv is not None and not isinstance(named.get(first_conv), nn.Conv2d):
        first_conv = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    has_weights = bool(tag and cfg.get("hf_hub_id") or timm.list_pretrained(arch_name if tag else arch + ".*")
                       or hub_repo)
    notes = TIMM_NOTE.format(arch=arch_name)
    if fixed:
        notes += f" Takes only {fixed} px input (fixed position embedding)."
    elif resizable and cfg.get("fixed_input_size"):
        notes += " Built with img_size = the suite's image_size (position embedding resized)."
    if cam is None:
        notes += " Grad-CAM: no NCHW feature map (token or NHWC outputs), so none is drawn."
    if extra:
        notes += f" Heads {(classifier, *extra)} (distilled): all are re-initialised on a head change and train."
    name = full_name or f"timm:{arch_name}"
    return ModelSpec(
        name=name, build=partial(build_timm_model, arch=arch_name, resizable=resizable, hub_repo=hub_repo),
        family=type(model).__name__, paper=str(cfg.get("paper_ids") or cfg.get("paper_name") or "(see timm)"),
        default_input_size=size, params_schema=TimmParams, classifier=classifier, first_conv=first_conv,
        stages=stages, cam_layer=cam, weights_license=f"{cfg.get('license') or 'unknown'} (timm {arch_name})",
        supports_pretrained=has_weights, notes=notes, fixed_input_size=fixed, extra_heads=extra,
        input=ModelInput(mean=tuple(float(v) for v in cfg["mean"]), std=tuple(float(v) for v in cfg["std"]),
                         required=False)
        if cfg.get("mean") and cfg.get("std") else None,
    )


def build_timm_model(req: BuildRequest, *, arch: str, resizable: bool = False, hub_repo: str | None = None
                     ) -> nn.Module:
    """timm ``arch`` for ``req``: ``num_classes``, ``in_chans``, drop_rate, ``img_size`` when it takes one.

    Pretrained weights come from the local caches only when offline (:func:`cxrbench.models.hub.timm_pretrained`,
    or the hub repo's cached file); without them a :class:`WeightsError`, never a random init.
    """
    import timm

    from cxrbench.models.hub import timm_pretrained

    kwargs: dict[str, Any] = {"num_classes": req.num_classes, "in_chans": req.in_chans,
                              **getattr(req.params, "kwargs", {})}
    if req.dropout is not None:
        kwargs["drop_rate"] = req.dropout
    if resizable:
        kwargs["img_size"] = req.image_size
    if req.pretrained:
        if hub_repo is not None:
            return hub_pretrained(hub_repo, arch, **kwargs)
        return timm_pretrained(arch, **kwargs)
    return timm.create_model(split_tag(arch)[0], pretrained=False, **kwargs)


def _hub_config(repo: str) -> dict[str, Any] | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo, "config.json")
    if not isinstance(hit, str):
        return None
    import json
    from pathlib import Path

    return json.loads(Path(hit).read_text(encoding="utf-8"))


def hub_spec(repo: str) -> ModelSpec:
    """``hf-hub:<org>/<repo>``: the architecture from the repo's cached ``config.json`` (or, for the
    ``timm`` organisation, from the repo name), weights from the Hugging Face cache or ``weights:``."""
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UnknownNameError(f"hf-hub model {repo!r}: name it hf-hub:<org>/<repo>, e.g. hf-hub:timm/resnet18.a1_in1k")
    cfg = _hub_config(repo)
    if cfg is not None:
        arch = cfg.get("architecture") or cfg.get("model_name")
        pretrained_cfg = dict(cfg.get("pretrained_cfg") or {})
    elif repo.startswith("timm/"):
        arch, pretrained_cfg = repo.split("/", 1)[1], None
    else:
        raise UnknownNameError(
            f"hf-hub model {repo!r}: its config.json is not in the local Hugging Face cache and cxrbench is "
            f"offline-safe: `huggingface-cli download {repo}` on a machine with network access fills the cache, "
            "or name the architecture as timm:<name> and give the file with `weights:`")
    if not arch:
        raise UnknownNameError(f"hf-hub model {repo!r}: config.json names no architecture")
    tag = split_tag(arch)[1] or pretrained_cfg and pretrained_cfg.get("tag")
    arch_name = split_tag(arch)[0] + (f".{tag}" if tag else "")
    return timm_spec(arch_name, full_name=f"hf-hub:{repo}", hub_repo=repo,
                     plugin_cfg=pretrained_cfg if pretrained_cfg else None)


def hub_pretrained(repo: str, arch: str, **kwargs: Any) -> nn.Module:
    """timm ``arch`` with the weights of hub ``repo`` from the local cache (a clear error when absent)."""
    import timm

    from cxrbench.models.hub import _HF_FILES, _unavailable

    from huggingface_hub import try_to_load_from_cache

    hit = next((h for f in _HF_FILES if isinstance(h := try_to_load_from_cache(repo, f), str)), None)
    hint = f"`huggingface-cli download {repo}` fills the Hugging Face cache"
    if hit is None:
        raise _unavailable(f"hf-hub:{repo}", "not in the local Hugging Face cache", hint)
    try:
        return timm.create_model(split_tag(arch)[0], pretrained=True, pretrained_cfg_overlay={"file": hit}, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"weights of hf-hub:{repo} ({hit}) cannot be loaded: {type(exc).__name__}: {exc}") from exc
