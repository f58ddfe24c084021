"""The tensors every job of a run shares, and how rows become normalised model input.

Rows are gathered from the (memory-mapped) image array by background workers (a torch
``DataLoader`` over whole batches, pinned memory and prefetch on CUDA) or in this process
(``input.workers: 0``). Training augmentation (:mod:`cxrbench.data.augment`) runs either in those
workers (``torchvision`` resampler, CPU) or on the training device for the whole batch at once
(``kornia`` resampler); its random parameters depend only on (seed, epoch, row), never on the
worker count or batch size.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cxrbench.data.augment import AugmentPlan
from cxrbench.data.augment_batched import apply_batched, kornia_available
from cxrbench.data.transforms import eval_transform, model_normalization, normalization_stats
from cxrbench.errors import SuiteError
from cxrbench.models.predict import normalize, with_unknown_as_nan

if TYPE_CHECKING:  # pragma: no cover
    from cxrbench.data.prepare import PreparedData
    from cxrbench.specs import ModelInput, ModelSpec
    from cxrbench.suite.schema import Suite

RESAMPLERS = ("torchvision", "kornia")


def resolve_resampler(augment_device: str, device: torch.device) -> str:
    """``input.augment_device`` on ``device`` -> the resampler that runs: torchvision (CPU) or kornia.

    ``auto``: kornia on a CUDA training device when kornia is installed, else torchvision.
    """
    if augment_device == "cpu":
        return "torchvision"
    if augment_device == "cuda":
        if device.type != "cuda":
            raise SuiteError(f"input.augment_device: cuda, but jobs train on {device}; use auto or cpu")
        if not kornia_available():
            raise SuiteError("input.augment_device: cuda needs kornia: pip install 'cxrbench[gpu]'")
        return "kornia"
    return "kornia" if device.type == "cuda" and kornia_available() else "torchvision"


def resolve_workers(workers: int | str, device: torch.device) -> int:
    """``input.workers`` -> loader processes: ``auto`` is 0 on the CPU (the cores train), else up to 8."""
    if workers != "auto":
        return int(workers)
    if device.type == "cpu":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class _Rows(Dataset):
    """Item ``k`` = batch ``k``: (uint8 images, labels, row indices), augmented on the CPU when asked."""

    def __init__(self, owner: "Batches", chunks: list[torch.Tensor], train: bool, cpu_augment: bool,
                 seed: int, epoch: int):
        self.owner, self.chunks, self.train, self.cpu_augment = owner, chunks, train, cpu_augment
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows, b = self.chunks[k], self.owner
        x = b.images[rows]
        if self.train and b.augment is not None and self.cpu_augment:
            x = b.augment.apply_cpu(x, b.augment.sample(self.seed, self.epoch, rows.numpy()))
        else:
            transform = b.train_transform if self.train else b.eval_transform
            if transform is not None:
                x = torch.stack([transform(img) for img in x])
        return x, b.labels[rows], rows


def _context() -> Any:
    """fork where the OS has it: workers share the memory-mapped images instead of receiving a copy."""
    return multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None


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
    """A per-image callable (the pre-``augment`` path; used when ``augment`` is None)."""
    eval_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    augment: AugmentPlan | None = None
    augment_device: str = "auto"
    """``input.augment_device``: auto | cpu | cuda."""
    workers: int | str = 0
    """``input.workers``: loader processes (0 = this process), or auto."""

    def resampler(self, device: torch.device) -> str:
        """Which resampler augments training batches on ``device``."""
        return resolve_resampler(self.augment_device, device)

    def iterate(self, idx: np.ndarray, batch_size: int, device: torch.device, *, train: bool,
                generator: torch.Generator | None = None, max_steps: int | None = None, seed: int = 0,
                epoch: int = 0, workers: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield normalised ``(x, y)`` batches of rows ``idx`` on ``device`` (shuffled with ``generator``
        and augmented with draws of (``seed``, ``epoch``, row) when ``train``)."""
        order = torch.as_tensor(idx, dtype=torch.long)
        if train:
            order = order[torch.randperm(len(order), generator=generator)]
            if len(order) % batch_size == 1 and len(order) > 1:
                order = order[:-1]  # a batch of one breaks BatchNorm in train mode
        chunks = list(torch.split(order, batch_size)) if len(order) else []
        if max_steps is not None:
            chunks = chunks[:max_steps]
        on_device = train and self.augment is not None and self.resampler(device) == "kornia"
        source = _Rows(self, chunks, train, not on_device, seed, epoch)
        n_workers = resolve_workers(self.workers if workers is None else workers, device)
        mean, std = self.mean.to(device), self.std.to(device)
        if n_workers > 0 and len(chunks) > 1:
            loader: Any = DataLoader(source, batch_size=None, shuffle=False, num_workers=min(n_workers, len(chunks)),
                                     pin_memory=device.type == "cuda", prefetch_factor=4,
                                     multiprocessing_context=_context())
        else:
            loader = (source[k] for k in range(len(source)))
        for x, y, rows in loader:
            x = x.to(device, non_blocking=True)
            if on_device:
                x = apply_batched(x, self.augment.sample(seed, epoch, rows.numpy()), self.augment.size)  # type: ignore[union-attr]
            yield normalize(x, mean, std), y.to(device, non_blocking=True)

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
    return Batches(images, labels, stats[0], stats[1], None, eval_transform(suite.input),
                   AugmentPlan.from_suite(list(suite.augment), suite.input), suite.input.augment_device,
                   suite.input.workers)


def model_input_for(suite: Suite, spec: ModelSpec) -> ModelInput | None:
    """What ``spec`` is fed: its declared ``input`` when ``required`` (e.g. TorchXRayVision's range);
    with ``input.normalization: model`` its preferred mean/std (timm pretrained_cfg, torchvision weights'
    transforms; ImageNet's when it declares none, :func:`cxrbench.data.transforms.model_normalization`);
    else the suite's statistics (None, or the declaration's channels/size without statistics)."""
    from cxrbench.specs import ModelInput

    declared = spec.input
    if declared is not None and declared.required and declared.stats(suite.input.channels) is not None:
        return declared
    if suite.input.normalization != "model":
        return declared if declared is not None and declared.required else None
    own = declared or ModelInput()
    mean, std, source = model_normalization(own.mean, own.std, suite.input.channels)
    return ModelInput(channels=own.channels, image_size=own.image_size, mean=tuple(mean), std=tuple(std),
                      name=f"{spec.name} ({source})")
