"""The data pipeline: draft-mode JPEG decoding, the cached loader vs training speed, cache hits across models.

(a) first-pass decode of ~1500x1800 grayscale JPEGs to 224 px: PIL draft mode vs plain open+resize
    (>= 1.5x; per-image best of 7 alternating rounds, so neighbour load hits both alike);
(b) images/s out of ``Batches.iterate`` on a cached (memory-mapped) 224 px array vs the training
    images/s of the fastest small built-in model at 224 px, batch 32 (>= 10x);
(c) a second model in the same run decodes nothing, and a second run decodes nothing either.
Ratios are printed (run with ``make bench``, i.e. ``-s``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from cxrbench.data import images
from cxrbench.data.cache import load_images
from cxrbench.data.datasets.common import file_table
from cxrbench.data.datasets.miniature import make_kermany, tiny_suite
from cxrbench.data.prepare import prepare_data
from cxrbench.data.transforms import train_transform
from cxrbench.engine.runner import run_suite
from cxrbench.engine.batches import Batches
from cxrbench.models.factory import create_model
from cxrbench.plugins import get_registry
from cxrbench.specs import BuildRequest
from cxrbench.suite.loader import load_suite
from cxrbench.suite.schema import HorizontalFlip, InputConfig, RandomResizedCrop

SIZE = 224


def xray_like(w: int, h: int, seed: int) -> Image.Image:
    """Smooth lungs, ribs and mild grain: compresses like a real radiograph (~170 KB at 1500x1800, q90)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    lungs = [np.exp(-((x - cx) ** 2 + (y - 0.5) ** 2) / 0.05) for cx in (0.3, 0.7)]
    img = 90 + 80 * lungs[0] + 80 * lungs[1]
    img += 25 * np.sin(40 * y) * (x > 0.2) * (x < 0.8)
    img += rng.normal(0, 2, (h, w))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").filter(ImageFilter.GaussianBlur(1))


@pytest.fixture(scope="module")
def large_jpegs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("large")
    paths = []
    for i in range(12):
        p = folder / f"person{i}_bacteria_{i}.jpeg"
        xray_like(1500 + 20 * i, 1800 - 15 * i, i).save(p, quality=90)
        paths.append(p)
    return paths


