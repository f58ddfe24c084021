"""Read suite YAML files safely: no code execution, no duplicate keys, one level of ``extends``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cxrbench.errors import SuiteError
from cxrbench.suite.merge import apply_override, deep_merge
from cxrbench.suite.schema import Suite

# Fields that describe the protocol: runs whose protocols differ are never merged on a leaderboard.
# The model list, seeds, the paper's reference figures and where jobs execute do not change how
# each job is run.
NON_PROTOCOL_FIELDS = ("models", "seeds", "reference", "description", "notice", "executor", "profile")
LATE_FIELDS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("external_test",), []),
    (("metrics", "threshold"), {"rule": "fixed", "value": 0.5, "level": None}),
    (("train", "bn_recalibration"), 0),
    (("train", "head_init"), "model"),
    (("train", "schedule", "warmup_epochs"), 0.0),
)
"""Fields added after the first release, each with its default: :func:`protocol_hash` hashes them only when
set away from it, so a suite that does not use them keeps its hash (its runs stay resumable and mergeable)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a mapping with the same key twice."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark,
                f"found duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML file into a dict, with errors that name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(f"{path}: suite file not found") from None
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read suite file: {exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        raise SuiteError(f"{path}: the file is empty")
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite must be a mapping of fields, got {type(data).__name__}")
    return data


def load_raw(path: str | os.PathLike) -> dict[str, Any]:
    """The suite's dict after resolving ``extends:`` (one level; dicts deep-merge, lists replace,
    and a ``reference:`` block in the child replaces the base's whole block)."""
    path = Path(path)
    data = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise SuiteError(f"{path}: extends must be a path to another suite file, got {parent!r}")
    base_path = (path.parent / parent).resolve()
    base = read_yaml(base_path)
    if "extends" in base:
        raise SuiteError(f"{path}: extends {base_path}, which itself extends another file; only one level is allowed")
    merged = deep_merge(base, data)
    if "reference" in data:  # a paper's figures belong to one protocol: the child's block replaces the base's
        merged["reference"] = data["reference"]
    return merged


def _line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at a pydantic error location, if the file has it."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _compose(source: str) -> yaml.Node | None:
    try:
        return yaml.compose(Path(source).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem: the field path (and line), what was expected, and what was given."""
    lines = [f"{source}: invalid suite ({exc.error_count()} problem{'s' if exc.error_count() > 1 else ''})"]
    root = _compose(source)
    for err in exc.errors():
        loc = _loc(err["loc"])
        line = _line_of(root, err["loc"])
        if line is not None:
            loc = f"{loc} (line {line})"
        given = err.get("input")
        shown = "" if err["type"] in ("missing",) else f" (got {given!r})" if not isinstance(given, dict) else ""
        if len(shown) > 80:
            shown = shown[:77] + "...)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error":
            shown = ""
        lines.append(f"  {loc or '<top level>'}: {msg}{shown}")
    return "\n".join(lines)


def _loc(parts: tuple) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in ("random_resized_crop", "random_crop", "hflip", "vflip", "rotation", "affine", "color_jitter"):
            continue  # discriminated-union tags add noise to the path
        else:
            out += f".{p}" if out else str(p)
    return out


def load_suite(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = (),
               models: list[str] | None = None) -> Suite:
    """Load, override (``--set``), filter (``--models``) and validate a suite file."""
    data = _pin_reference_setting(load_raw(path))
    for assignment in overrides:
        data = apply_override(data, assignment)
    if models:
        data = _filter_models(data, models, str(path))
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(format_validation_error(str(path), exc)) from None


REFERENCE_SETTING = ("image_size", "channels", "num_classes")
"""What a paper's figures were measured at (``reference:``); ours must match for a figure to be diffed."""


def _pin_reference_setting(data: dict[str, Any]) -> dict[str, Any]:
    """The suite with its ``reference:`` block's setting filled in from the suite as written (before
    ``--set``), so a run at another input size, channel count or class list knows the paper's."""
    ref = data.get("reference")
    if not isinstance(ref, dict) or not ref.get("models"):
        return data
    try:
        written = Suite.model_validate(data)
    except ValidationError:
        return data  # reported after the overrides, where it still applies
    fill = {"image_size": written.input.image_size, "channels": written.input.channels,
            "num_classes": len(written.task.classes)}
    return {**data, "reference": {**{k: v for k, v in fill.items() if ref.get(k) is None}, **ref}}


def reference_mismatch(reference: dict[str, Any] | None, suite: dict[str, Any]) -> str:
    """Why the paper's figures are not comparable with a run of the resolved ``suite``, e.g.
    ``"ours at 32 px, paper 448 px"``; empty when every setting the reference records matches."""
    if not reference:
        return ""
    ours = {"image_size": suite.get("input", {}).get("image_size", 224), "channels": suite.get("input", {}).get(
        "channels", 3), "num_classes": len(suite.get("task", {}).get("classes") or ())}
    unit = {"image_size": ("at ", " px"), "channels": ("", " channel(s)"), "num_classes": ("", " classes")}
    parts = [f"ours {unit[k][0]}{ours[k]}{unit[k][1]}, paper {reference[k]}{unit[k][1]}" for k in REFERENCE_SETTING
             if reference.get(k) is not None and reference[k] != ours[k]]
    return "; ".join(parts)


def _filter_models(data: dict[str, Any], wanted: list[str], source: str) -> dict[str, Any]:
    """``--models``: bare labels select suite models (in the order given); ``+name`` adds model ``name``
    under the suite's protocol (label = the name). Only ``+`` entries: every suite model, plus those."""
    entries = data.get("models") or []
    keyed = {}
    for m in entries:
        entry = {"name": m} if isinstance(m, str) else m
        if isinstance(entry, dict):
            keyed[entry.get("label") or entry.get("name")] = m
    wanted = [w.strip() for w in wanted if w.strip()]
    added = [w[1:].strip() for w in wanted if w.startswith("+")]
    selected = [w for w in wanted if not w.startswith("+")]
    missing = [w for w in selected if w not in keyed]
    if missing:
        raise SuiteError(f"{source}: --models names {missing} not in the suite; it has {sorted(keyed)} "
                         "(prefix a name with + to add a model: --models +timm:convnext_tiny)")
    clash = [a for a in added if a in keyed]
    if clash:
        raise SuiteError(f"{source}: --models +{clash[0]}: the suite already has a model labelled {clash[0]!r}; "
                         "drop the + to select it")
    if any(not a for a in added):
        raise SuiteError(f"{source}: --models: a lone '+' names no model")
    kept = [keyed[w] for w in selected] if selected else list(entries)
    out = {**data, "models": kept + [{"name": a} for a in dict.fromkeys(added)]}
    ref = data.get("reference")
    if selected and isinstance(ref, dict) and isinstance(ref.get("models"), dict):
        out["reference"] = {**ref, "models": {k: v for k, v in ref["models"].items() if k in selected}}
    return out


def resolved_dict(suite: Suite) -> dict[str, Any]:
    """The fully resolved suite (every default filled in) as plain JSON data."""
    return suite.model_dump(mode="json")


def sha256_of(data: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def protocol_hash(suite: Suite, runtime: dict[str, str] | None = None) -> str:
    """Hash of the fields that define how each job runs (not which models, seeds or references).

    ``runtime``: what the suite resolved to on the training device where it changes results
    (:func:`cxrbench.engine.precision.runtime_protocol`: a precision other than fp32, the kornia
    resampler for interpolating augmentations); the settings that only choose it (``train.precision``,
    ``input.augment_device``) and those that never change results (``train.compile``,
    ``input.workers``) are not hashed.
    """
    data = {k: v for k, v in resolved_dict(suite).items() if k not in NON_PROTOCOL_FIELDS}
    for section, keys in (("input", ("augment_device", "workers")), ("train", ("precision", "compile"))):
        data[section] = {k: v for k, v in data[section].items() if k not in keys}
    if runtime:
        data["runtime"] = dict(runtime)
    for path, default in LATE_FIELDS:
        parent = data
        for key in path[:-1]:
            parent = parent.get(key, {})
        if path[-1] in parent and parent[path[-1]] == default:
            del parent[path[-1]]
    if suite.profile.only:  # untrained profiles never resume or merge with a training run of the suite
        data["profile_only"] = True
    return sha256_of(data)
