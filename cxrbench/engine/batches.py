"""The tensors every job of a run shares, and how rows become normalised model input."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch

from cxrbench.data.transforms import eval_transform, model_normalization, normalization_stats, train_transform
from cxrbench.models.predict import normalize

if TYPE_CHECKING:  # pragma: no cover
    from cxrbench.data.prepare import PreparedData
    from cxrbench.specs import ModelSpec
    from cxrbench.suite.schema import Suite


@dataclass
class Batches:
    """Tensors shared by every job of a run, and how to turn rows into model input."""

    images: torch.Tensor
    """uint8 ``(N, C, S, S)`` on the CPU."""
    labels: torch.Tensor
    """``(N,)`` long or ``(N, K)`` float."""
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

    def n_batches(self, n_rows: int, batch_size: int, max_steps: int | None) -> int:
        n = math.ceil(n_rows / batch_size)
        return min(n, max_steps) if max_steps else n


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
        labels = torch.as_tensor(data.table.labels)
    labels = labels.float() if suite.task.type == "multilabel" else labels.long()
    return Batches(images, labels, stats[0], stats[1], train_transform(list(suite.augment), suite.input),
                   eval_transform(suite.input))


def for_model(batches: Batches, suite: Suite, spec: ModelSpec) -> tuple[Batches, dict[str, object] | None]:
    """``batches`` as model ``spec`` is fed: with ``input.normalization: model`` its own mean/std
    (:func:`cxrbench.data.transforms.model_normalization`) and that choice, for the job record;
    otherwise ``batches`` unchanged and None."""
    if suite.input.normalization != "model":
        return batches, None
    mean, std, source = model_normalization(spec.mean, spec.std, suite.input.channels)
    shape = (1, len(mean), 1, 1)
    out = replace(batches, mean=torch.tensor(mean).view(shape), std=torch.tensor(std).view(shape))
    return out, {"mean": mean, "std": std, "source": source}
