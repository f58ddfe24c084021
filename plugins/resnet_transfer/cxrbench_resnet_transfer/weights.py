"""ImageNet weights from torchvision by version name, failing fast (``WeightsError``) when offline.

The core's :func:`cxrbench.models.hub.torchvision_state_dict` always takes torchvision's
``DEFAULT`` weights; the papers reproduced here do not say which version they used and mostly
predate ``IMAGENET1K_V2``, so the version is chosen here (V1 = the legacy ``pretrained=True``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch

from cxrbench.errors import WeightsError
from cxrbench.models.hub import host_reachable, offline_env


def cached_path(url: str) -> Path:
    """Where ``torch.hub`` keeps (or would keep) the file behind ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def imagenet_state_dict(arch: str, version: str) -> dict[str, torch.Tensor]:
    """The state dict of torchvision ``arch`` weights ``version`` (e.g. ``"IMAGENET1K_V1"``).

    A file already in the torch hub cache is loaded without network; otherwise a download is
    attempted only when ``HF_HUB_OFFLINE`` is unset and the host answers within a second.
    """
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch)[version]
    cached = cached_path(weights.url)
    host = urlparse(weights.url).hostname or "download.pytorch.org"
    reason = None
    if not cached.is_file():
        if offline_env():
            reason = "not in the local cache and HF_HUB_OFFLINE is set"
        elif not host_reachable(host):
            reason = f"not in the local cache and {host} cannot be reached"
    if reason is None:
        try:
            return weights.get_state_dict(progress=False)
        except Exception as exc:  # noqa: BLE001 - any download/parse failure means "no weights"
            reason = f"{type(exc).__name__}: {exc}"
    raise WeightsError(
        f"torchvision {arch} {version} ImageNet weights could not be loaded ({reason}). Put {cached.name} "
        f"from {weights.url} into {cached.parent}, or give a local file with `weights:` in the suite, "
        "or set `pretrained: false`."
    )
