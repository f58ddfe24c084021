"""End-to-end latency: file -> decode -> resize + normalise -> inference, through the training path's code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from cxrbench.data.images import decode_file, decoded_image, finish_image
from cxrbench.data.synthetic import SyntheticCXR, SyntheticOptions
from cxrbench.profiling.end_to_end import FORMATS, STAGES, describe_image, end_to_end_step, write_radiograph
from cxrbench.profiling.latency import measure
from cxrbench.suite.latency import LatencyConfig

PX = 64


def _source(px: int = PX) -> np.ndarray:
    """The 8-bit values write_radiograph stores (seed 0)."""
    return SyntheticCXR("binary", SyntheticOptions(n_samples=1, seed=0)).image(0, px)


@pytest.mark.parametrize("fmt, pil_format, mode, max_diff", [
    ("jpeg", "JPEG", "L", None), ("png", "PNG", "L", 0), ("png16", "PNG", "I;16", 0),
    ("dicom", "DICOM", "MONOCHROME2 12-bit", 1)])
def test_generated_radiographs_decode_to_their_source_values(tmp_path, fmt, pil_format, mode, max_diff):
    if fmt == "dicom":
        pytest.importorskip("pydicom")
    path = write_radiograph(tmp_path, fmt, PX)
    info = describe_image(path, 32, 1)
    assert (info["format"], info["mode"], info["width"], info["height"]) == (pil_format, mode, PX, PX)
    assert info["bytes"] == path.stat().st_size
    ref = _source().astype(int)
    got = decode_file(path, PX, 1).astype(int)
    if max_diff is None:  # lossy: quality 90 on a 64 px image
        assert np.abs(got - ref).mean() < 4.0
    else:  # png16: v*257 + (<128) -> round(x * 255 / 65535) = v; dicom: v*16 + (<16) over 0..4095
        assert np.abs(got - ref).max() <= max_diff
    # the split (decoded_image, then finish_image) is decode_file, here at a resize
    with decoded_image(path, 32, 3) as img:
        split = finish_image(img, 32, 3)
    assert np.array_equal(split, decode_file(path, 32, 3)) and split.shape == (32, 32, 3)


@pytest.mark.parametrize("fmt", ["jpeg", "png16", "dicom"])
@pytest.mark.parametrize("channels", [1, 3])
def test_step_feeds_the_model_the_normalised_training_input_and_times_contiguous_stages(tmp_path, fmt, channels):
    if fmt == "dicom":
        pytest.importorskip("pydicom")
    path = write_radiograph(tmp_path, fmt, PX)
    mean, std = [0.4, 0.5, 0.6][:channels], [0.2, 0.25, 0.3][:channels]
    fed: list[torch.Tensor] = []
    calls = []

    def bind(x: torch.Tensor):
        fed.append(x)
        return lambda: calls.append(1)

    rows: list[tuple[float, float, float]] = []
    step = end_to_end_step(bind, {"path": str(path), "size": 32, "channels": channels, "mean": mean, "std": std},
                           "cpu", rows)
    totals = [step() for _ in range(3)]
    assert len(calls) == 3 and len(rows) == 3
    for total, row in zip(totals, rows):
        assert sum(row) == pytest.approx(total, rel=1e-9, abs=1e-9) and min(row) >= 0 and row[0] > 0
    # by hand: the decoded 32 px uint8 image (what training caches), / 255, minus mean, over std
    pixels = decode_file(path, 32, channels)
    chw = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    expected = (chw.astype(np.float64) / 255.0 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    x = fed[-1]
    assert x.shape == (1, channels, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    assert np.allclose(x[0].numpy(), expected, atol=1e-5)


def test_kept_slices_name_exactly_the_kept_samples():
    counter = iter(range(10_000))

    def step() -> float:
        return float(next(counter))  # each call's own index: kept samples say which calls were kept

    class Meter:  # every other chunk busy
        n = 0

        def snapshot(self):
            Meter.n += 1
            return Meter.n

        def others_fraction(self, before, after, scope):
            return 0.9 if before % 4 == 1 else 0.0

    clock_state = [0.0]

    def clock() -> float:
        clock_state[0] += 0.001
        return clock_state[0]

    cfg = LatencyConfig(warmup_iters=3, warmup_seconds=0.0, min_samples=40, min_seconds=0.0, max_seconds=100,
                        chunk_seconds=0.0095)
    m = measure(step, cfg, Meter(), clock=clock)
    assert m.chunks_dropped > 0
    timed = list(range(1 + m.warmup_iters, 10_000))  # the calls after the first and the warm-up
    assert [timed[i] for a, b in m.kept_slices for i in range(a, b)] == m.samples_ms


def _err(capsys) -> str:
    """stderr with the console's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def _cli(*extra: str) -> list[str]:
    return ["profile", "lenet", "--input-size", "32", "--in-chans", "1", "--runtimes", "torch", "--preset", "quick",
            "--min-samples", "30", "--min-seconds", "0.1", "--max-seconds", "1", "--device-name", "test",
            "--end-to-end", *extra]


