"""``train.bn_recalibration``: BatchNorm running statistics recomputed over N training batches before
evaluation, checked against numpy; off by default and then absent from the protocol hash."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from cxrbench.data.splits import Fold
from cxrbench.engine.trainer import Trainer
from cxrbench.suite.loader import load_suite, protocol_hash
from cxrbench.suite.schema import TrainConfig

X = torch.randn(30, 2, 4, 4, generator=torch.Generator().manual_seed(0)) * 3 + 1


class _Data:
    """``Batches.iterate`` over a fixed tensor, recording the rows it was asked for."""

    def __init__(self):
        self.seen: list[np.ndarray] = []

    def iterate(self, idx, batch_size, device, *, train, generator=None, max_steps=None):
        assert not train  # eval transforms, and the training shuffle stream is left alone
        for step, start in enumerate(range(0, len(idx), batch_size)):
            if max_steps is not None and step >= max_steps:
                return
            rows = np.asarray(idx[start:start + batch_size])
            self.seen.append(rows)
            yield X[rows], torch.zeros(len(rows), dtype=torch.long)


def _trainer(model, n_batches, freeze_bn=None):
    cfg = TrainConfig(batch_size=4, bn_recalibration=n_batches)
    fold = Fold(0, np.arange(20), np.arange(20, 25), np.arange(25, 30))
    return Trainer(model, _Data(), fold, cfg, "binary", ("a", "b"), 1, torch.device("cpu"), 7,
                   val_score=lambda p: {}, monitor="val_loss", higher_is_better=False, freeze_bn=freeze_bn)


def test_running_stats_are_the_average_over_the_batches():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3, momentum=0.01), nn.Flatten(), nn.Linear(48, 2))
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    trainer = _trainer(model, 3)
    trainer.recalibrate_bn()
    rows = np.random.default_rng(7).permutation(np.arange(20))
    assert [r.tolist() for r in trainer.data.seen] == [rows[i:i + 4].tolist() for i in (0, 4, 8)]
    with torch.no_grad():
        feats = [model[0](X[r]).numpy() for r in trainer.data.seen]
    means = [f.mean(axis=(0, 2, 3)) for f in feats]
    vars_ = [f.transpose(1, 0, 2, 3).reshape(3, -1).var(axis=1, ddof=1) for f in feats]
    bn = model[1]
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean(means, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean(vars_, axis=0), rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.01
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k


def test_off_by_default_and_frozen_layers_are_kept():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(48, 2))
    trainer = _trainer(model, 0)
    trainer.recalibrate_bn()
    assert trainer.data.seen == [] and torch.equal(model[1].running_mean, torch.zeros(3))
    trainer = _trainer(model, 2, freeze_bn=lambda m: m[1].eval())
    trainer.recalibrate_bn()
    assert len(trainer.data.seen) == 2 and torch.equal(model[1].running_mean, torch.zeros(3))


def test_protocol_hash_changes_only_when_set(suite_file):
    path = suite_file()
    plain = load_suite(path)
    assert plain.train.bn_recalibration == 0
    assert protocol_hash(load_suite(path, ["train.bn_recalibration=0"])) == protocol_hash(plain)
    assert protocol_hash(load_suite(path, ["train.bn_recalibration=4"])) != protocol_hash(plain)
