"""The tensors every job of a run shares, and how rows become normalised model input."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch

from cxrbench.data.transforms import eval_transform, normalization_stats, train_transform
from cxrbench.models.predict import normalize, with_unknown_as_nan

if TYPE_CHECKING:  # pragma: no cover
    from cxrbench.data.prepare import PreparedData
    from cxrbench.specs import ModelInput
    from cxrbench.suite.schema import Suite


@dataclass
class Batches:
    """Tensors shared by every job of a run, and how to turn rows into model input."""

    images: torch.Tensor
    """uint8 ``(N, C, S, S)`` on the CPU."""
    labels: torch.Tensor
    """``(N,)`` long or ``(N, K)`` float (NaN = not annotated, see :func:`label_tensor`)."""
    mean: torch.Tensor
    std: torch.Tensor
    train_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    eval_transform: Callable[[torch.Tensor], torch.Tensor] | None = None

    def iterate(self, idx: np.ndarray, batch_size: int, device: torch.device, *, train: bool,
                generator: torch.Generator | None = None, max_steps: int | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield normalised ``(x, y)`` batches of rows ``idx`` (shuffled and augmented when ``train``)."""
        order = torch.as_tensor(idx, dtype=torch.long)
        if train:
            order = order[torch.randperm(len(order), generator=generator)]
            if len(order) % batch_size == 1 and len(order) > 1:
                order = order[:-1]  # a batch of one breaks BatchNorm in train mode
        transform = self.train_transform if train else self.eval_transform
        mean, std = self.mean.to(device), self.std.to(device)
        for step, start in enumerate(range(0, len(order), batch_size)):
            if max_steps is not None and step >= max_steps:
                return
            rows = order[start:start + batch_size]
            x = self.images[rows]
            if transform is not None:
                x = torch.stack([transform(img) for img in x])
            x = normalize(x.to(device, non_blocking=True), mean, std)
            yield x, self.labels[rows].to(device, non_blocking=True)

    def for_model(self, model_input: "ModelInput | None") -> "Batches":
        """These batches normalised with the model's own mean/std (``ModelSpec.input``), or unchanged."""
        stats = model_input.stats(self.images.shape[1]) if model_input is not None else None
        if stats is None:
            return self
        shape = (1, len(stats[0]), 1, 1)
        return replace(self, mean=torch.tensor(stats[0]).view(shape), std=torch.tensor(stats[1]).view(shape))

    def describe(self, suite: "Suite", model_input: "ModelInput | None") -> dict:
        """What the job's model was fed (``JobRecord.input``): channels, size, mean/std and their source."""
        norm = suite.input.normalization
        own = model_input is not None and model_input.stats(self.images.shape[1]) is not None
        return {"channels": suite.input.channels, "image_size": suite.input.image_size,
                "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist(),
                "normalization": f"model: {model_input.name or 'its own mean/std'}" if own  # type: ignore[union-attr]
                else f"suite: {norm if isinstance(norm, str) else 'mean/std'}"}

    def n_batches(self, n_rows: int, batch_size: int, max_steps: int | None) -> int:
        n = math.ceil(n_rows / batch_size)
        return min(n, max_steps) if max_steps else n


def label_tensor(labels: np.ndarray, mask: np.ndarray | None, task: str) -> torch.Tensor:
    """Labels as the engine carries them: long class indices, or multilabel float 0/1 with NaN where
    ``mask`` is False (not annotated: the loss and the metrics skip it)."""
    if task == "multilabel":
        return torch.from_numpy(with_unknown_as_nan(labels, mask))
    return torch.as_tensor(np.asarray(labels)).long()


def make_batches(suite: Suite, data: PreparedData,
                 stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> Batches:
    """Shared tensors + transforms for every job (normalisation statistics from fold 0's train rows,
    or ``stats`` = (mean, std) already computed by the driver)."""
    if stats is None:
        mean, std = normalization_stats(suite.input, data.images, data.folds[0].train)
        shape = (1, len(mean), 1, 1)
        stats = torch.tensor(mean).view(shape), torch.tensor(std).view(shape)
    with warnings.catch_warnings():  # arrays from Ray's object store are read-only; rows are only copied out
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        images = torch.from_numpy(data.images)
    labels = label_tensor(data.table.labels, data.table.label_mask, suite.task.type)
    return Batches(images, labels, stats[0], stats[1], train_transform(list(suite.augment), suite.input),
                   eval_transform(suite.input))
