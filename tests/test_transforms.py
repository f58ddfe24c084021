"""Normalisation statistics come from training rows only and equal numpy's over those rows."""

import numpy as np
import pytest

from cxrbench.data.transforms import IMAGENET_MEAN, normalization_stats
from cxrbench.suite.schema import InputConfig


def test_dataset_statistics_equal_numpy_on_training_rows_only():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (700, 3, 8, 8)).astype(np.uint8)
    images[1::2] = 255  # rows outside the training set must not count
    train = np.arange(0, 700, 2)
    mean, std = normalization_stats(InputConfig(image_size=8, channels=3, normalization="dataset"), images, train)
    ref = images[train] / 255.0
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, ref.std(axis=(0, 2, 3)), rtol=1e-9)


def test_named_statistics():
    cfg = InputConfig(image_size=8, channels=1, normalization="imagenet")
    mean, std = normalization_stats(cfg, np.zeros((1, 1, 8, 8), np.uint8), np.arange(1))
    assert mean == [pytest.approx(np.mean(IMAGENET_MEAN))] and len(std) == 1
