"""Deep merge and dotted-path overrides for suite dictionaries."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from cxrbench.errors import SuiteError


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: dicts merge recursively, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(data: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply one ``a.b.c=value`` override (value parsed as YAML; list items by index: ``models.0.lr``)."""
    if "=" not in assignment:
        raise SuiteError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set train.epochs=1")
    path, raw = assignment.split("=", 1)
    keys = [k for k in path.strip().split(".")]
    if not all(keys):
        raise SuiteError(f"--set {assignment!r}: empty key in {path!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise SuiteError(f"--set {assignment!r}: value is not valid YAML: {exc}") from None
    out = copy.deepcopy(data)
    node: Any = out
    for i, key in enumerate(keys[:-1]):
        node = _child(node, key, keys[: i + 1], assignment, create=True)
    last = keys[-1]
    if isinstance(node, list):
        idx = _index(last, node, keys, assignment)
        node[idx] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SuiteError(f"--set {assignment!r}: {'.'.join(keys[:-1])} is not a mapping or list")
    return out


def _child(node: Any, key: str, where: list[str], assignment: str, create: bool) -> Any:
    if isinstance(node, list):
        idx = _index(key, node, where, assignment)
        if isinstance(node[idx], str):  # a bare model name becomes {name: ...} so fields can be set
            node[idx] = {"name": node[idx]}
        return node[idx]
    if isinstance(node, dict):
        if key not in node or node[key] is None:
            node[key] = {}
        return node[key]
    raise SuiteError(f"--set {assignment!r}: {'.'.join(where[:-1])} is not a mapping or list")


def _index(key: str, node: list, where: list[str], assignment: str) -> int:
    try:
        idx = int(key)
        node[idx]
        return idx
    except (ValueError, IndexError):
        raise SuiteError(
            f"--set {assignment!r}: {'.'.join(where)} must be a list index 0..{len(node) - 1}") from None
