"""External test sets: another dataset, relabelled into the suite's classes, decoded like the main one.

A suite's ``external_test`` entry names a dataset and a ``label_map`` from that dataset's class (or
label) names to the suite's class names; without one, classes of the same vocabulary name
(:mod:`cxrbench.data.label_space`) map to each other (:func:`identity_map`) and a multilabel suite
asks the dataset for its own labels. Names match case-, space-, underscore- and
hyphen-insensitively. The rules:

- single-label source (binary / multiclass): every source class must be a key, mapped to a suite
  class or to null (its rows are dropped, counted as ``excluded``); a source class left out is an
  error naming it.
- multilabel source (e.g. ChestX-ray14) into a binary / multiclass suite: a row belongs to suite
  class ``c`` when it has a label mapped to ``c``; the key ``No Finding`` stands for rows with no
  label at all. Rows with a label mapped to null are dropped (``excluded``), then rows matching no
  mapped key (``unmatched``) or keys of two different suite classes (``ambiguous``). Labels not in
  the map neither select nor drop a row.
- multilabel source into a multilabel suite: each suite label is the OR of the source labels mapped
  to it (every suite label needs one); rows with a null-mapped label are dropped (``excluded``).

Masked source labels (``SampleTable.label_mask``, e.g. CheXpert blanks): a suite label is known when
one of its source labels is a known positive or all of them are known; ``No Finding`` holds only for a
row whose labels are all known and negative.

Rows come from the dataset's official test split (``split: test``, every row when the dataset has
no official split) or from every row (``split: all``). Images go through the same decode cache
(:func:`cxrbench.data.cache.load_images`) at the suite's decode size and channels as the main
data; unreadable ones are dropped (``unreadable``), or fail the run with ``--strict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrbench.data.cache import load_images
from cxrbench.data.datasets.common import norm
from cxrbench.data.loading import load_dataset
from cxrbench.data.prepare import PreparedData, _restrict
from cxrbench.errors import DatasetError, SuiteError, UnknownNameError
from cxrbench.plugins import Registry
from cxrbench.specs import SampleTable
from cxrbench.suite.checks import external_task
from cxrbench.suite.schema import ExternalTestConfig, Suite

NO_FINDING = "No Finding"
DROP_REASONS = ("excluded", "unmatched", "ambiguous", "unreadable")


@dataclass
class ExternalSet:
    """One external test set, ready to evaluate: decoded images and labels in the suite's classes."""

    name: str
    dataset: str
    ids: list[str]
    patient_ids: list[str] | None
    labels: np.ndarray
    """``(N,)`` suite class indices, or ``(N, K)`` 0/1 for a multilabel suite."""
    images: np.ndarray
    """uint8 ``(N, C, S, S)`` at the suite's decode size."""
    rows: str
    """Which rows were used: ``test`` (official test split) or ``all``."""
    n_rows: int
    """Rows of that part before relabelling and decoding."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Reason (``excluded``, ``unmatched``, ``ambiguous``, ``unreadable``) -> rows dropped."""
    synthetic: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    """Facts for run.json (fingerprint, image cache, unreadable files)."""
    mask: np.ndarray | None = None
    """Multilabel suite only: ``(N, K)`` bool, False where a label is not annotated (None: all known)."""

    def __len__(self) -> int:
        return len(self.ids)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "dataset": self.dataset, "rows": self.rows, "n_rows": self.n_rows,
                "n": len(self), "dropped": dict(self.dropped), "synthetic": self.synthetic, **self.info}


@dataclass
class Relabelled:
    """The outcome of a label map: which source rows are kept and their suite labels."""

    keep: np.ndarray
    labels: np.ndarray
    dropped: dict[str, int]
    mask: np.ndarray | None = None
    """Multilabel suite: which kept rows' labels are known (None: all)."""


def _resolve(names: list[str], wanted: list[str], what: str) -> dict[str, str]:
    """``wanted`` name -> canonical name in ``names`` (norm-matched); unknown ones raise."""
    lookup = {norm(n): n for n in names}
    out, unknown = {}, []
    for w in wanted:
        if norm(w) in lookup:
            out[w] = lookup[norm(w)]
        else:
            unknown.append(w)
    if unknown:
        raise SuiteError(f"label_map {what} {unknown}, which {'are' if len(unknown) > 1 else 'is'} not among "
                         f"{names} (names match case-insensitively)")
    return out


