"""From a suite's ``dataset`` block to a dataset plugin's table: the one place a DataRequest is made.

:func:`load_dataset` validates ``dataset.options`` and ``dataset.variant`` against the
:class:`~cxrbench.specs.DatasetSpec` (the same checks ``cxrbench validate`` runs, see
:func:`cxrbench.suite.checks.dataset_problems`), resolves ``dataset.root`` once
(:func:`resolve_root`), calls the plugin's ``load`` and checks the table's per-row ``extras``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import BaseModel

from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable, TaskType
from cxrbench.suite.checks import dataset_problems

DATA_ENV = "CXRBENCH_DATA"
"""When ``dataset.root`` is null, datasets look in ``$CXRBENCH_DATA/<their default folder>``."""


def _given(options: BaseModel | Mapping[str, Any] | None) -> bool:
    return bool(options.model_fields_set if isinstance(options, BaseModel) else options)


def synthetic_hint(options: BaseModel | Mapping[str, Any] | None = None, variant: str | None = None) -> str:
    """The overrides that run the same suite on the built-in synthetic data instead."""
    parts = ["--set dataset.name=synthetic_cxr", "--set dataset.root=null"]
    if variant is not None:
        parts.append("--set dataset.variant=null")
    if _given(options):
        parts.append("--set 'dataset.options={}'")
    return " ".join(parts)


def missing_data_error(spec: DatasetSpec, problem: str, looked: Sequence[Path | str] = (),
                       options: BaseModel | Mapping[str, Any] | None = None,
                       variant: str | None = None) -> DatasetError:
    """A DatasetError saying what is missing, where we looked, where to get it and how to go on."""
    lines = [f"dataset {spec.name!r}: {problem}"]
    if looked:
        lines.append("  looked in: " + ", ".join(str(p) for p in looked))
    if spec.source:
        lines.append(f"  get it from: {spec.source}")
    if spec.layout:
        lines.append("  expected layout:")
        lines += [f"    {line}" for line in spec.layout.splitlines()]
    where = f", or put it at ${DATA_ENV}/{spec.default_folder} and leave dataset.root null" \
        if spec.default_folder else ""
    lines.append(f"  then: --set dataset.root=PATH{where}")
    lines.append(f"  or run the same suite on synthetic data: {synthetic_hint(options, variant)}")
    return DatasetError("\n".join(lines))


def _expand(path: str) -> Path:
    return Path(os.path.expanduser(os.path.expandvars(path)))


def resolve_root(spec: DatasetSpec, root: str | os.PathLike | None,
                 options: BaseModel | Mapping[str, Any] | None = None, variant: str | None = None) -> Path | None:
    """The folder (or file) a dataset reads: ``root`` with ``~`` and ``$VARS`` expanded; when null,
    ``$CXRBENCH_DATA/<spec.default_folder>`` (else ``spec.fallback_root``), or None for a spec
    without ``default_folder``. Absolute; it must exist unless ``spec.root_must_exist`` is false.
    ``options``/``variant`` only shape the hint of the missing-data error.
    """
    if root is not None:
        path = _expand(os.fspath(root))
    elif spec.default_folder is None:
        return None
    elif os.environ.get(DATA_ENV):
        path = _expand(os.environ[DATA_ENV]) / spec.default_folder
    elif spec.fallback_root is not None:
        path = _expand(spec.fallback_root)
    else:
        raise missing_data_error(spec, f"dataset.root is not set and ${DATA_ENV} is not set", (), options, variant)
    if path.exists():
        return path.resolve()
    if spec.root_must_exist:
        raise missing_data_error(spec, f"{path} does not exist", [path], options, variant)
    return path.absolute()


def make_request(spec: DatasetSpec, task: TaskType, classes: Sequence[str] = (), root: str | os.PathLike | None = None,
                 options: Mapping[str, Any] | BaseModel | None = None, variant: str | None = None) -> DataRequest:
    """A validated :class:`DataRequest`; raises a DatasetError naming every bad field."""
    raw = options if isinstance(options, BaseModel) else dict(options or {})
    problems = dataset_problems(spec, task, raw, variant)
    if problems:
        raise DatasetError("\n".join(problems))
    parsed = spec.parse_options(raw)
    chosen = spec.pick_variant(task, variant)
    return DataRequest(task=task, classes=tuple(classes), root=resolve_root(spec, root, parsed, chosen),
                       options=parsed, variant=chosen)


def check_extras(spec: DatasetSpec, table: SampleTable) -> None:
    """Every ``extras`` value must be per-row (one entry per row): table-level facts have typed fields."""
    n = len(table)
    for key, value in table.extras.items():
        per_row = hasattr(value, "__len__") and not isinstance(value, (str, bytes, dict))
        if not per_row or len(value) != n:
            what = f"has {len(value)} entries for {n} rows" if per_row else f"is a {type(value).__name__}, not a list"
            raise DatasetError(f"dataset {spec.name!r}: extras[{key!r}] {what} (extras hold per-row metadata "
                               "only; table-level facts go in SampleTable's root / label_file / archive / "
                               "image_shape / skipped / notes)")


def load_dataset(spec: DatasetSpec, task: TaskType, classes: Sequence[str] = (), root: str | os.PathLike | None = None,
                 options: Mapping[str, Any] | BaseModel | None = None, variant: str | None = None,
                 partial: bool = False) -> SampleTable:
    """The dataset's table for a request (see :func:`make_request`), its ``extras`` checked.

    A folder lacking part of its layout (``SampleTable.missing``: a split, a class folder) is
    refused with the missing folders named, unless ``partial`` (``datasets describe`` shows what
    is there)."""
    table = spec.load(make_request(spec, task, classes, root, options, variant))
    if not isinstance(table, SampleTable):
        raise DatasetError(f"dataset {spec.name!r}: load returned {type(table).__name__}, not a SampleTable")
    check_extras(spec, table)
    if table.missing and not partial:
        raise DatasetError(incomplete_message(spec, table))
    return table


def incomplete_message(spec: DatasetSpec, table: SampleTable) -> str:
    """What a partial dataset folder lacks, and how to see what it holds."""
    return (f"dataset {spec.name!r}: {table.root or 'the data folder'} is incomplete: missing "
            f"{', '.join(table.missing)} ({len(table):,} images in what is there; expected layout: "
            f"{spec.layout.splitlines()[0] if spec.layout else '?'}). `cxrbench datasets describe {spec.name} "
            f"--root {table.root or 'ROOT'}` shows what it holds")
