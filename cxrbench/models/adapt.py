"""Adapting weights to a model: first-conv channel changes and head (classifier) changes.

Used both when a builder loads upstream pretrained weights and when the factory loads a local
weights file, so both paths follow the same rules.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Mapping, Sequence

import torch
import torch.nn as nn

from cxrbench.errors import WeightsError

_MAX_KEYS_SHOWN = 5


def adapt_conv_weight(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A conv kernel ``(O, I, kh, kw)`` converted to ``in_chans`` input channels.

    To 1 channel: the sum over the input channels (a grey image replicated to RGB gives the same
    response, as in timm). From 1 channel to C: repeated C times and divided by C. From I to C
    otherwise: channels cycled and rescaled by I/C (timm's rule for I == 3).
    """
    n_in = weight.shape[1]
    if in_chans == n_in:
        return weight.clone()
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = math.ceil(in_chans / n_in)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (n_in / in_chans)


def replace_first_conv(model: nn.Module, path: str, in_chans: int) -> None:
    """Replace the conv at ``path`` by one taking ``in_chans`` channels (same hyperparameters).

    The new kernel is derived from the old one with :func:`adapt_conv_weight` (for a randomly
    initialised model this keeps the architecture's own init scale for fan-out inits).
    """
    old = model.get_submodule(path)
    if not isinstance(old, nn.Conv2d) or old.groups != 1:
        raise TypeError(f"first conv {path!r} is not an ungrouped nn.Conv2d: {old!r}")
    if old.in_channels == in_chans:
        return
    new = nn.Conv2d(in_chans, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation,
                    bias=old.bias is not None, padding_mode=old.padding_mode)
    with torch.no_grad():
        new.weight.copy_(adapt_conv_weight(old.weight, in_chans))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    model.set_submodule(path, new)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _short(keys: list[str]) -> str:
    more = f" (+{len(keys) - _MAX_KEYS_SHOWN} more)" if len(keys) > _MAX_KEYS_SHOWN else ""
    return ", ".join(keys[:_MAX_KEYS_SHOWN]) + more


