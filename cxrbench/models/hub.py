"""Fetching upstream pretrained weights (torchvision / timm), failing fast when they cannot be had.

Before any download is attempted the local caches are checked; when the file is not cached and
the machine is offline (``HF_HUB_OFFLINE=1`` or a 1-second connection to the host fails) a
:class:`WeightsError` is raised at once, instead of the libraries' minute-long retries.
Weights that were requested are never silently replaced by a random init.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn

from cxrbench.errors import WeightsError

_TRUE = {"1", "ON", "YES", "TRUE"}
_HF_FILES = ("model.safetensors", "pytorch_model.bin")


def offline_env() -> bool:
    """True when the environment asks for no network (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def host_reachable(host: str, port: int = 443, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds (DNS included)."""
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


def _unavailable(model: str, reason: str, cache_hint: str) -> WeightsError:
    return WeightsError(
        f"pretrained weights for {model!r} could not be fetched ({reason}). Supply them yourself: "
        f"download the file on a machine with network access and give its path in the suite "
        f"(`weights: /path/to/file.pth` under this model), or pre-populate the cache ({cache_hint}). "
        "Set `pretrained: false` to train from scratch on purpose."
    )


def _check_fetchable(model: str, host: str, cache_hint: str) -> None:
    if offline_env():
        raise _unavailable(model, "not in the local cache and HF_HUB_OFFLINE is set", cache_hint)
    if not host_reachable(host):
        raise _unavailable(model, f"not in the local cache and {host} cannot be reached", cache_hint)


def torch_hub_cached_path(url: str) -> Path:
    """Where ``torch.hub`` keeps (or would keep) the file behind ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def torchvision_state_dict(arch: str, version: str = "DEFAULT") -> dict[str, torch.Tensor]:
    """The state dict of torchvision ``arch`` weights ``version`` (``DEFAULT`` or e.g. ``IMAGENET1K_V1``).

    A file already in the torch hub cache is loaded without network; otherwise a download is
    attempted only when ``HF_HUB_OFFLINE`` is unset and the host answers within a second. The
    error names the file to fetch and where to put it.
    """
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch)[version]
    cached = torch_hub_cached_path(weights.url)
    hint = f"put {cached.name} from {weights.url} into {cached.parent}"
    label = arch if version == "DEFAULT" else f"{arch} ({version})"
    if not cached.is_file():
        _check_fetchable(label, urlparse(weights.url).hostname or "download.pytorch.org", hint)
    try:
        return weights.get_state_dict(progress=False)
    except Exception as exc:  # noqa: BLE001 - any download/parse failure means "no weights"
        raise _unavailable(label, f"{type(exc).__name__}: {exc}", hint) from exc


def _timm_cached_file(repo: str, revision: str | None, filename: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for fn in ([filename] if filename else _HF_FILES):
        hit = try_to_load_from_cache(repo, fn, revision=revision)
        if isinstance(hit, str):
            return hit
    return None


def timm_pretrained(arch: str, **kwargs) -> nn.Module:
    """``timm.create_model(arch, pretrained=True, **kwargs)`` that fails fast when offline.

    A file already in the Hugging Face (or torch hub) cache is loaded directly, with no network.
    """
    import timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    overlay: dict[str, str] = {}
    hint = "the Hugging Face cache"
    if cfg is not None and cfg.file and Path(cfg.file).is_file():
        overlay = {"file": cfg.file}
    elif cfg is not None and cfg.hf_hub_id:
        repo, _, rev = cfg.hf_hub_id.partition("@")
        hit = _timm_cached_file(repo, rev or None, cfg.hf_hub_filename)
        hint = f"`huggingface-cli download {repo}` fills the Hugging Face cache"
        if hit:
            overlay = {"file": hit}
        else:
            endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
            _check_fetchable(arch, urlparse(endpoint).hostname or "huggingface.co", hint)
    elif cfg is not None and cfg.url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(cfg.url).path)
        hint = f"put {cached.name} from {cfg.url} into {cached.parent}"
        if cached.is_file():
            overlay = {"file": str(cached)}
        else:
            _check_fetchable(arch, urlparse(cfg.url).hostname or "", hint)
    else:
        raise WeightsError(f"timm has no pretrained weights for {arch!r}; give a local file with `weights:`")
    try:
        return timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=overlay or None, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(arch, f"{type(exc).__name__}: {exc}", hint) from exc
