"""``cxrbench datasets describe NAME --root PATH``: what a dataset folder holds, before training on it.

Counts per official split and class, patients and images per patient, image sizes (read from the
file headers only, in parallel) and the leakage check of the official split (patients present in
more than one part). Multilabel tables with ``label_mask`` / ``label_uncertain`` also get, per split
and label, the entries not annotated (``not_annotated``) and those the archive marks uncertain
(``uncertain``, whatever the loader's policy made of them).
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from cxrbench.data.images import FileImages, default_workers, image_header
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.plugins import Registry, get_registry
from cxrbench.specs import SampleTable

SPLIT_ORDER = ("train", "val", "test", "all")


def _stats(values: list[int] | np.ndarray) -> dict[str, float] | None:
    if len(values) == 0:
        return None
    v = np.asarray(values, dtype=float)
    return {"min": int(v.min()), "median": float(np.median(v)), "mean": round(float(v.mean()), 2),
            "max": int(v.max())}


def _counts(table: SampleTable, parts: np.ndarray) -> dict[str, dict[str, int]]:
    labels = np.asarray(table.labels)
    out: dict[str, dict[str, int]] = {}
    for part in [p for p in SPLIT_ORDER if p in set(parts)]:
        rows = labels[parts == part]
        if labels.ndim == 2:  # multilabel: positives per label, plus rows with none
            row = {c: int(rows[:, k].sum()) for k, c in enumerate(table.class_names)}
            row["(none)"] = int((rows.sum(axis=1) == 0).sum())
        else:
            row = {c: int((rows == k).sum()) for k, c in enumerate(table.class_names)}
        row["total"] = int(len(rows))
        out[part] = row
    return out


def _cells(matrix: np.ndarray | None, names: list[str], parts: np.ndarray) -> dict[str, dict[str, int]] | None:
    """Per split, how many True entries ``matrix`` (N, K) has in each label (None without a matrix)."""
    if matrix is None:
        return None
    m = np.asarray(matrix, dtype=bool)
    return {part: {c: int(m[parts == part, k].sum()) for k, c in enumerate(names)}
            for part in SPLIT_ORDER if part in set(parts)}


def _patients(table: SampleTable, parts: np.ndarray) -> dict[str, Any] | None:
    if table.patient_ids is None:
        return None
    pids = np.asarray(table.patient_ids, dtype=str)
    per_patient = Counter(pids.tolist())
    sizes = list(per_patient.values())
    hist = Counter("1" if n == 1 else "2" if n == 2 else "3-5" if n <= 5 else "6+" for n in sizes)
    by_part = {part: int(len(set(pids[parts == part]))) for part in SPLIT_ORDER if part in set(parts)}
    return {"n_patients": len(per_patient), "per_split": by_part, "images_per_patient": _stats(sizes),
            "images_per_patient_histogram": {k: hist.get(k, 0) for k in ("1", "2", "3-5", "6+")}}


def _leakage(table: SampleTable) -> dict[str, Any] | None:
    if table.patient_ids is None or table.official_split is None:
        return None
    parts_of: dict[str, set[str]] = {}
    for p, part in zip(table.patient_ids, table.official_split):
        parts_of.setdefault(p, set()).add(part)
    shared = sorted(p for p, s in parts_of.items() if len(s) > 1)
    pairs = {}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        pairs[f"{a}&{b}"] = sum(1 for s in parts_of.values() if a in s and b in s)
    return {"patients_in_several_splits": len(shared), "pairs": pairs, "examples": shared[:10]}


def _image_sizes(table: SampleTable, workers: int | None = None) -> dict[str, Any]:
    if isinstance(table.load_image, FileImages):
        paths = table.load_image.paths

        def head(p: str) -> tuple[int, int, str] | str:
            try:
                return image_header(p)
            except Exception as exc:  # noqa: BLE001 - reported per file
                return f"{p}: {type(exc).__name__}: {exc}"

        chunks = [paths[i:i + 256] for i in range(0, len(paths), 256)]  # threads ignore map's chunksize
        with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
            heads = [h for part in pool.map(lambda c: [head(p) for p in c], chunks) for h in part]
        ok = [h for h in heads if not isinstance(h, str)]
        bad = [h for h in heads if isinstance(h, str)]
        widths, heights = [w for w, _, _ in ok], [h for _, h, _ in ok]
        aspect = [h / w for w, h, _ in ok if w]
        return {"source": "file headers", "width": _stats(widths), "height": _stats(heights),
                "aspect_h_over_w": None if not aspect else {"min": round(min(aspect), 3),
                                                             "median": round(float(np.median(aspect)), 3),
                                                             "max": round(max(aspect), 3)},
                "modes": dict(Counter(m for _, _, m in ok).most_common()),
                "unreadable_headers": len(bad), "unreadable_examples": bad[:10]}
    shape = table.image_shape
    if shape:
        return {"source": "array shape", "shape": list(shape)}
    return {"source": "not files (generated or custom loader)"}


def _metadata(table: SampleTable) -> dict[str, dict[str, int]]:
    """Images per value of the per-row ``view`` and ``source`` extras (the ones the table has)."""
    return {k: dict(Counter(str(v) for v in table.extras[k]).most_common())
            for k in ("view", "source") if k in table.extras}


def describe_table(table: SampleTable, name: str, task: str, workers: int | None = None) -> dict[str, Any]:
    """The description of an already loaded table (see :func:`describe_dataset`)."""
    parts = np.asarray(table.official_split if table.official_split is not None else ["all"] * len(table))
    skipped = table.skipped
    notes = list(table.notes)
    if table.patient_ids is None and not notes:
        notes.append("no patient ids: splits cannot be grouped by patient (images of one patient may "
                     "land on both sides)")
    return {
        "dataset": name, "task": task, "classes": list(table.class_names), "n_images": len(table),
        "root": table.root, "synthetic": table.synthetic, "fingerprint": table.fingerprint,
        "official_split": table.official_split is not None,
        "counts": _counts(table, parts),
        "not_annotated": _cells(None if table.label_mask is None else ~np.asarray(table.label_mask, dtype=bool),
                                list(table.class_names), parts),
        "uncertain": _cells(table.label_uncertain, list(table.class_names), parts),
        "patients": _patients(table, parts),
        "leakage": _leakage(table),
        "metadata": _metadata(table),
        "image_size": _image_sizes(table, workers),
        "skipped_rows": [{"id": i, "reason": r} for i, r in skipped],
        "notes": notes,
    }


def describe_dataset(name: str, root: str | None, task: str | None = None, variant: str | None = None,
                     options: dict[str, Any] | None = None, registry: Registry | None = None) -> dict[str, Any]:
    """Load dataset ``name`` from ``root`` with its default classes and describe it (a JSON-able dict)."""
    spec = (registry or get_registry()).dataset(name)
    task = task or spec.tasks[0]
    table = load_dataset(spec, task, (), root, options, variant)  # type: ignore[arg-type]
    return describe_table(table, name, task)


def render(desc: dict[str, Any], console: Console) -> None:
    """Rich tables for a description."""
    console.print(f"[bold]{desc['dataset']}[/bold] ({desc['task']}): {desc['n_images']:,} images"
                  + (f" in {desc['root']}" if desc.get("root") else "")
                  + (" [yellow](synthetic)[/yellow]" if desc["synthetic"] else ""))
    counts = desc["counts"]
    names = list(next(iter(counts.values())).keys())
    title = "images per split and class" + (" (multilabel: positives per label)" if "(none)" in names else "")
    t = Table(title=title, title_justify="left")
    if len(names) <= 8:
        t.add_column("split")
        for c in names:
            t.add_column(c, justify="right")
        for part, row in counts.items():
            t.add_row(part, *[f"{row[c]:,}" for c in names])
    else:  # many labels: one row per label
        t.add_column("class")
        for part in counts:
            t.add_column(part, justify="right")
        for c in names:
            t.add_row(c, *[f"{row[c]:,}" for row in counts.values()])
    console.print(t)
    for key, what in (("uncertain", "uncertain in the archive (-1), per split and label"),
                      ("not_annotated", "not annotated (masked: neither loss nor metrics), per split and label")):
        cells = desc.get(key)
        if cells:
            t = Table(title=what, title_justify="left")
            t.add_column("class")
            for part in cells:
                t.add_column(part, justify="right")
            for c in next(iter(cells.values())):
                t.add_row(c, *[f"{row[c]:,}" for row in cells.values()])
            console.print(t)

    pat = desc["patients"]
    if pat is not None:
        t = Table(title="patients", title_justify="left")
        for c in ("patients", *(f"in {p}" for p in pat["per_split"]), "images/patient min", "median", "mean",
                  "max", "1 / 2 / 3-5 / 6+ images"):
            t.add_column(c, justify="right")
        s, h = pat["images_per_patient"], pat["images_per_patient_histogram"]
        t.add_row(f"{pat['n_patients']:,}", *[f"{v:,}" for v in pat["per_split"].values()], str(s["min"]),
                  f"{s['median']:g}", f"{s['mean']:g}", str(s["max"]), " / ".join(str(v) for v in h.values()))
        console.print(t)
    leak = desc["leakage"]
    if leak is not None:
        n = leak["patients_in_several_splits"]
        style = "green" if n == 0 else "yellow"
        pairs = ", ".join(f"{k}: {v}" for k, v in leak["pairs"].items())
        console.print(f"[{style}]official split leakage: {n} patient(s) in more than one split[/{style}] ({pairs})"
                      + (f", e.g. {', '.join(leak['examples'][:5])}" if n else ""))
    for what, counts in desc.get("metadata", {}).items():
        console.print(f"{what}: " + ", ".join(f"{k or '(blank)'} {v:,}" for k, v in counts.items()))
    size = desc["image_size"]
    if size.get("width"):
        w, h = size["width"], size["height"]
        console.print(f"image size ({size['source']}): width {w['min']}-{w['max']} (median {w['median']:g}), "
                      f"height {h['min']}-{h['max']} (median {h['median']:g}); modes {size['modes']}")
        if size["unreadable_headers"]:
            console.print(f"[red]{size['unreadable_headers']} unreadable file(s)[/red], e.g. "
                          + "; ".join(size["unreadable_examples"][:3]))
    elif "shape" in size:
        console.print(f"image size ({size['source']}): {size['shape']}")
    if desc["skipped_rows"]:
        console.print(f"[yellow]{len(desc['skipped_rows'])} row(s) skipped[/yellow], e.g. "
                      + "; ".join(r["reason"] for r in desc["skipped_rows"][:3]))
    for note in desc["notes"]:
        console.print(f"note: {note}")


def describe_command(name: str, root: str | None, task: str | None = None, variant: str | None = None,
                     as_json: bool = False, options: dict[str, Any] | None = None,
                     console: Console | None = None) -> int:
    """Print the description (rich tables, or JSON with ``as_json``); returns the exit code."""
    desc = describe_dataset(name, root, task, variant, options)
    if as_json:
        print(json.dumps(desc, indent=2))
    else:
        render(desc, console or Console())
    return 0


def parse_option_pairs(pairs: list[str]) -> dict[str, Any]:
    """``["flag=chestmnist", "size=64"]`` -> ``{"flag": "chestmnist", "size": 64}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise DatasetError(f"--option {pair!r}: expected KEY=VALUE, e.g. --option size=64")
        key, raw = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out