def relabel(labels: np.ndarray, class_names: list[str], multilabel_source: bool, label_map: dict[str, str | None],
            suite_task: str, suite_classes: list[str], mask: np.ndarray | None = None) -> Relabelled:
    """Apply ``label_map`` (see the module docstring) to a source table's labels (``mask``: the source
    table's ``label_mask``); raises SuiteError."""
    labels = np.asarray(labels)
    source_names = [*class_names, NO_FINDING] if multilabel_source else list(class_names)
    keys = _resolve(source_names, list(label_map), "names source class(es)")
    targets = _resolve(list(suite_classes), [v for v in label_map.values() if v is not None],
                       "maps to")
    resolved = {keys[k]: (None if v is None else suite_classes.index(targets[v])) for k, v in label_map.items()}
    if len(resolved) != len(label_map):
        raise SuiteError(f"label_map names the same source class twice: {list(label_map)}")
    dropped = dict.fromkeys(DROP_REASONS, 0)
    k = len(suite_classes)
    if not multilabel_source:
        if suite_task == "multilabel":
            raise SuiteError("a multilabel suite needs a multilabel external dataset (set the entry's task: "
                             "multilabel, or use a dataset that has one)")
        unmapped = [c for c in class_names if c not in resolved]
        if unmapped:
            raise SuiteError(f"label_map does not say what to do with source class(es) {unmapped}; map each to "
                             f"one of {suite_classes} or to null to drop its rows")
        lookup = np.array([-1 if resolved[c] is None else resolved[c] for c in class_names])
        mapped = lookup[labels.astype(int)]
        keep = np.flatnonzero(mapped >= 0)
        dropped["excluded"] = int((mapped < 0).sum())
        return Relabelled(keep, mapped[keep], dropped)

    known = np.ones(labels.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    hot = labels.astype(bool) & known
    columns = {NO_FINDING: ~hot.any(axis=1) & known.all(axis=1)} | {c: hot[:, j] for j, c in enumerate(class_names)}
    excluded = np.zeros(len(hot), dtype=bool)
    member = np.zeros((len(hot), k), dtype=bool)
    for name, target in resolved.items():
        if target is None:
            excluded |= columns[name]
        elif name == NO_FINDING and suite_task == "multilabel":
            raise SuiteError(f"label_map: {NO_FINDING!r} can only map to null in a multilabel suite "
                             f"(a row without findings is already all zeros)")
        else:
            member[:, target] |= columns[name]
    dropped["excluded"] = int(excluded.sum())
    if suite_task == "multilabel":
        uncovered = [c for j, c in enumerate(suite_classes) if j not in resolved.values()]
        if uncovered:
            raise SuiteError(f"label_map maps no source label to suite label(s) {uncovered}; every suite label "
                             f"needs one")
        keep = np.flatnonzero(~excluded)
        out_mask = None
        if mask is not None:
            sources = [[class_names.index(n) for n, t in resolved.items() if t == j and n != NO_FINDING]
                       for j in range(k)]
            out_mask = np.stack([member[:, j] | known[:, s].all(axis=1) for j, s in enumerate(sources)], axis=1)
            out_mask = None if out_mask[keep].all() else out_mask[keep]
        return Relabelled(keep, member[keep].astype(np.int64), dropped, out_mask)
    count = member.sum(axis=1)
    dropped["unmatched"] = int((~excluded & (count == 0)).sum())
    dropped["ambiguous"] = int((~excluded & (count > 1)).sum())
    keep = np.flatnonzero(~excluded & (count == 1))
    return Relabelled(keep, member[keep].argmax(axis=1).astype(np.int64), dropped)


def identity_map(table: SampleTable, task: str, suite: Suite) -> dict[str, str | None]:
    """The ``label_map`` an entry without one gets: each suite class from the source class of the same
    (vocabulary) name. Raises SuiteError when a source class has no suite counterpart."""
    from cxrbench.data.label_space import canonical

    suite_by = {norm(canonical(c) or c): c for c in suite.task.classes}
    out: dict[str, str | None] = {}
    for name in table.class_names:
        target = suite_by.get(norm(canonical(name) or name))
        if target is None and task != "multilabel":
            raise SuiteError(f"no label_map given, and source class {name!r} is not one of the suite's classes "
                             f"{list(suite.task.classes)}; write a label_map (external class -> suite class, "
                             f"null to drop its rows)")
        if target is not None:
            out[name] = target
    if not out:
        raise SuiteError(f"no label_map given, and none of the dataset's labels {list(table.class_names)} is one of "
                         f"the suite's classes {list(suite.task.classes)}")
    return out


def _missing_hint(message: str, index: int) -> str:
    """A dataset's missing-data message with its ``--set dataset.*`` hints pointed at this entry."""
    lines = [line for line in message.splitlines() if "run the same suite on synthetic data" not in line]
    text = "\n".join(lines)
    return (text.replace("--set dataset.", f"--set external_test.{index}.dataset.")
            .replace("dataset.root is not set", f"external_test[{index}].dataset.root is not set"))


def load_source(cfg: ExternalTestConfig, suite: Suite, registry: Registry) -> tuple[SampleTable, str]:
    """The external dataset's table, as its plugin returns it, and the task it was loaded as."""
    try:
        spec = registry.dataset(cfg.dataset.name)
    except UnknownNameError as exc:
        raise SuiteError(f"dataset.name: {exc}") from None
    task = external_task(cfg, suite.task.type, tuple(spec.tasks))
    classes = cfg.classes or (list(suite.task.classes) if cfg.label_map is None and task == "multilabel" else ())
    table = load_dataset(spec, task, tuple(classes), cfg.dataset.root, cfg.dataset.options,
                         cfg.dataset.variant)
    if len(table) == 0:
        raise DatasetError(f"dataset {spec.name!r} has no images")
    table.synthetic = table.synthetic or spec.synthetic
    return table, task


def load_external(index: int, cfg: ExternalTestConfig, suite: Suite, registry: Registry, progress: Any = None,
                  strict: bool = False, *, cache_dir: str | Path | None = None,
                  use_cache: bool = True) -> ExternalSet:
    """One ``external_test`` entry, relabelled and decoded; errors name the entry."""
    where = f"external_test[{index}] {cfg.name!r}"
    try:
        table, task = load_source(cfg, suite, registry)
        rows = cfg.split
        if rows == "test" and table.official_split is not None:
            table = _restrict(table, np.flatnonzero(np.asarray(table.official_split) == "test"))
            if len(table) == 0:
                raise DatasetError(f"dataset {cfg.dataset.name!r} has no official test rows (use split: all)")
        else:
            rows = "all"
        n_rows = len(table)
        mapped = relabel(np.asarray(table.labels), list(table.class_names), task == "multilabel",
                         cfg.label_map if cfg.label_map is not None else identity_map(table, task, suite),
                         suite.task.type, list(suite.task.classes), table.label_mask)
        if len(mapped.keep) == 0:
            raise DatasetError(f"no row of dataset {cfg.dataset.name!r} is left after the label map "
                               f"(dropped: {mapped.dropped})")
        table = _restrict(table, mapped.keep)
        table.labels, table.label_mask, table.label_uncertain = mapped.labels, mapped.mask, None
        arr = load_images(table, suite.input.decode_size, suite.input.channels, dataset=cfg.dataset.name,
                          cache_dir=cache_dir, use_cache=use_cache, progress=progress)
        if arr.bad and strict:
            listed = "\n".join(f"  {i}: {r}" for i, r in arr.bad[:20])
            raise DatasetError(f"{len(arr.bad)} unreadable image(s) (--strict):\n{listed}")
    except SuiteError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    except DatasetError as exc:
        raise DatasetError(f"{where}: {_missing_hint(str(exc), index)}") from None
    keep = np.asarray(arr.keep)
    dropped = mapped.dropped | {"unreadable": len(arr.bad)}
    pick = lambda seq: None if seq is None else [seq[i] for i in keep]  # noqa: E731
    info = {"fingerprint": table.fingerprint, "image_cache": arr.info(),
            "bad_images": [{"id": i, "reason": r} for i, r in arr.bad],
            "skipped_by_dataset": len(table.skipped)}
    return ExternalSet(cfg.name, cfg.dataset.name, pick(table.ids), pick(table.patient_ids),
                       np.asarray(table.labels)[keep], np.asarray(arr.images), rows, n_rows, dropped,
                       bool(table.synthetic), info,
                       None if table.label_mask is None else np.asarray(table.label_mask)[keep])


def load_external_sets(suite: Suite, registry: Registry, progress: Any = None, strict: bool = False,
                       **cache: Any) -> list[ExternalSet]:
    """Every ``external_test`` entry of the suite, loaded and checked (before any training)."""
    return [load_external(i, cfg, suite, registry, progress, strict, **cache)
            for i, cfg in enumerate(suite.external_test)]


def attach_external(data: PreparedData, external: list[ExternalSet]) -> PreparedData:
    """``data`` with the external sets every job evaluates on (their summaries go to run.json)."""
    data.external = list(external)
    if external:
        data.notes["external_test"] = [s.summary() for s in external]
    return data
