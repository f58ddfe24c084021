"""First-pass decode speed of DICOM next to PNG and JPEG, same radiographs, same size, to 224 px.

Six ~1500 x 1800 12-bit radiographs are written as JPEG (8-bit, q90, decoded in draft mode),
8-bit PNG, 16-bit PNG (12 bits scaled to 16 as the PNG spec asks), and DICOM: uncompressed
(12 bits in 16), RLE Lossless and, when an encoder is installed, JPEG 2000 Lossless. Each file
goes through ``images.decode_file`` (the one reader every loader and the cache use); per file
the best of 5 alternating rounds counts, so neighbour load hits every format alike. Reported as
img/s and as each format's time over 8-bit PNG. Also: the DICOM display chain as one table
lookup vs pydicom's functions on every pixel (the reason for the table), and the formats agree
on the pixels (<= 0.5 grey levels).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pydicom = pytest.importorskip("pydicom", minversion="3")
from pydicom import uid  # noqa: E402
from pydicom.pixels import get_encoder  # noqa: E402

from cxrbench.data import dicom, images  # noqa: E402
from cxrbench.data.dicom_writer import write_dicom  # noqa: E402

SIZE = 224
ROUNDS = 5


def xray12(w: int, h: int, seed: int) -> np.ndarray:
    """Smooth lungs, ribs and grain over 12 bits (as a DX detector stores them)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    img = 1400 + 1300 * sum(np.exp(-((x - cx) ** 2 + (y - 0.5) ** 2) / 0.05) for cx in (0.3, 0.7))
    img += 400 * np.sin(40 * y) * (x > 0.2) * (x < 0.8) + rng.normal(0, 30, (h, w))
    for axis in (0, 1):  # [1, 2, 1] / 4 blur: grain as smooth as a detector's
        img = (np.roll(img, 1, axis) + 2 * img + np.roll(img, -1, axis)) / 4
    return np.clip(img, 0, 4095).astype(np.uint16)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, list[Path]]:
    folder = tmp_path_factory.mktemp("decode")
    j2k = get_encoder(uid.JPEG2000Lossless).is_available
    out: dict[str, list[Path]] = {k: [] for k in ("jpeg", "png8", "png16", "dicom", "dicom_rle")}
    if j2k:
        out["dicom_j2k"] = []
    for i in range(6):
        v = xray12(1500 + 20 * i, 1800 - 15 * i, i)
        gray8 = Image.fromarray((v.astype(np.uint32) * 255 // 4095).astype(np.uint8), "L")
        gray8.save(folder / f"{i}.jpeg", quality=90)
        gray8.save(folder / f"{i}.png")
        Image.fromarray((v << 4) | (v >> 8)).save(folder / f"{i}_16.png")  # PNG sBIT-style scaling to 16 bits
        out["jpeg"].append(folder / f"{i}.jpeg")
        out["png8"].append(folder / f"{i}.png")
        out["png16"].append(folder / f"{i}_16.png")
        out["dicom"].append(write_dicom(folder / f"{i}.dcm", v, bits_stored=12))
        out["dicom_rle"].append(write_dicom(folder / f"{i}_rle.dcm", v, bits_stored=12,
                                            transfer_syntax=uid.RLELossless))
        if j2k:
            out["dicom_j2k"].append(write_dicom(folder / f"{i}_j2k.dcm", v, bits_stored=12,
                                                transfer_syntax=uid.JPEG2000Lossless))
    return out


def _best(fn, rounds: int = ROUNDS) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def test_dicom_decode_speed_next_to_png_and_jpeg(benchmark, files):
    times = {fmt: {p: float("inf") for p in paths} for fmt, paths in files.items()}
    for _ in range(ROUNDS):  # alternate formats within each round
        for k in range(len(files["png8"])):
            for fmt, paths in files.items():
                t0 = time.perf_counter()
                images.decode_file(paths[k], SIZE, 1)
                times[fmt][paths[k]] = min(times[fmt][paths[k]], time.perf_counter() - t0)
    total = {fmt: sum(t.values()) for fmt, t in times.items()}
    n = len(files["png8"])
    ratios = {fmt: total[fmt] / total["png8"] for fmt in total}

    decoded = {fmt: [images.decode_file(p, SIZE, 1).astype(float) for p in paths] for fmt, paths in files.items()}
    agree = {fmt: float(np.mean([np.abs(a - b).mean() for a, b in zip(decoded[fmt], decoded["dicom"])]))
             for fmt in ("png16", "dicom_rle", *(["dicom_j2k"] if "dicom_j2k" in files else []))}

    ds = pydicom.dcmread(files["dicom"][0])
    pixels = ds.pixel_array
    table = _best(lambda: dicom.dicom_to_uint8(ds, pixels))
    per_pixel = _best(lambda: dicom._gray_pipeline(pixels, ds))
    assert np.array_equal(dicom.dicom_to_uint8(ds, pixels), dicom._gray_pipeline(pixels, ds))

    print(f"\n{n} radiographs ~1500x1800 -> {SIZE}px, best of {ROUNDS} alternating rounds: "
          + ", ".join(f"{fmt} {n / total[fmt]:.0f} img/s ({ratios[fmt]:.2f}x png8 time)" for fmt in total)
          + f"; display chain as a table {table * 1e3:.1f} ms vs per pixel {per_pixel * 1e3:.1f} ms "
          f"({per_pixel / table:.1f}x); mean |diff| vs uncompressed DICOM: "
          + ", ".join(f"{k} {v:.2f}" for k, v in agree.items()))
    benchmark.extra_info.update(img_per_s={fmt: n / t for fmt, t in total.items()}, time_over_png8=ratios,
                                table_over_per_pixel=per_pixel / table, mean_abs_diff_vs_dicom=agree)
    benchmark.pedantic(lambda: [images.decode_file(p, SIZE, 1) for p in files["dicom"]], rounds=3, iterations=1)
    assert all(v <= 0.5 for v in agree.values()), agree
    assert per_pixel / table >= 2, f"the lookup table is only {per_pixel / table:.1f}x the per-pixel chain"
