"""Engine training throughput vs a plain hand-written PyTorch loop on the same model and tensors.

Both loops are timed alternately in the same process (so machine load hits both alike); the ratio
of medians is printed and must stay within 5%.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
import torch.nn as nn

from cxrbench.data.splits import Fold
from cxrbench.engine.batches import Batches
from cxrbench.engine.trainer import Trainer
from cxrbench.models.factory import create_model
from cxrbench.plugins import get_registry
from cxrbench.specs import BuildRequest
from cxrbench.suite.schema import TrainConfig

N, SIZE, BATCH, ROUNDS = 256, 64, 32, 7


def _setup():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N, 1, SIZE, SIZE), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 2, (N,), generator=gen)
    mean, std = torch.tensor([0.5]).view(1, 1, 1, 1), torch.tensor([0.25]).view(1, 1, 1, 1)
    spec = get_registry().model("resnet18")
    model = create_model(spec, BuildRequest(num_classes=2, in_chans=1, image_size=SIZE))
    return images, labels, mean, std, model


def hand_loop(model, images, labels, mean, std, opt, loss_fn, gen):
    model.train()
    order = torch.randperm(N, generator=gen)
    for start in range(0, N, BATCH):
        rows = order[start:start + BATCH]
        x = images[rows].float().div_(255.0).sub_(mean).div_(std)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), labels[rows])
        loss.backward()
        opt.step()
        loss.item()


def test_engine_vs_hand_loop(benchmark):
    images, labels, mean, std, model = _setup()
    cfg = TrainConfig(epochs=1, batch_size=BATCH)
    fold = Fold(0, np.arange(N), np.arange(0), np.arange(0))
    trainer = Trainer(model, Batches(images, labels, mean, std), fold, cfg, "binary", ("a", "b"), 1,
                      torch.device("cpu"), 0, val_score=lambda p: {}, monitor="val_loss", higher_is_better=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)

    def engine_epoch():
        trainer._train_epoch(model, opt, None, gen, 1)

    def plain_epoch():
        hand_loop(model, images, labels, mean, std, opt, loss_fn, gen)

    engine_epoch(), plain_epoch()  # warm-up
    engine_t, plain_t = [], []
    for _ in range(ROUNDS):
        for fn, sink in ((engine_epoch, engine_t), (plain_epoch, plain_t)):
            t0 = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - t0)
    ratio = statistics.median(engine_t) / statistics.median(plain_t)
    print(f"\nengine epoch {statistics.median(engine_t):.3f}s vs hand loop {statistics.median(plain_t):.3f}s: "
          f"ratio {ratio:.3f} (images/s engine {N / statistics.median(engine_t):.0f})")
    benchmark.extra_info["engine_over_hand_loop"] = ratio
    benchmark.pedantic(engine_epoch, rounds=3, iterations=1)
    assert ratio < 1.05, f"engine is {100 * (ratio - 1):.1f}% slower than a plain loop"
