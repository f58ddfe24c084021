"""Decision-threshold problems visible in the suite alone (``metrics.threshold``), before any data is read."""

from __future__ import annotations

from cxrbench.metrics.thresholds import DEFAULT_THRESHOLD
from cxrbench.suite.schema import Suite

FIELD = "metrics.threshold.rule"


def no_validation_reason(suite: Suite) -> str | None:
    """Why the suite's split leaves no validation rows, if it is clear before the data is read."""
    split = suite.split
    if split.strategy == "ratio" and split.ratios.val == 0:
        return "split.ratios.val is 0"
    if split.strategy == "kfold" and split.val_fraction == 0:
        return "split.val_fraction is 0"
    if split.strategy == "official" and split.carve_val and split.val_fraction == 0:
        return "split.carve_val is set with split.val_fraction 0"
    return None


def threshold_problems(suite: Suite) -> list[str]:
    """Problems with ``metrics.threshold`` visible in the suite alone, each starting with its field path."""
    cfg = suite.metrics.threshold
    if suite.task.type == "multiclass":
        if cfg.rule != "fixed" or cfg.value != DEFAULT_THRESHOLD:
            return [f"{FIELD}: thresholds do not apply to multiclass tasks (the prediction is the argmax); "
                    f"remove metrics.threshold"]
        return []
    reason = no_validation_reason(suite) if cfg.rule != "fixed" else None
    if reason:
        return [f"{FIELD}: rule {cfg.rule!r} is fitted on validation rows, but {reason}; "
                f"give the split a validation set or use rule: fixed"]
    return []