def test_cli_end_to_end_json_record(capsys):
    from cxrbench.cli import main

    assert main([*_cli("--image-px", "256"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    (rec,) = row["latency"]
    assert rec["status"] == "ok", rec.get("error")
    e = rec["end_to_end"]
    assert set(e["stages_median_ms"]) == {*STAGES, "total"} and e["batch_size"] == 1
    im = e["image"]
    assert (im["format"], im["width"], im["height"], im["mode"]) == ("JPEG", 256, 256, "L")
    assert "synthetic_cxr" in im["generated"]
    samples = e["samples_ms"]
    total = np.asarray(samples["total"])
    assert e["n_samples"] == total.size >= 30 and all(len(samples[s]) == total.size for s in STAGES)
    # per iteration the contiguous stages add up to the total
    assert np.allclose(sum(np.asarray(samples[s]) for s in STAGES), total, rtol=1e-9, atol=1e-6)
    # the summary is the samples' own median / p90, inside its CI; stage medians from the stage samples
    assert e["median_ms"] == pytest.approx(float(np.median(total)))
    assert e["p90_ms"] == pytest.approx(float(np.percentile(total, 90)))
    assert e["median_ci_ms"][0] <= e["median_ms"] <= e["median_ci_ms"][1] and e["median_ci_coverage"] >= 0.95
    for s in STAGES:
        assert e["stages_median_ms"][s] == pytest.approx(float(np.median(samples[s])))
    assert e["stages_median_ms"]["decode"] > 0
    stage_sum = sum(e["stages_median_ms"][s] for s in STAGES)
    assert stage_sum == pytest.approx(e["median_ms"], rel=0.25)  # medians of parts vs median of sums
    # decoding a 256 px file + resizing + inference cannot beat inference alone
    assert e["median_ms"] >= rec["median_ms"] and e["model_only_median_ms"] == rec["median_ms"]
    assert e["overhead_ms"] == pytest.approx(e["median_ms"] - rec["median_ms"])
    assert e["normalization"]["name"] == "imagenet" and len(e["normalization"]["mean"]) == 1


@pytest.mark.parametrize("content, name, why", [
    (b"\xff\xd8\xff\xe0 not really a jpeg" * 4, "bad.jpg", "cannot decode the end-to-end image"),
    (b"\x00" * 128 + b"DICM" + b"\x02\x00" * 8, "bad.dcm", "not a DICOM image")])
def test_corrupt_image_is_a_clear_error_naming_the_file(tmp_path, capsys, content, name, why):
    from cxrbench.cli import main

    bad = tmp_path / name
    bad.write_bytes(content)
    assert main(_cli("--image", str(bad))) == 2
    err = _err(capsys)
    assert f"{bad}: {why}" in err


def test_cli_refuses_what_end_to_end_cannot_do(tmp_path, capsys):
    from cxrbench.cli import main
    from cxrbench.cli.profile import IMAGE_FORMATS

    assert IMAGE_FORMATS == FORMATS
    assert main(_cli("--image", str(tmp_path / "missing.png"))) == 2
    assert "missing.png: end-to-end image not found" in _err(capsys)
    assert main(_cli("--batch-sizes", "4")) == 2
    assert "timed at batch 1" in _err(capsys)
    assert main(["profile", "lenet", "lenet", "--paired", "--end-to-end"]) == 2
    assert "--end-to-end and --paired cannot be combined" in _err(capsys)


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


def test_profile_model_end_to_end_on_a_dicom_three_channel_model(tmp_path):
    pytest.importorskip("pydicom")
    from cxrbench.profiling.profiler import profile_model

    path = write_radiograph(tmp_path, "dicom", 128)
    cfg = LatencyConfig(runtimes=["torch"], threads=[1], batch_sizes=[1, 2], preset="quick", calibration=False,
                        min_samples=20, warmup_seconds=0.05, min_seconds=0.05, max_seconds=1, busy_threshold=1.0,
                        keep_samples=False, device_name="test")
    torch.manual_seed(0)
    one, two = profile_model(Small(), cfg, 32, 3, end_to_end={"path": path, "mean": [0.5] * 3, "std": [0.25] * 3})
    assert (one["batch_size"], two["batch_size"]) == (1, 2) and one["status"] == two["status"] == "ok"
    assert two["end_to_end"] is None  # end to end is a batch-1 figure
    e = one["end_to_end"]
    assert e["image"]["format"] == "DICOM" and e["image"]["mode"] == "MONOCHROME2 12-bit"
    assert "samples_ms" not in e and e["n_samples"] >= 20 and e["stages_median_ms"]["decode"] > 0
    assert e["median_ms"] >= one["median_ms"]
    with pytest.raises(ValueError, match="batch 1"):
        profile_model(Small(), cfg.model_copy(update={"batch_sizes": [2]}), 32, 3,
                      end_to_end={"path": path, "mean": [0.5] * 3, "std": [0.25] * 3})
