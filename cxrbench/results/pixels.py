"""A run's images, re-decoded from its dataset exactly as the engine fed them to the models at evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cxrbench.data.cache import load_images
from cxrbench.data.images import decode_row
from cxrbench.data.prepare import load_table
from cxrbench.data.transforms import eval_transform, normalization_stats
from cxrbench.plugins import Registry
from cxrbench.specs import SampleTable
from cxrbench.suite.schema import Suite


@dataclass
class RunPixels:
    """Decoded images of one run's dataset, looked up by sample id."""

    suite: Suite
    table: SampleTable
    rows: dict[str, int]
    """sample id -> row of ``images`` (when decoded in bulk) or of ``table``."""
    mean: list[float]
    std: list[float]
    images: np.ndarray | None = None
    """Every readable row at the decode size, when the normalisation needed dataset statistics."""

    def uint8(self, ids: list[str]) -> torch.Tensor:
        """``(N, C, S, S)`` uint8 at the model's input size (decoded, then the evaluation centre crop)."""
        cfg = self.suite.input
        unknown = [i for i in ids if i not in self.rows]
        if unknown:
            raise KeyError(f"sample id(s) not in the dataset any more: {unknown[:5]}")
        arrays = [self.images[self.rows[i]] if self.images is not None
                  else decode_row(self.table, self.rows[i], cfg.decode_size, cfg.channels) for i in ids]
        x = torch.from_numpy(np.stack(arrays)) if arrays else torch.empty(
            (0, cfg.channels, cfg.image_size, cfg.image_size), dtype=torch.uint8)
        transform = eval_transform(cfg)
        if transform is not None and len(x):
            x = torch.stack([transform(img) for img in x])
        return x

    def model_input(self, x: torch.Tensor, recorded: dict | None = None) -> torch.Tensor:
        """uint8 images -> the normalised float tensor the model was evaluated on (``recorded``: a job
        record's ``input``, whose mean/std win when present: a model with its own normalisation)."""
        mean_, std_ = (recorded["mean"], recorded["std"]) if recorded and "mean" in recorded else (self.mean, self.std)
        shape = (1, len(mean_), 1, 1)
        mean, std = torch.tensor(mean_).view(shape), torch.tensor(std_).view(shape)
        from cxrbench.models.predict import normalize

        return normalize(x, mean, std)


def open_pixels(suite: Suite, registry: Registry, train_ids: list[str]) -> RunPixels:
    """Load the suite's dataset table (raising whatever the dataset raises when its data is missing).

    ``train_ids`` are fold 0's training sample ids (``splits.csv``): with ``normalization: dataset``
    the statistics are recomputed from them, as the run did; every image is then decoded once (a
    preprocessing-cache hit for real data the run already decoded).
    """
    cfg = suite.input
    table = load_table(suite, registry)
    rows = {sid: i for i, sid in enumerate(table.ids)}
    if cfg.normalization != "dataset":
        mean, std = normalization_stats(cfg, np.empty((0, cfg.channels, 1, 1), dtype=np.uint8), np.empty(0, int))
        return RunPixels(suite, table, rows, mean, std)
    arr = load_images(table, cfg.decode_size, cfg.channels, dataset=suite.dataset.name)
    position = {int(r): j for j, r in enumerate(arr.keep)}
    rows = {sid: position[i] for sid, i in rows.items() if i in position}
    train = np.asarray([rows[s] for s in train_ids if s in rows], dtype=np.int64)
    mean, std = normalization_stats(cfg, arr.images, train)
    return RunPixels(suite, table, rows, mean, std, images=arr.images)
