"""Turning cxrbench configs and records into MLflow params and metrics."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Iterator, Mapping

from cxrbench.results.records import JobRecord

MAX_PARAM_VALUE = 6000
"""MLflow's limit on a param value's length."""
MAX_TAG_VALUE = 5000
"""Below MLflow's 8000 (older servers allow 5000)."""


def as_param_value(value: Any) -> str:
    """A param value as MLflow stores it: strings as they are, the rest as JSON, truncated."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return truncate(text, MAX_PARAM_VALUE)


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts to dotted keys (``train.optimizer.lr``); lists and empty dicts as JSON."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = as_param_value(value)
    return out


def is_number(value: Any) -> bool:
    """A finite int or float (bools and NaN are not logged as metrics)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finite(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numeric entries of ``values``, keys prefixed."""
    return {f"{prefix}{k}": float(v) for k, v in values.items() if is_number(v)}


def record_metrics(record: JobRecord) -> dict[str, float]:
    """Final test metrics (``test_*``), their CI bounds, cost, timings and sizes of one job."""
    out = finite(record.metrics, "test_")
    for name, bounds in record.ci.items():
        if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
            out |= finite({f"test_{name}_ci_low": bounds[0], f"test_{name}_ci_high": bounds[1]})
    out |= finite(record.cost, "cost_")
    out |= finite({"best_epoch": record.best_epoch, "epochs_run": record.epochs_run,
                   "train_seconds": record.train_seconds, "eval_seconds": record.eval_seconds,
                   "n_train": record.n_train, "n_val": record.n_val, "n_test": record.n_test})
    return out


def curve_points(curves: Mapping[str, Iterable[Any]]) -> Iterator[tuple[str, int, float]]:
    """``(key, epoch, value)`` of per-epoch curves (epoch from the ``epoch`` curve, else 1, 2, ...)."""
    epochs = [int(e) for e in curves.get("epoch", [])]
    for key, values in curves.items():
        if key == "epoch":
            continue
        for i, value in enumerate(values):
            if is_number(value):
                yield key, epochs[i] if i < len(epochs) else i + 1, float(value)
