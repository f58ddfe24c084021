"""TorchXRayVision's networks as cxrbench models: plain logits, the suite's head, local weights only.

The modules are TorchXRayVision's own DenseNet (``features``/``classifier``) and the torchvision
ResNet-50 with a 1-channel ``conv1`` its ResNet wraps, so their state dicts have TorchXRayVision's
key layout and a ``weights:`` file saved from one (``torch.save(model.state_dict(), f)``) loads
directly. Outputs are logits: TorchXRayVision's resizing, normalisation warnings and operating-point
rescaling (``op_threshs``) are left out, the core does the preprocessing.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn

from cxrbench.data.label_space import head_map
from cxrbench.errors import WeightsError
from cxrbench.models.adapt import replace_first_conv
from cxrbench.models.hub import host_reachable, offline_env
from cxrbench.specs import BuildRequest

with warnings.catch_warnings():  # torchxrayvision's import silences every warning of the process
    import torchxrayvision as xrv

from cxrbench_xrv.plugin import WEIGHTS  # noqa: E402

N_OUTPUTS = 18


class MappedHead(nn.Linear):
    """A pretrained multi-label head read out as the suite's classes (zero-shot).

    It keeps the head's weights (``weight``/``bias`` of shape ``(18, F)``, so weight files load
    unchanged) and a non-persistent 0/1 ``select`` matrix ``(K, 18)``: class j's logit is output
    ``index[j]``, or a constant 0 where ``index[j]`` is None (the other class of a binary task, whose
    softmax pair then gives the mapped output's sigmoid).
    """

    def __init__(self, linear: nn.Linear, index: list[int | None]):
        super().__init__(linear.in_features, linear.out_features)
        self.load_state_dict(linear.state_dict())
        select = torch.zeros(len(index), linear.out_features)
        for j, i in enumerate(index):
            if i is not None:
                select[j, i] = 1.0
        self.register_buffer("select", select, persistent=False)
        self.index = list(index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) @ self.select.to(x.dtype).T


def weights_file(name: str, cache_dir: str | None) -> tuple[Path, str]:
    """Where TorchXRayVision keeps (or would keep) ``name``'s weights, and their URL."""
    url = xrv.models.model_urls[WEIGHTS[name][0]]["weights_url"]
    folder = Path(cache_dir or xrv.utils.get_cache_dir()).expanduser()
    return folder / Path(urlparse(url).path).name, url


def _missing(name: str, path: Path, url: str, reason: str) -> WeightsError:
    return WeightsError(
        f"pretrained weights for {name!r} are not on this machine ({reason}): download {path.name} from {url} "
        f"and put it in {path.parent} (TorchXRayVision's cache; `params: {{cache_dir: DIR}}` for another "
        f"folder), or give a state-dict file with `weights:`. Set `pretrained: false` to train from scratch.")


def pretrained_state(name: str, cache_dir: str | None) -> dict[str, torch.Tensor]:
    """The state dict of ``name``'s TorchXRayVision weights in this module's layout.

    Read from the cache folder through TorchXRayVision's own loader; downloaded (by it) only when
    ``HF_HUB_OFFLINE`` is unset and github.com answers, else a :class:`WeightsError` naming the file.
    """
    path, url = weights_file(name, cache_dir)
    if not path.is_file():
        if offline_env():
            raise _missing(name, path, url, "not in the cache and HF_HUB_OFFLINE is set")
        if not host_reachable(urlparse(url).hostname or "github.com"):
            raise _missing(name, path, url, "not in the cache and github.com cannot be reached")
    key = WEIGHTS[name][0]
    try:
        with warnings.catch_warnings():
            src = xrv.models.get_model(key, cache_dir=str(path.parent) + "/")
    except Exception as exc:  # noqa: BLE001 - a failed download or an unreadable file
        raise _missing(name, path, url, f"{type(exc).__name__}: {exc}") from exc
    module = src if key.startswith("densenet") else src.model
    return {k: v for k, v in module.state_dict().items() if k != "op_threshs"}


def network(name: str, num_outputs: int, in_chans: int, drop_rate: float = 0.0) -> nn.Module:
    """The architecture of ``name``, randomly initialised (TorchXRayVision's / torchvision's init)."""
    if WEIGHTS[name][0].startswith("densenet"):
        return xrv.models.DenseNet(num_classes=num_outputs, in_channels=in_chans, drop_rate=drop_rate)
    from torchvision.models import resnet50

    model = resnet50(weights=None, num_classes=num_outputs)
    if in_chans != 3:
        replace_first_conv(model, "conv1", in_chans)
    return model


def build_xrv(request: BuildRequest, name: str) -> nn.Module:
    """``name`` for ``request``: pretrained from the cache, then a zero-shot mapped head or a new one.

    ``request.zero_shot`` keeps the 18-output head mapped onto ``request.classes``
    (:func:`~cxrbench.data.label_space.head_map`); otherwise the head has ``num_classes`` outputs,
    fresh (fine-tuning) or random with the rest. Pretrained weights are 1-channel; another
    ``in_chans`` gets the core's first-conv adaptation.
    """
    dense = WEIGHTS[name][0].startswith("densenet")
    classifier, first_conv = ("classifier", "features.conv0") if dense else ("fc", "conv1")
    drop = float(request.dropout or 0.0) if dense else 0.0
    if not request.pretrained and not request.zero_shot:
        return network(name, request.num_classes, request.in_chans, drop)
    model = network(name, N_OUTPUTS, 1, drop)
    if request.pretrained:
        model.load_state_dict(pretrained_state(name, request.params.cache_dir))  # type: ignore[attr-defined]
    if request.in_chans != 1:
        replace_first_conv(model, first_conv, request.in_chans)
    head: nn.Linear = model.get_submodule(classifier)  # type: ignore[assignment]
    if request.zero_shot:
        index = head_map(WEIGHTS[name][2], request.classes, request.task, repr(name))
        model.set_submodule(classifier, MappedHead(head, index))
    else:
        model.set_submodule(classifier, nn.Linear(head.in_features, request.num_classes))
    return model