def _unwrapped(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict without a DataParallel ``module.`` prefix."""
    sd = dict(state_dict)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _unfit_head_keys(sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], head: str) -> list[str]:
    return [k for k in sd if k.startswith(head + ".") and k in own and _shape(sd[k]) != _shape(own[k])]


def _absent_head_keys(sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], head: str) -> list[str]:
    return [k for k in own if k.startswith(head + ".") and k not in sd]


def heads_from_file(model: nn.Module, state_dict: Mapping[str, torch.Tensor], heads: Sequence[str]) -> list[str]:
    """The heads :func:`load_adapted` takes from ``state_dict`` as they are (present, same shapes); the
    others keep the model's fresh values."""
    sd, own = _unwrapped(state_dict), model.state_dict()
    return [h for h in heads if not _unfit_head_keys(sd, own, h) and not _absent_head_keys(sd, own, h)]


def load_adapted(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, classifier: str | Sequence[str],
                 first_conv: str | None, source: str) -> list[str]:
    """Load ``state_dict`` into ``model``, adapting the head and the first conv; return what was adapted.

    Classifier entries whose shape differs are dropped (the model keeps its fresh head); the
    first-conv kernel is converted when only its input-channel count differs. Any other missing
    or unexpected key or shape mismatch raises :class:`WeightsError` naming ``source``.
    Classifier entries absent from the file (a headless backbone) keep their fresh values too.
    ``classifier`` may name several heads (a distilled model's ``head`` and ``head_dist``). Convs
    of the stem in parallel with the first conv (reparameterisable stems: RepVGG, FastViT) are
    converted like it when their input channels differ the same way.
    A ``module.`` prefix (DataParallel) is stripped; ``num_batches_tracked`` may be absent.
    """
    sd = _unwrapped(state_dict)
    own = model.state_dict()
    adapted: list[str] = []

    for classifier in ([classifier] if isinstance(classifier, str) else list(classifier)):
        head = _unfit_head_keys(sd, own, classifier)
        if head:
            w = f"{classifier}.weight"
            detail = f" ({_shape(sd[w])} -> {_shape(own[w])})" if w in head else ""
            adapted.append(f"re-initialised classifier {classifier!r}{detail}")
            for k in head:
                sd[k] = own[k]
        headless = _absent_head_keys(sd, own, classifier)
        if headless:
            adapted.append(f"kept the fresh classifier {classifier!r} (absent from the weights)")
            for k in headless:
                sd[k] = own[k]

    if first_conv is not None:
        key = f"{first_conv}.weight"
        if key in sd and key in own:
            src, dst = sd[key], own[key]
            if src.ndim == 4 and src.shape[1] != dst.shape[1] and _shape(src[:, :1]) == _shape(dst[:, :1]):
                sd[key] = adapt_conv_weight(src, dst.shape[1])
                rule = "summed over" if dst.shape[1] == 1 else "repeated from"
                adapted.append(f"first conv {first_conv!r} {rule} {src.shape[1]} input channels -> {dst.shape[1]}")
                stem = first_conv.split(".")[0] + "."
                branches = [k for k in sd if k != key and k.startswith(stem) and k.endswith(".weight") and k in own
                            and sd[k].ndim == 4 and sd[k].shape[1] == src.shape[1] and own[k].shape[1] == dst.shape[1]
                            and _shape(sd[k][:, :1]) == _shape(own[k][:, :1])]
                for k in branches:
                    sd[k] = adapt_conv_weight(sd[k], dst.shape[1])
                if branches:
                    adapted.append(f"parallel stem conv(s) {', '.join(k[:-7] for k in branches)} adapted the same way")

    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    mismatched = [f"{k} (file {_shape(sd[k])} vs model {_shape(own[k])})"
                  for k in sd if k in own and _shape(sd[k]) != _shape(own[k])]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"shape mismatch: {_short(mismatched)}")
        if missing:
            parts.append(f"missing keys: {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_short(unexpected)}")
        raise WeightsError(f"weights {source} do not fit the model: {'; '.join(parts)} "
                           "(only the classifier and the first conv's input channels are adapted)")
    for k, v in own.items():
        sd.setdefault(k, v)
    # Module versions (``_metadata``) drive some modules' loading (torchvision's MNASNet refuses a
    # state dict without its version): the file's when it kept them, else the model's own.
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None and any(k.startswith("module.") for k in metadata):
        metadata = None  # recorded under the DataParallel prefix stripped above
    loadable = OrderedDict(sd)
    loadable._metadata = metadata if metadata is not None else getattr(own, "_metadata", None)  # type: ignore[attr-defined]
    model.load_state_dict(loadable, strict=True)
    return adapted


HEAD_INIT_STD = 0.01
"""``train.head_init: normal``: the std of a fresh head's weights (torchvision's MobileNet and SqueezeNet heads)."""


def init_heads(model: nn.Module, heads: Sequence[str], skip: Sequence[str] = ()) -> list[str]:
    """Re-draw the weights of every Linear/Conv layer under ``heads`` (dotted paths) from N(0, 0.01²)
    with zero biases, except the heads in ``skip``; return the heads re-drawn.

    One head initialisation for every architecture (``train.head_init: normal``): libraries scale theirs
    differently, e.g. timm's MobileNet/EfficientNet heads draw U(±1/sqrt(num_classes)), which for two
    classes starts training from logits of std ~3 and makes the first steps blow up.
    """
    done = []
    for path in heads:
        if path in skip:
            continue
        head = model.get_submodule(path)
        layers = [m for m in head.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv1d))]
        with torch.no_grad():
            for m in layers:
                nn.init.normal_(m.weight, 0.0, HEAD_INIT_STD)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if layers:
            done.append(path)
    return done
