"""``train.head_init: normal``: every fresh head drawn from N(0, 0.01²) with zero biases, the backbone
untouched, a head a weights file supplies kept; off by default and then absent from the protocol hash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrbench.models.build import build_model as build_entry
from cxrbench.models.factory import build_model
from cxrbench.plugins import get_registry
from cxrbench.suite.loader import load_suite, protocol_hash


def _build(name: str, head_init: str, **kwargs):
    torch.manual_seed(0)
    spec = get_registry().model(name)
    return spec, build_model(spec, num_classes=2, in_chans=1, image_size=32, head_init=head_init, **kwargs)


def _head_keys(spec, model) -> set[str]:
    return {k for k in model.state_dict() if any(k.startswith(h + ".") for h in spec.heads)}


@pytest.mark.parametrize("name", ["mobilenet_v1", "squeezenet1_1", "lenet"])
def test_heads_are_redrawn_and_nothing_else_changes(name):
    spec, own = _build(name, "model")
    _, redrawn = _build(name, "normal")
    heads = _head_keys(spec, own)
    assert heads
    a, b = own.state_dict(), redrawn.state_dict()
    for k in a:
        if k not in heads:
            assert torch.equal(a[k], b[k]), k  # same seed, same backbone: only the head is re-drawn
    weights = torch.cat([b[k].flatten() for k in heads if k.endswith("weight")])
    # the sample std of n normal draws lies within 5 standard errors (0.01 / sqrt(2n)) of 0.01
    assert abs(weights.std().item() - 0.01) < 5 * 0.01 / np.sqrt(2 * weights.numel())
    assert all(torch.count_nonzero(b[k]) == 0 for k in heads if k.endswith("bias"))


def test_timm_heads_for_two_classes_start_large_without_it():
    """Why the option exists: timm's default for a 2-class MobileNet head has std ~0.4, not ~0.01."""
    spec, own = _build("mobilenet_v1", "model")
    w = own.state_dict()[f"{spec.classifier}.weight"]
    assert w.std().item() > 0.3


def test_a_head_from_a_weights_file_is_kept(tmp_path):
    spec, trained = _build("lenet", "model")
    path = tmp_path / "lenet.pth"
    torch.save(trained.state_dict(), path)
    _, loaded = _build("lenet", "normal", weights=str(path))
    for k, v in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # another head size: the file's head does not fit, so the fresh one is drawn the protocol's way
    torch.manual_seed(0)
    other = build_model(spec, num_classes=3, in_chans=1, image_size=32, head_init="normal", weights=str(path))
    w = other.state_dict()[f"{spec.classifier}.weight"]
    assert w.shape[0] == 3 and w.std().item() < 0.02
    assert torch.equal(other.state_dict()["conv1.weight"], trained.state_dict()["conv1.weight"])


def test_zero_shot_keeps_the_builders_head():
    _, own = _build("lenet", "model", zero_shot=True)
    _, kept = _build("lenet", "normal", zero_shot=True)
    for k, v in own.state_dict().items():
        assert torch.equal(kept.state_dict()[k], v), k


def test_the_suite_setting_reaches_every_build(suite_file):
    suite = load_suite(suite_file(models=["mobilenet_v1"]), ["train.head_init=normal"])
    torch.manual_seed(0)
    model, spec = build_entry(suite, suite.models[0], get_registry())
    assert model.state_dict()[f"{spec.classifier}.weight"].std().item() < 0.02


def test_protocol_hash_changes_only_when_set(suite_file):
    path = suite_file()
    plain = load_suite(path)
    assert plain.train.head_init == "model"
    assert protocol_hash(load_suite(path, ["train.head_init=model"])) == protocol_hash(plain)
    assert protocol_hash(load_suite(path, ["train.head_init=normal"])) != protocol_hash(plain)
