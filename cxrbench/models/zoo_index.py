"""What the ``timm:`` and ``torchvision:`` namespaces offer, listed without importing either library.

Listing a thousand architectures must not import torch (``cxrbench models --filter`` answers in
well under 2 s), so each namespace's names live in a small JSON index keyed by the library's
installed version (read from package metadata, no import): the copy shipped next to this module
for the pinned versions, else one built on first use into ``$CXRBENCH_CACHE/model-index/`` (that
first call imports the library, once per version).
"""

from __future__ import annotations

import fnmatch
import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

SHIPPED = Path(__file__).with_name("zoo_index")
LIBRARY = {"timm": "timm", "torchvision": "torchvision"}


def library_version(namespace: str) -> str | None:
    """The installed version of the library behind ``namespace`` (None when not installed)."""
    try:
        return version(LIBRARY[namespace])
    except PackageNotFoundError:
        return None


def _timm_rows() -> list[dict[str, Any]]:
    import timm
    from timm.models import get_pretrained_cfg

    tags: dict[str, list[str]] = {}
    for full in timm.list_pretrained():
        base, _, tag = full.partition(".")
        tags.setdefault(base, []).append(tag)
    rows = []
    for name in timm.list_models():
        cfg = get_pretrained_cfg(name)
        size = int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else 224
        rows.append({"name": name, "pretrained": tags.get(name, []), "input_size": size,
                     "fixed_input_size": bool(cfg is not None and cfg.fixed_input_size)})
    return rows


def _torchvision_rows() -> list[dict[str, Any]]:
    import torchvision.models as tvm

    rows = []
    for name in tvm.list_models(module=tvm):
        try:
            weights = [w.name for w in tvm.get_model_weights(name)]
        except (KeyError, ValueError):
            weights = []
        rows.append({"name": name, "pretrained": weights, "input_size": 224, "fixed_input_size": False})
    return rows


BUILDERS: dict[str, Callable[[], list[dict[str, Any]]]] = {"timm": _timm_rows, "torchvision": _torchvision_rows}


def index_file(namespace: str, lib_version: str) -> str:
    return f"{namespace}-{lib_version}.json"


def rows(namespace: str, cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every entry of ``namespace`` (``name``, ``pretrained`` tags, ``input_size``, ``fixed_input_size``);
    empty when the library is not installed. An index built here is kept in ``cache_dir``."""
    ver = library_version(namespace)
    if ver is None:
        return []
    fname = index_file(namespace, ver)
    for path in (SHIPPED / fname, *([cache_dir / fname] if cache_dir else [])):
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pass
    data = BUILDERS[namespace]()
    if cache_dir is not None:
        write_index(cache_dir / fname, data)
    return data


def write_index(path: Path, data: list[dict[str, Any]]) -> None:
    """Write an index atomically (a failure to write only costs the next call its speed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def matches(pattern: str | None, name: str) -> bool:
    """Shell-style ``--filter`` match (case-insensitive), against the name with or without its namespace."""
    if not pattern:
        return True
    pat = pattern.lower()
    full = name.lower()
    return fnmatch.fnmatchcase(full, pat) or fnmatch.fnmatchcase(full.partition(":")[2] or full, pat)
