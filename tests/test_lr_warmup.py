"""``train.schedule.warmup_epochs``: a linear warm-up per step on top of the per-epoch schedule,
checked against hand-computed learning rates; off by default and then absent from the protocol hash."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from cxrbench.data.splits import Fold
from cxrbench.engine import trainer as trainer_module
from cxrbench.engine.trainer import Trainer
from cxrbench.suite.loader import load_suite, protocol_hash
from cxrbench.suite.schema import TrainConfig

X = torch.randn(24, 3, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


class _Data:
    """``Batches`` over a fixed tensor: 16 training rows in batches of 4 = 4 steps per epoch."""

    augment = None
    workers = 0

    def n_batches(self, n_rows, batch_size, max_steps):
        return math.ceil(n_rows / batch_size)

    def iterate(self, idx, batch_size, device, *, train, generator=None, max_steps=None, seed=None, epoch=None):
        for start in range(0, len(idx), batch_size):
            rows = np.asarray(idx[start:start + batch_size])
            yield X[rows], Y[rows]


def _fit(monkeypatch, warmup_epochs: float) -> tuple[list[float], list[float]]:
    """Train 3 epochs of SGD at lr 0.1 with a cosine schedule; the lr of every step, and the lr curve."""
    seen: list[float] = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(trainer_module, "make_optimizer", lambda cfg, params: Recording(params, lr=cfg.lr))
    cfg = TrainConfig(epochs=3, batch_size=4, optimizer={"name": "sgd", "lr": 0.1},
                      schedule={"name": "cosine", "warmup_epochs": warmup_epochs}, checkpoint="last")
    fold = Fold(0, np.arange(16), np.arange(16, 20), np.arange(20, 24))
    trainer = Trainer(nn.Linear(3, 2), _Data(), fold, cfg, "binary", ("a", "b"), 1, torch.device("cpu"), 0,
                      val_score=lambda p: {}, monitor="val_loss", higher_is_better=False)
    result = trainer.fit()
    return seen, result.curves["lr"]


def test_warm_up_ramps_per_step_then_hands_over_to_the_schedule(monkeypatch):
    e1, e2, e3 = 0.1, 0.1 * (1 + math.cos(math.pi / 3)) / 2, 0.1 * (1 + math.cos(2 * math.pi / 3)) / 2
    steps, curve = _fit(monkeypatch, 1.5)  # 6 warm-up steps across epochs 1 and 2
    expected = [e1 * k / 6 for k in (1, 2, 3, 4)] + [e2 * 5 / 6, e2, e2, e2] + [e3] * 4
    np.testing.assert_allclose(steps, expected, rtol=1e-12)
    np.testing.assert_allclose(curve, [e1, e2, e3], rtol=1e-12)  # the curve logs the schedule's lr


def test_no_warm_up_leaves_the_schedule_alone(monkeypatch):
    steps, curve = _fit(monkeypatch, 0.0)
    e = [0.1, 0.1 * (1 + math.cos(math.pi / 3)) / 2, 0.1 * (1 + math.cos(2 * math.pi / 3)) / 2]
    np.testing.assert_allclose(steps, [v for v in e for _ in range(4)], rtol=1e-12)
    np.testing.assert_allclose(curve, e, rtol=1e-12)


@pytest.mark.parametrize("value", ["-1", "x"])
def test_bad_values_are_refused(suite_file, value):
    from cxrbench.errors import SuiteError

    with pytest.raises(SuiteError, match="warmup_epochs"):
        load_suite(suite_file(), [f"train.schedule.warmup_epochs={value}"])


def test_protocol_hash_changes_only_when_set(suite_file):
    path = suite_file()
    plain = load_suite(path)
    assert plain.train.schedule.warmup_epochs == 0
    assert protocol_hash(load_suite(path, ["train.schedule.warmup_epochs=0"])) == protocol_hash(plain)
    assert protocol_hash(load_suite(path, ["train.schedule.warmup_epochs=1"])) != protocol_hash(plain)
