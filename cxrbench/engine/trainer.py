"""The one training/evaluation loop every model goes through."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from cxrbench.data.splits import Fold
from cxrbench.engine.batches import Batches
from cxrbench.engine.device import seed_everything
from cxrbench.models.predict import predict
from cxrbench.specs import Predictions
from cxrbench.suite.schema import OptimizerConfig, ScheduleConfig, TrainConfig


def make_optimizer(cfg: OptimizerConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov), Adam or AdamW with weight decay."""
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_schedule(cfg: ScheduleConfig, opt: torch.optim.Optimizer, epochs: int):
    """Per-epoch LR schedule, or ``None``."""
    if cfg.name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=cfg.min_lr)
    return None


def make_loss(task: str) -> nn.Module:
    """Cross-entropy over softmax classes, or BCE-with-logits per label."""
    return nn.BCEWithLogitsLoss() if task == "multilabel" else nn.CrossEntropyLoss()


@dataclass
class FitResult:
    """What training produced: curves, the chosen epoch, and timings."""

    curves: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    epochs_run: int = 0
    seconds: float = 0.0


class Trainer:
    """Train one model on one fold with one seed, then predict on any split."""

    def __init__(self, model: nn.Module, data: Batches, fold: Fold, train_cfg: TrainConfig, task: str,
                 class_names: tuple[str, ...], positive: int, device: torch.device, seed: int,
                 val_score: Callable[[Predictions], dict[str, float]], monitor: str, higher_is_better: bool,
                 progress: Any = None, on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
                 freeze_bn: Callable[[nn.Module], Any] | None = None):
        self.model, self.data, self.fold, self.cfg = model, data, fold, train_cfg
        self.task, self.class_names, self.positive = task, class_names, positive
        self.device, self.seed = device, seed
        self.val_score, self.monitor, self.higher = val_score, monitor, higher_is_better
        self.progress, self.on_epoch_end, self.freeze_bn = progress, on_epoch_end, freeze_bn
        self.amp = device.type == "cuda"
        self.loss_fn = make_loss(task)

    def fit(self) -> FitResult:
        """Train for ``epochs`` with early stopping; restores the best epoch's weights when asked."""
        cfg, model = self.cfg, self.model
        gen = seed_everything(self.seed)
        model.to(self.device)
        if self.device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters (check its freeze policy)")
        opt = make_optimizer(cfg.optimizer, params)
        sched = make_schedule(cfg.schedule, opt, cfg.epochs)
        scaler = torch.amp.GradScaler("cuda") if self.amp else None
        result = FitResult()
        best_value, best_state, waited = None, None, 0
        has_val = len(self.fold.val) > 0
        start = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            lr = opt.param_groups[0]["lr"]
            train_loss = self._train_epoch(model, opt, scaler, gen, epoch)
            self.recalibrate_bn()
            logs: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "lr": lr}
            if has_val:
                val = self.predict(self.fold.val)
                logs["val_loss"] = val.loss
                logs.update({f"val_{k}": v for k, v in self.val_score(val).items()})
            if sched is not None:
                sched.step()
            for key, value in logs.items():
                if key != "epoch":
                    result.curves.setdefault(key, []).append(float(value))
            result.epochs_run = epoch
            current = logs.get(self.monitor) if has_val else None
            if current is not None and not math.isnan(current) and (
                    best_value is None or self._improved(current, best_value)):
                best_value, waited, result.best_epoch = current, 0, epoch
                if cfg.checkpoint == "best":
                    best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
            if self.progress is not None:
                self.progress.end_epoch(logs)
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch, logs)
            patience = cfg.early_stopping.patience
            if patience is not None and has_val and waited >= patience:
                break
        if cfg.checkpoint == "best" and best_state is not None:
            model.load_state_dict(best_state)
        else:
            result.best_epoch = result.epochs_run
        result.curves["epoch"] = [float(e) for e in range(1, result.epochs_run + 1)]
        result.seconds = time.perf_counter() - start
        return result

    def _improved(self, current: float, best: float) -> bool:
        delta = self.cfg.early_stopping.min_delta
        return current > best + delta if self.higher else current < best - delta

    def _train_epoch(self, model: nn.Module, opt: torch.optim.Optimizer, scaler, gen: torch.Generator,
                     epoch: int) -> float:
        model.train()
        if self.freeze_bn is not None:
            self.freeze_bn(model)
        cfg = self.cfg
        if self.progress is not None:
            self.progress.start_epoch(epoch, self.data.n_batches(len(self.fold.train), cfg.batch_size,
                                                                 cfg.max_steps_per_epoch))
        total, count = 0.0, 0
        for x, y in self.data.iterate(self.fold.train, cfg.batch_size, self.device, train=True,
                                      generator=gen, max_steps=cfg.max_steps_per_epoch):
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                loss = self.loss_fn(model(x), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} in epoch {epoch}; "
                                         f"lower the learning rate")
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            total += loss.item() * len(x)
            count += len(x)
            if self.progress is not None:
                self.progress.advance_batch(loss.item())
        return total / max(count, 1)

    def recalibrate_bn(self) -> None:
        """``train.bn_recalibration``: recompute BatchNorm running statistics (a cumulative average over
        that many training batches of one fixed sample, eval transforms) with the current weights."""
        n, model = self.cfg.bn_recalibration, self.model
        if not n or len(self.fold.train) == 0:
            return
        model.train()
        if self.freeze_bn is not None:
            self.freeze_bn(model)  # frozen layers keep their statistics
        bns = [m for m in model.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: every batch weighs the same
        rows = np.random.default_rng(self.seed).permutation(self.fold.train)  # not the training stream
        try:
            with torch.no_grad():
                for x, _ in self.data.iterate(rows, self.cfg.batch_size, self.device, train=False, max_steps=n):
                    if len(x) < 2:
                        continue  # a batch of one has no variance
                    if self.device.type == "cuda":
                        x = x.contiguous(memory_format=torch.channels_last)
                    with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                        model(x)
        finally:
            for m, momentum in zip(bns, momenta):
                m.momentum = momentum

    def predict(self, idx: np.ndarray, batch_size: int | None = None) -> Predictions:
        """Probabilities, predictions and mean loss on rows ``idx`` (eval mode, no augmentation)."""
        model = self.model
        model.eval()
        bs = batch_size or self.cfg.eval_batch_size or self.cfg.batch_size

        def forward(x: torch.Tensor) -> torch.Tensor:
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                return model(x)

        return predict(forward, self.data.iterate(idx, bs, self.device, train=False), self.task,  # type: ignore[arg-type]
                       self.class_names, self.positive, loss_fn=self.loss_fn)