def plain_decode(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L").resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def test_a_draft_mode_first_pass_decode(benchmark, large_jpegs):
    plain_t = {p: [] for p in large_jpegs}
    draft_t = {p: [] for p in large_jpegs}
    for _ in range(7):
        for p in large_jpegs:
            t0 = time.perf_counter()
            plain_decode(p)
            plain_t[p].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            images.decode_file(p, SIZE, 1)
            draft_t[p].append(time.perf_counter() - t0)
    plain_s = sum(min(v) for v in plain_t.values())
    draft_s = sum(min(v) for v in draft_t.values())
    ratio = plain_s / draft_s
    diff = np.mean([np.abs(plain_decode(p).astype(float) - images.decode_file(p, SIZE, 1)).mean() for p in large_jpegs])

    # parallel first pass (threads) over the same files, as the cache builds it
    table = file_table("bench", large_jpegs[0].parent, large_jpegs, np.zeros(len(large_jpegs)), ["a"])
    out = np.empty((len(table), 1, SIZE, SIZE), np.uint8)
    seq = min(_timed(lambda: images.decode_table(table, out, SIZE, 1, workers=1)) for _ in range(3))
    par = min(_timed(lambda: images.decode_table(table, out, SIZE, 1, workers=2)) for _ in range(3))
    print(f"\n(a) {len(large_jpegs)} JPEGs ~1500x1800 -> {SIZE}px: plain {len(large_jpegs) / plain_s:.0f} img/s, "
          f"draft {len(large_jpegs) / draft_s:.0f} img/s: {ratio:.2f}x (mean |diff| {diff:.2f} grey levels); "
          f"2 threads vs 1: {seq / par:.2f}x")
    benchmark.extra_info.update(draft_over_plain=ratio, threads2_over_1=seq / par, mean_abs_diff=diff)
    benchmark.pedantic(lambda: [images.decode_file(p, SIZE, 1) for p in large_jpegs], rounds=3, iterations=1)
    assert diff < 1.0
    assert ratio >= 1.5, f"draft-mode decoding is only {ratio:.2f}x faster than plain PIL"


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _train_ips(name: str, steps: int = 3) -> float:
    spec = get_registry().model(name)
    model = create_model(spec, BuildRequest(num_classes=2, in_chans=3, image_size=SIZE)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.randn(32, 3, SIZE, SIZE), torch.randint(0, 2, (32,))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return 32 / min(times[1:])


def test_b_cached_loader_outpaces_training(benchmark, tmp_path):
    n = 128
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        p = folder / f"{i:04d}.jpeg"
        Image.fromarray(rng.integers(0, 256, (256, 256), dtype=np.uint8)).save(p, quality=90)
        files.append(p)
    table = file_table("bench", folder, files, rng.integers(0, 2, n), ["a", "b"])
    cached = load_images(table, SIZE, 3, dataset="bench", cache_dir=tmp_path / "cache")
    assert isinstance(cached.images, np.memmap)
    cached = load_images(table, SIZE, 3, dataset="bench", cache_dir=tmp_path / "cache")
    assert cached.hit
    labels = torch.as_tensor(table.labels)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    cfg = InputConfig(image_size=SIZE, channels=3)

    def loader_ips(transform) -> float:
        batches = Batches(torch.from_numpy(cached.images), labels, mean, std, transform)
        gen = torch.Generator().manual_seed(0)
        best = min(_timed(lambda: [None for _ in batches.iterate(np.arange(n), 32, torch.device("cpu"), train=True,
                                                                  generator=gen)]) for _ in range(3))
        return n / best

    plain = loader_ips(None)
    hflip = loader_ips(train_transform([HorizontalFlip(name="hflip")], cfg))
    rrc = loader_ips(train_transform([RandomResizedCrop(name="random_resized_crop"), HorizontalFlip(name="hflip")],
                                     cfg))
    models = {m: _train_ips(m) for m in ("lenet", "mobilenet_v3_small", "squeezenet1_1")}
    fastest = max(models, key=models.get)
    ratio = plain / models[fastest]
    print(f"\n(b) cached loader at {SIZE}px, batch 32: {plain:.0f} img/s (hflip {hflip:.0f}, random_resized_crop+hflip "
          f"{rrc:.0f}); training img/s: " + ", ".join(f"{m} {v:.1f}" for m, v in models.items())
          + f"; loader / fastest ({fastest}) = {ratio:.1f}x")
    benchmark.extra_info.update(loader_ips=plain, loader_hflip_ips=hflip, loader_rrc_hflip_ips=rrc,
                                train_ips=models, loader_over_fastest_training=ratio)
    batches = Batches(torch.from_numpy(cached.images), labels, mean, std)
    benchmark.pedantic(lambda: [None for _ in batches.iterate(np.arange(n), 32, torch.device("cpu"), train=True)],
                       rounds=3, iterations=1)
    assert ratio >= 10, f"the cached loader ({plain:.0f} img/s) is only {ratio:.1f}x the fastest training speed"


def test_c_second_model_and_second_run_decode_nothing(benchmark, tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    make_kermany(tmp_path / "data")
    suite_path = tiny_suite(tmp_path / "s.yaml", {"name": "kermany", "root": str(tmp_path / "data")},
                            {"type": "binary", "classes": ["normal", "pneumonia"]},
                            models=["lenet", {"name": "lenet", "label": "lenet_again"}])
    calls: list[str] = []
    real = images.decode_file

    def counting(path, size, channels=None):
        calls.append(str(path))
        return real(path, size, channels)

    monkeypatch.setattr(images, "decode_file", counting)
    out = run_suite(suite_path, results_root=tmp_path / "res", device="cpu")
    assert [r.status for r in out.records] == ["ok", "ok"]
    assert len(calls) == 31  # every file decoded once for both models (30 readable + 1 truncated)
    calls.clear()
    out = run_suite(suite_path, results_root=tmp_path / "res", device="cpu")
    assert [r.status for r in out.records] == ["ok", "ok"] and calls == []

    suite = load_suite(suite_path)
    hit = min(_timed(lambda: prepare_data(suite, get_registry())) for _ in range(3))
    assert calls == []
    miss = min(_timed(lambda: prepare_data(suite, get_registry(), use_cache=False)) for _ in range(3))
    print(f"\n(c) 2 models x 1 run: 31 decodes in total; second run: 0 decodes; prepare_data cache hit "
          f"{hit * 1e3:.1f} ms vs decoding {miss * 1e3:.1f} ms (32 px miniature)")
    benchmark.extra_info.update(prepare_hit_ms=hit * 1e3, prepare_decode_ms=miss * 1e3)
    benchmark.pedantic(lambda: prepare_data(suite, get_registry()), rounds=3, iterations=1)
