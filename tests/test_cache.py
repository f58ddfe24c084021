"""The preprocessing cache and decoding: hits decode nothing, touching a file invalidates, bad files
are listed with path and reason, --strict fails, a crash leaves no half cache; decoding per mode."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrbench.data import images
from cxrbench.data.cache import default_cache_dir, load_images
from cxrbench.data.datasets.miniature import image, make_kermany, tiny_suite, write_image
from cxrbench.data.prepare import prepare_data
from cxrbench.errors import DatasetError
from cxrbench.plugins import get_registry
from cxrbench.suite.loader import load_suite

N_FILES = 31  # 30 readable miniature ChestX-ray2017 images + 1 truncated


@pytest.fixture
def counter(monkeypatch):
    """Counts calls of the file decoder (every decoding path goes through images.decode_file)."""
    calls = []
    real = images.decode_file

    def counting(path, size, channels=None):
        calls.append(str(path))
        return real(path, size, channels)

    monkeypatch.setattr(images, "decode_file", counting)
    return calls


@pytest.fixture
def kermany_suite(tmp_path):
    root = tmp_path / "data"
    make_kermany(root)
    path = tiny_suite(tmp_path / "suite.yaml", {"name": "kermany", "root": str(root)},
                      {"type": "binary", "classes": ["normal", "pneumonia"]})
    return load_suite(path), root / "chest_xray"


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir()) if cache.exists() else []


def test_second_prepare_is_a_cache_hit(tmp_path, kermany_suite, counter):
    suite, _ = kermany_suite
    cache = tmp_path / "cache"
    first = prepare_data(suite, get_registry(), cache_dir=cache)
    assert len(counter) == N_FILES and first.notes["image_cache"]["hit"] is False
    counter.clear()
    second = prepare_data(suite, get_registry(), cache_dir=cache)
    assert counter == [] and second.notes["image_cache"]["hit"] is True
    assert isinstance(second.images, np.memmap) and second.images.shape == (30, 1, 32, 32)
    np.testing.assert_array_equal(np.asarray(first.images), np.asarray(second.images))
    assert second.table.ids == first.table.ids and second.bad == first.bad
    # the cached array is what a fresh in-memory decode gives
    fresh = load_images(second.table, 32, 1, use_cache=False)
    np.testing.assert_array_equal(fresh.images, np.asarray(second.images))
    # the engine wraps it in a tensor: copy-on-write, so writable and no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.from_numpy(second.images)


def test_touching_a_file_invalidates_the_entry(tmp_path, kermany_suite, counter):
    suite, base = kermany_suite
    cache = tmp_path / "cache"
    prepare_data(suite, get_registry(), cache_dir=cache)
    (old,) = entries(cache)
    target = base / "test" / "NORMAL" / "IM-0001-0001.jpeg"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    counter.clear()
    again = prepare_data(suite, get_registry(), cache_dir=cache)
    assert len(counter) == N_FILES and again.notes["image_cache"]["hit"] is False
    (new,) = entries(cache)  # the stale entry was removed
    assert new != old
    # a changed size (rewritten file) invalidates too
    write_image(target, (80, 80), "L", seed=5)
    counter.clear()
    prepare_data(suite, get_registry(), cache_dir=cache)
    assert len(counter) == N_FILES


def test_corrupt_file_is_listed_with_path_and_reason_and_strict_fails(tmp_path, kermany_suite):
    suite, base = kermany_suite
    cache = tmp_path / "cache"
    data = prepare_data(suite, get_registry(), cache_dir=cache)
    bad_path = base / "train" / "PNEUMONIA" / "person14_bacteria_51.jpeg"
    assert len(data.bad) == 1
    sample_id, reason = data.bad[0]
    assert sample_id == "train/PNEUMONIA/person14_bacteria_51.jpeg"
    assert str(bad_path) in reason and "truncated" in reason
    assert len(data.table) == 30 and sample_id not in data.table.ids
    assert data.summary()["bad_images"] == [{"id": sample_id, "reason": reason}]
    # the bad row is in the cache metadata too: a hit reports it and --strict still fails
    for _ in range(2):
        with pytest.raises(DatasetError, match="person14_bacteria_51.jpeg"):
            prepare_data(suite, get_registry(), strict=True, cache_dir=cache)


def test_a_crash_while_decoding_leaves_no_cache(tmp_path, kermany_suite, monkeypatch):
    suite, _ = kermany_suite
    cache = tmp_path / "cache"
    real, calls = images.decode_file, []

    def explode(path, size, channels=None):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(path, size, channels)

    monkeypatch.setattr(images, "decode_file", explode)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(suite, get_registry(), cache_dir=cache)
    assert entries(cache) == []  # neither an entry nor a temporary folder
    monkeypatch.setattr(images, "decode_file", real)
    data = prepare_data(suite, get_registry(), cache_dir=cache)
    assert data.notes["image_cache"]["hit"] is False and len(entries(cache)) == 1


def test_cache_location_from_environment_and_synthetic_is_not_cached(tmp_path, monkeypatch, suite_file):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "envcache"))
    assert default_cache_dir() == tmp_path / "envcache"
    data = prepare_data(load_suite(suite_file(dataset={"options": {"n_samples": 20}})), get_registry())
    assert data.notes["image_cache"]["hit"] is False and data.notes["image_cache"]["path"] is None
    assert not (tmp_path / "envcache").exists()


@pytest.mark.parametrize("mode,suffix", [("L", ".jpeg"), ("RGB", ".jpeg"), ("CMYK", ".jpeg"), ("P", ".png"),
                                         ("RGBA", ".png"), ("I;16", ".png")])
def test_every_mode_decodes_to_the_same_gray_image(tmp_path, mode, suffix):
    ref = np.asarray(image((48, 40), "L", seed=3), dtype=float)
    path = write_image(tmp_path / f"x{suffix}", (48, 40), mode, seed=3)
    gray = images.decode_file(path, 40, channels=1)
    rgb = images.decode_file(path, 40, channels=3)
    assert gray.shape == (40, 40) and rgb.shape == (40, 40, 3) and gray.dtype == np.uint8
    expected = np.asarray(Image.fromarray(ref.astype(np.uint8)).resize((40, 40), Image.Resampling.BILINEAR), float)
    tolerance = 5.0 if suffix == ".jpeg" else 2.0  # JPEG loss / palette quantisation
    assert np.abs(gray - expected).mean() < tolerance
    assert np.abs(rgb.mean(axis=2) - expected).mean() < tolerance


def test_draft_mode_decode_is_close_to_a_full_decode(tmp_path):
    path = write_image(tmp_path / "big.jpeg", (700, 600), "L", seed=1)
    with Image.open(path) as img:
        full = np.asarray(img.convert("L").resize((64, 64), Image.Resampling.BILINEAR), float)
    with images.open_image(path, 64, 1) as img:
        assert img.size == (175, 150)  # libjpeg scaled by 1/4: still >= 2 x 64 on both sides
    fast = images.decode_file(path, 64, 1).astype(float)
    assert np.abs(fast - full).mean() < 1.5
