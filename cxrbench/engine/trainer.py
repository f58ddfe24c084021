"""The one training/evaluation loop every model goes through."""

from __future__ import annotations

import copy
import logging
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
from cxrbench.engine.precision import resolve_precision
from cxrbench.models.predict import predict
from cxrbench.specs import Predictions
from cxrbench.suite.schema import OptimizerConfig, ScheduleConfig, TrainConfig


log = logging.getLogger(__name__)


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


class LinearWarmup:
    """``schedule.warmup_epochs``: scale each group's lr by ``(step + 1) / steps`` over the first
    ``steps`` optimisation steps. It works on top of the per-epoch schedule: :meth:`end_epoch` puts the
    schedule's own value back before that schedule steps, so the schedule is unchanged after warm-up."""

    def __init__(self, opt: torch.optim.Optimizer, steps: int):
        self.opt, self.steps, self.step = opt, steps, 0
        self._base: list[float] | None = None

    def before_step(self) -> None:
        """Set the warm-up lr of the coming step (no-op once warm-up is over)."""
        if self.step < self.steps:
            if self._base is None:
                self._base = [g["lr"] for g in self.opt.param_groups]
            for g, base in zip(self.opt.param_groups, self._base):
                g["lr"] = base * (self.step + 1) / self.steps
        self.step += 1

    def end_epoch(self) -> None:
        """Restore the schedule's lr (call before the per-epoch schedule steps)."""
        if self._base is not None:
            for g, base in zip(self.opt.param_groups, self._base):
                g["lr"] = base
            self._base = None


class MaskedBCEWithLogits(nn.Module):
    """BCE-with-logits averaged over the *known* label entries: a NaN target (not annotated, see
    :func:`cxrbench.engine.batches.label_tensor`) has weight 0; a batch with none known gives 0.
    Without NaNs this is ``nn.BCEWithLogitsLoss()``."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = logits.float(), target.float()  # fp32 under autocast too
        known = ~torch.isnan(target)
        weight = known.float()
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, torch.where(known, target, torch.zeros_like(target)), weight=weight, reduction="sum")
        return loss / weight.sum().clamp(min=1.0)


def make_loss(task: str) -> nn.Module:
    """Cross-entropy over softmax classes, or BCE-with-logits per known label (masked entries skipped)."""
    return MaskedBCEWithLogits() if task == "multilabel" else nn.CrossEntropyLoss()


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
        self.precision = resolve_precision(train_cfg.precision, device)
        self.channels_last = device.type == "cuda"
        self.loss_fn = make_loss(task)
        self.compile_status = "on" if train_cfg.compile else "off"
        self._forward: Callable[[torch.Tensor], torch.Tensor] = model
        self._compiled_ok = not train_cfg.compile
        self._warmup: LinearWarmup | None = None

    def runtime(self) -> dict[str, Any]:
        """How this job ran on its device (recorded with every job): precision, resampler, loader, compile."""
        return {"device": str(self.device), "precision": self.precision.name, "grad_scaler": self.precision.scaler,
                "channels_last": self.channels_last, "compile": self.compile_status,
                "resampler": self.data.resampler(self.device) if self.data.augment is not None else None,
                "loader_workers": self.data.workers}

    def compute_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (the one place the loss is called)."""
        return self.loss_fn(logits, y)

    def _autocast(self):
        p = self.precision
        return torch.autocast(self.device.type, dtype=p.dtype or torch.float32, enabled=p.dtype is not None)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _compile(self, model: nn.Module) -> None:
        if not self.cfg.compile:
            return
        try:
            self._forward = torch.compile(model)
        except Exception as exc:  # noqa: BLE001 - compilation is an optimisation, never a failure
            self._compile_failed(exc)

    def _compile_failed(self, exc: BaseException) -> None:
        message = f"train.compile: torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); " \
                  f"training without compilation"
        log.warning(message)
        if self.progress is not None:
            self.progress.log(f"[yellow]{message}[/yellow]")
        self.compile_status = f"failed: {type(exc).__name__}"
        self._forward, self._compiled_ok = self.model, True

    def fit(self) -> FitResult:
        """Train for ``epochs`` with early stopping; restores the best epoch's weights when asked."""
        cfg, model = self.cfg, self.model
        gen = seed_everything(self.seed, self.device)
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self._compile(model)
        if cfg.epochs == 0:  # evaluation only (zero-shot head or a trained `weights:` file)
            return FitResult(curves={"epoch": []}, best_epoch=None, epochs_run=0)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters (check its freeze policy)")
        opt = make_optimizer(cfg.optimizer, params)
        sched = make_schedule(cfg.schedule, opt, cfg.epochs)
        steps_per_epoch = self.data.n_batches(len(self.fold.train), cfg.batch_size, cfg.max_steps_per_epoch)
        self._warmup = (LinearWarmup(opt, math.ceil(cfg.schedule.warmup_epochs * steps_per_epoch))
                        if cfg.schedule.warmup_epochs > 0 else None)
        scaler = torch.amp.GradScaler(self.device.type) if self.precision.scaler else None
        result = FitResult()
        best_value, best_state, waited = None, None, 0
        has_val = len(self.fold.val) > 0
        start = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            lr = opt.param_groups[0]["lr"]
            train_loss = self._train_epoch(model, opt, scaler, gen, epoch)
            if self._warmup is not None:
                self._warmup.end_epoch()
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
        total, count = torch.zeros((), device=self.device), 0  # summed on the device: no per-step sync
        for x, y in self.data.iterate(self.fold.train, cfg.batch_size, self.device, train=True,
                                      generator=gen, max_steps=cfg.max_steps_per_epoch, seed=self.seed, epoch=epoch):
            loss = self._step(model, opt, scaler, self._input(x), y)
            total += loss.detach().float() * len(x)
            count += len(x)
            if self.progress is not None:
                self.progress.advance_batch(loss.detach())  # read (a sync) only when the bar redraws
        mean = total.item() / max(count, 1)
        if not math.isfinite(mean):
            raise FloatingPointError(f"training loss became {mean} in epoch {epoch}; lower the learning rate")
        return mean

    def _step(self, model: nn.Module, opt: torch.optim.Optimizer, scaler, x: torch.Tensor,
              y: torch.Tensor) -> torch.Tensor:
        """One optimisation step; the first compiled step falls back to eager if compilation fails."""
        if self._warmup is not None:
            self._warmup.before_step()
        if not self._compiled_ok:
            try:
                loss = self._backward(opt, scaler, x, y)
                self._compiled_ok = True
            except Exception as exc:  # noqa: BLE001 - dynamo/inductor errors surface at the first call
                self._compile_failed(exc)
                loss = self._backward(opt, scaler, x, y)
        else:
            loss = self._backward(opt, scaler, x, y)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        return loss

    def _backward(self, opt: torch.optim.Optimizer, scaler, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.compute_loss(self._forward(x), y)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        return loss

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
                    with self._autocast():
                        model(self._input(x))
        finally:
            for m, momentum in zip(bns, momenta):
                m.momentum = momentum

    def predict(self, idx: np.ndarray, batch_size: int | None = None) -> Predictions:
        """Probabilities, predictions and mean loss on rows ``idx`` (eval mode, no augmentation)."""
        model = self.model
        model.eval()
        bs = batch_size or self.cfg.eval_batch_size or self.cfg.batch_size

        def forward(x: torch.Tensor) -> torch.Tensor:
            with self._autocast():
                return model(self._input(x))

        return predict(forward, self.data.iterate(idx, bs, self.device, train=False), self.task,  # type: ignore[arg-type]
                       self.class_names, self.positive, loss_fn=self.loss_fn)
