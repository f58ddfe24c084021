"""Shared fixtures: tiny suites on the synthetic dataset, and an isolated plugin registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CXRBENCH_MLFLOW", "0")
if "CXRBENCH_CACHE" not in os.environ:  # never write test images into the user's cache
    import tempfile

    os.environ["CXRBENCH_CACHE"] = tempfile.mkdtemp(prefix="cxrbench-test-cache-")  # core tests do not track; plugins/mlflow tests switch it on
torch.set_flush_denormal(True)

from cxrbench.plugins import reset_registry  # noqa: E402


def write_suite(path: Path, **changes) -> Path:
    """A tiny binary suite (32 px, 120 synthetic images, 1 epoch) with ``changes`` merged in."""
    from cxrbench.suite.merge import deep_merge

    base = {
        "name": "tiny",
        "task": {"type": "binary", "classes": ["normal", "pneumonia"]},
        "dataset": {"name": "synthetic_cxr", "options": {"n_samples": 120, "seed": 0}},
        "split": {"strategy": "ratio", "seed": 0},
        "input": {"image_size": 32, "channels": 1, "normalization": "dataset"},
        "models": ["lenet"],
        "train": {"epochs": 1, "batch_size": 16, "save_checkpoints": False},
        "metrics": {"primary": "accuracy", "report": ["accuracy", "f1", "roc_auc"], "bootstrap": 50},
    }
    data = deep_merge(base, {k: v for k, v in changes.items() if k != "models"})
    if "models" in changes:
        data["models"] = changes["models"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def suite_file(tmp_path: Path):
    """Factory: ``suite_file(**changes) -> Path`` of a tiny suite in tmp_path."""
    counter = iter(range(1000))

    def make(**changes) -> Path:
        return write_suite(tmp_path / f"suite{next(counter)}.yaml", **changes)

    return make


@pytest.fixture
def fresh_registry():
    """Rebuild the registry before and after the test (for tests that add or break plugins)."""
    reset_registry()
    yield
    reset_registry()
