"""Issue 15: the data path and the engine at the speed of the device.

(a) data path alone, images/s, for the pneumonia_binary augmentations (random_resized_crop + hflip
    at 224 px, from a 256 px cache here) and the chestxray14_mdconv ones (random_crop + rotation
    + hflip, cached 512 -> 448): old path (per-image torchvision v2 Compose in the loop) vs new
    (per-sample draws; torchvision in 0 / 1 / 2 loader workers, and kornia on the GPU);
(b) engine training throughput with augmentation / the same model on ready-made device tensors
    (the compute bound), resnet18 and mobilenet_v2 at 224 px: printed on CPU, >= 0.9 on CUDA.
(c) is benchmarks/test_engine_throughput.py (engine vs a hand loop, >= 0.95).
CUDA cases skip cleanly without a GPU. Figures are printed (``make bench`` runs with ``-s``).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from cxrbench.data.augment import AugmentPlan
from cxrbench.data.splits import Fold
from cxrbench.data.transforms import train_transform
from cxrbench.engine.batches import Batches
from cxrbench.engine.trainer import Trainer
from cxrbench.models.factory import create_model
from cxrbench.plugins import get_registry
from cxrbench.specs import BuildRequest
from cxrbench.suite.schema import HorizontalFlip, InputConfig, RandomCrop, RandomResizedCrop, Rotation, TrainConfig

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
PROTOCOLS = {
    "pneumonia_binary@224": ([RandomResizedCrop(name="random_resized_crop"), HorizontalFlip(name="hflip")],
                             InputConfig(image_size=224, cache_size=256)),
    "chestxray14_mdconv@448": ([RandomCrop(name="random_crop"), Rotation(name="rotation", degrees=10),
                               HorizontalFlip(name="hflip")], InputConfig(image_size=448, cache_size=512)),
}


def _batches(cfg: InputConfig, n: int, **kw) -> Batches:
    images = torch.randint(0, 256, (n, 3, cfg.decode_size, cfg.decode_size), dtype=torch.uint8)
    mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25)
    return Batches(images, torch.randint(0, 2, (n,)), mean, std, **kw)


def _ips(batches: Batches, n: int, device: torch.device, workers: int = 0, rounds: int = 2) -> float:
    best = float("inf")
    for r in range(rounds):
        t0 = time.perf_counter()
        for x, _ in batches.iterate(np.arange(n), 32, device, train=True, generator=torch.Generator().manual_seed(r),
                                    seed=0, epoch=r, workers=workers):
            pass
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return n / best


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_a_data_path_old_vs_new_cpu(benchmark, protocol):
    steps, cfg = PROTOCOLS[protocol]
    n = 128 if cfg.image_size == 224 else 64
    cpu = torch.device("cpu")
    old = _ips(_batches(cfg, n, train_transform=train_transform(steps, cfg)), n, cpu)
    plan = AugmentPlan.from_suite(steps, cfg)
    new = {w: _ips(_batches(cfg, n, augment=plan, augment_device="cpu"), n, cpu, workers=w) for w in (0, 1, 2)}
    print(f"\n(a) {protocol} CPU images/s: old path {old:.0f}; new, torchvision in 0/1/2 workers "
          + "/".join(f"{v:.0f}" for v in new.values()))
    benchmark.extra_info.update(old=old, new=new)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert min(new.values()) > 0


@CUDA
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_a_data_path_cuda(benchmark, protocol):
    pytest.importorskip("kornia")
    steps, cfg = PROTOCOLS[protocol]
    n, dev = 1024, torch.device("cuda")
    plan = AugmentPlan.from_suite(steps, cfg)
    old = _ips(_batches(cfg, 256, train_transform=train_transform(steps, cfg)), 256, dev)
    cpu_aug = {w: _ips(_batches(cfg, n, augment=plan, augment_device="cpu"), n, dev, workers=w) for w in (1, 2, 8)}
    kornia = {w: _ips(_batches(cfg, n, augment=plan, augment_device="cuda"), n, dev, workers=w) for w in (0, 1, 2)}
    print(f"\n(a) {protocol} CUDA images/s: old {old:.0f}; torchvision in 1/2/8 workers "
          + "/".join(f"{v:.0f}" for v in cpu_aug.values()) + "; kornia with 0/1/2 gather workers "
          + "/".join(f"{v:.0f}" for v in kornia.values()))
    benchmark.extra_info.update(old=old, torchvision=cpu_aug, kornia=kornia)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def _model(name: str) -> torch.nn.Module:
    return create_model(get_registry().model(name), BuildRequest(num_classes=2, in_chans=3, image_size=224))


def _ratio(name: str, device: torch.device, n: int, steps_bound: int, workers: int) -> tuple[float, float, float]:
    """(engine images/s with augmentation, images/s on ready-made device tensors, their ratio)."""
    steps, cfg = PROTOCOLS["pneumonia_binary@224"]
    batches = _batches(cfg, n, augment=AugmentPlan.from_suite(steps, cfg), workers=workers)
    torch.manual_seed(0)
    model = _model(name)
    train = TrainConfig(epochs=1, batch_size=32)
    trainer = Trainer(model, batches, Fold(0, np.arange(n), np.arange(0), np.arange(0)), train, "binary", ("a", "b"),
                      1, device, 0, val_score=lambda p: {}, monitor="val_loss", higher_is_better=False)
    model.to(device)
    if trainer.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if trainer.precision.scaler else None
    gen = torch.Generator().manual_seed(0)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    trainer._train_epoch(model, opt, scaler, gen, 1)  # warm-up (and worker start-up)
    sync()
    t0 = time.perf_counter()
    trainer._train_epoch(model, opt, scaler, gen, 2)
    sync()
    engine = n / (time.perf_counter() - t0)
    x = torch.randn(32, 3, 224, 224, device=device)
    x = trainer._input(x)
    y = torch.randint(0, 2, (32,), device=device)
    trainer._step(model, opt, scaler, x, y)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps_bound):
        trainer._step(model, opt, scaler, x, y)
    sync()
    bound = 32 * steps_bound / (time.perf_counter() - t0)
    return engine, bound, engine / bound


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_b_engine_over_compute_bound_cpu(benchmark, name):
    engine, bound, ratio = _ratio(name, torch.device("cpu"), 64, 2, workers=0)
    print(f"\n(b) {name} 224px CPU: engine+augmentation {engine:.1f} img/s, ready tensors {bound:.1f} img/s, "
          f"ratio {ratio:.2f}")
    benchmark.extra_info.update(engine=engine, bound=bound, ratio=ratio)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert ratio > 0.5


@CUDA
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_b_engine_over_compute_bound_cuda(benchmark, name):
    pytest.importorskip("kornia")
    engine, bound, ratio = _ratio(name, torch.device("cuda"), 4096, 64, workers=2)
    print(f"\n(b) {name} 224px CUDA: engine+augmentation {engine:.0f} img/s, ready tensors {bound:.0f} img/s, "
          f"ratio {ratio:.2f}")
    benchmark.extra_info.update(engine=engine, bound=bound, ratio=ratio)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert ratio >= 0.9, f"{name}: the data path holds training to {ratio:.2f} of the compute bound"
