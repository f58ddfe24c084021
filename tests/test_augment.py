"""Augmentation draws depend only on (seed, epoch, row); the two resamplers; what enters the protocol hash."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from cxrbench.data.augment import AugmentPlan, uniforms
from cxrbench.data.augment_batched import apply_batched
from cxrbench.engine.batches import Batches
from cxrbench.engine.precision import resolve_precision, runtime_protocol
from cxrbench.suite.loader import protocol_hash
from cxrbench.suite.schema import (HorizontalFlip, InputConfig, RandomCrop, RandomResizedCrop, Rotation, Suite,
                                   VerticalFlip)

M = 2**64 - 1


def _mix_ref(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def _uniform_ref(seed: int, epoch: int, index: int, k: int) -> float:
    """Pure-Python splitmix64 reference of :func:`uniforms`."""
    key = _mix_ref(_mix_ref(seed % 2**64) ^ epoch)
    row = _mix_ref(key ^ index)
    return (_mix_ref(row ^ _mix_ref(k + (1 << 40))) >> 11) * 2.0 ** -53


def test_uniforms_equal_a_scalar_reference_and_ignore_batch_company():
    u = uniforms(7, 3, np.array([0, 5, 123456]), 4)
    for i, index in enumerate([0, 5, 123456]):
        for k in range(4):
            assert u[i, k] == _uniform_ref(7, 3, index, k)
    np.testing.assert_array_equal(uniforms(7, 3, np.array([5]), 4)[0], u[1])
    assert not np.array_equal(uniforms(7, 4, np.array([5]), 4), uniforms(7, 3, np.array([5]), 4))
    big = uniforms(0, 0, np.arange(20000), 2)
    assert abs(big.mean() - 0.5) < 0.01 and 0 <= big.min() and big.max() < 1


def _images(n: int = 20, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.randint(0, 256, (n, 3, 8, 8), generator=g).float()
    return torch.nn.functional.interpolate(small, size=size, mode="bilinear").round().to(torch.uint8)


STEPS = [RandomResizedCrop(name="random_resized_crop", scale=(0.3, 1.0)), HorizontalFlip(name="hflip"),
         Rotation(name="rotation", degrees=10)]


def _augmented(workers: int, batch_size: int) -> torch.Tensor:
    plan = AugmentPlan.from_suite(STEPS, InputConfig(image_size=24, cache_size=32))
    images = _images()
    b = Batches(images, torch.zeros(len(images), dtype=torch.long), torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1),
                augment=plan, augment_device="cpu", workers=workers)
    gen = torch.Generator().manual_seed(3)
    xs = [x for x, _ in b.iterate(np.arange(20), batch_size, torch.device("cpu"), train=True, generator=gen,
                                  seed=11, epoch=2)]
    return torch.cat(xs)


def test_augmented_pixels_do_not_depend_on_workers_or_batch_size():
    ref = _augmented(0, 4)
    for workers, bs in ((2, 4), (0, 5), (2, 5)):
        assert torch.equal(_augmented(workers, bs), ref), (workers, bs)
    # and they are what the plan gives row by row (the shuffled order is the generator's)
    order = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    plan = AugmentPlan.from_suite(STEPS, InputConfig(image_size=24, cache_size=32))
    row = int(order[7])
    one = plan.apply_cpu(_images()[[row]], plan.sample(11, 2, np.array([row]))).float() / 255.0
    assert torch.equal(ref[7:8], one)


def test_resized_crop_draws_follow_torchvisions_rule():
    plan = AugmentPlan.from_suite([RandomResizedCrop(name="random_resized_crop")], InputConfig(image_size=16,
                                                                                                cache_size=40))
    p = plan.sample(0, 0, np.arange(4000))[0]
    area = p["h"] * p["w"] / 40**2
    ratio = p["w"] / p["h"]
    assert (p["top"] >= 0).all() and (p["top"] + p["h"] <= 40).all() and (p["left"] + p["w"] <= 40).all()
    assert area.min() >= 0.08 * 0.9 and area.max() <= 1.0
    assert np.quantile(ratio, 0.02) > 0.7 and np.quantile(ratio, 0.98) < 1.4


@pytest.mark.parametrize("steps", [[HorizontalFlip(name="hflip"), VerticalFlip(name="vflip")],
                                   [RandomCrop(name="random_crop", padding=4)], []])
def test_flips_and_crops_give_the_same_pixels_from_both_resamplers(steps):
    plan = AugmentPlan.from_suite(steps, InputConfig(image_size=24, cache_size=32))
    images = _images(8)
    params = plan.sample(5, 1, np.arange(8))
    cpu = plan.apply_cpu(images, params).float()
    batched = apply_batched(images, plan.sample(5, 1, np.arange(8)), plan.size)
    assert (cpu - batched).abs().max() < 1e-2  # float noise of the bilinear weights at integer positions
    assert not plan.interpolates


def test_a_quarter_turn_is_exact_in_both_resamplers():
    images = _images(2)
    p = [{"op": "affine", "in": 32, "angle": np.array([-90.0, -90.0]), "tx": np.zeros(2), "ty": np.zeros(2),
          "scale": np.ones(2)}]
    reference = F.rotate(images, 90).float()  # torchvision's rotate(90) is torch.rot90
    plan = AugmentPlan((Rotation(name="rotation"),), 32, 32)
    assert torch.equal(plan.apply_cpu(images, p).float(), reference)
    assert (apply_batched(images, p, 32) - reference).abs().max() < 1e-2


def test_interpolating_steps_differ_beyond_float_noise_so_the_resampler_is_hashed():
    """The decision test: random_resized_crop / rotation pixels differ by whole grey levels between
    the resamplers (antialiasing, bilinear vs nearest, one composed warp), so a kornia run hashes it."""
    plan = AugmentPlan.from_suite(STEPS, InputConfig(image_size=24, cache_size=32))
    images = _images(16)
    cpu = plan.apply_cpu(images, plan.sample(1, 1, np.arange(16))).float()
    batched = apply_batched(images, plan.sample(1, 1, np.arange(16)), plan.size)
    assert (cpu - batched).abs().mean() > 1.0 and plan.interpolates


def _suite(**changes) -> Suite:
    base = {"name": "s", "task": {"type": "binary", "classes": ["a", "b"]}, "dataset": {"name": "synthetic"},
            "models": ["lenet"], "augment": [{"name": "random_resized_crop"}]}
    for key, value in changes.items():
        base[key] = value
    return Suite.model_validate(base)


def test_protocol_hash_keeps_cpu_runs_and_hashes_what_changes_results():
    plain = _suite()
    assert runtime_protocol(plain, torch.device("cpu")) == {}
    same = [_suite(train={"compile": True}), _suite(input={"workers": 2}),
            _suite(input={"augment_device": "cpu"}), _suite(train={"precision": "fp32"})]
    assert {protocol_hash(s, runtime_protocol(s, torch.device("cpu"))) for s in same} == {protocol_hash(plain)}
    bf16 = _suite(train={"precision": "bf16"})
    assert runtime_protocol(bf16, torch.device("cpu")) == {"precision": "bf16"}
    assert protocol_hash(bf16, {"precision": "bf16"}) != protocol_hash(plain)
    assert protocol_hash(plain, {"resampler": "kornia"}) != protocol_hash(plain)


def test_precision_resolves_per_device(monkeypatch):
    assert resolve_precision("auto", torch.device("cpu")).name == "fp32"
    import cxrbench.engine.precision as precision

    monkeypatch.setattr(precision, "bf16_supported", lambda device: True)
    assert resolve_precision("auto", torch.device("cuda")) == precision.Precision("bf16", torch.bfloat16, False)
    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)
    assert resolve_precision("auto", torch.device("cuda")) == precision.Precision("fp16", torch.float16, True)
    assert resolve_precision("bf16", torch.device("cpu")).dtype == torch.bfloat16
