"""Images for int8 calibration and an ``evaluate`` callback for accuracy, from a run's data or synthetic.

The engine passes :func:`calibration_images` (training rows) and :func:`make_evaluator` (test rows)
to :func:`cxrbench.profiling.profiler.profile_model`; the standalone CLI uses
:func:`synthetic_images`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def calibration_images(batches: Any, train_idx: np.ndarray, n: int, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` normalised training images ``(n, C, H, W)`` (a seeded random subset, eval transform)."""
    idx = np.asarray(train_idx)
    if len(idx) > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    return torch.cat([x for x, _ in batches.iterate(idx, 64, torch.device("cpu"), train=False)])


def make_evaluator(batches: Any, test_idx: np.ndarray, task: str, class_names: tuple[str, ...], positive: int,
                   metric_names: list[str], registry: Any, batch_size: int = 64
                   ) -> Callable[[Callable[[torch.Tensor], torch.Tensor]], dict[str, float]]:
    """``evaluate(predict) -> {metric: value}`` on the test rows, with the suite's metrics.

    ``batches`` is the run's :class:`cxrbench.engine.trainer.Batches`; ``predict`` maps a normalised
    CPU batch to logits (any runtime).
    """
    from cxrbench.metrics.scoring import compute_metrics
    from cxrbench.models.predict import predict

    idx = np.asarray(test_idx)

    def evaluate(forward: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        pred = predict(forward, batches.iterate(idx, batch_size, torch.device("cpu"), train=False), task,  # type: ignore[arg-type]
                       class_names, positive)
        return compute_metrics(pred, metric_names, registry)

    return evaluate


def synthetic_images(n: int, size: int, in_chans: int, seed: int = 0, registry: Any = None) -> torch.Tensor:
    """``n`` synthetic_cxr images (binary task) at ``size``, normalised with ImageNet statistics."""
    from cxrbench.data.images import to_size
    from cxrbench.data.loading import load_dataset

    if registry is None:
        from cxrbench.plugins import get_registry

        registry = get_registry()
    table = load_dataset(registry.dataset("synthetic_cxr"), "binary", ("normal", "pneumonia"),
                         options={"n_samples": n, "seed": seed})
    arr = np.stack([to_size(table.load_image(i, size), size, in_chans) for i in range(len(table))])
    mean, std = imagenet_stats(in_chans)
    from cxrbench.models.predict import normalize

    return normalize(torch.from_numpy(arr), torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1))


def imagenet_stats(in_chans: int) -> tuple[list[float], list[float]]:
    """ImageNet (mean, std) per channel; one channel gets the means of the three (as a suite's
    ``normalization: imagenet``, :func:`cxrbench.data.transforms.normalization_stats`)."""
    if in_chans == 3:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    return [float(np.mean(IMAGENET_MEAN))] * in_chans, [float(np.mean(IMAGENET_STD))] * in_chans
