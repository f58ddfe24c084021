"""End-to-end latency: a full-size radiograph file -> decode -> resize -> normalise -> inference, batch 1.

``cxrbench profile MODEL --end-to-end [--image FILE]`` times, beside the model-only latency, what
a deployed classifier does per image. The timing runs in the same fresh pinned subprocess as the
model-only timing (:mod:`cxrbench.profiling.worker`), after it, with the same runtime already
loaded, under the same method (:func:`~cxrbench.profiling.latency.measure`: first call, warm-up,
chunks during which other processes used the pinned CPUs dropped). Each iteration is split into
three contiguous stages, each timed with ``perf_counter_ns`` (so per iteration they add up to the
total exactly):

- **decode**: :func:`cxrbench.data.images.decoded_image`, the decoding half of the training path's
  :func:`~cxrbench.data.images.decode_file`: open, the JPEG reduced-scale decode (``draft``, to at
  least twice the input size), full decode of PNG (8 or 16-bit), DICOM through its display chain;
- **preprocess**: :func:`~cxrbench.data.images.finish_image` (16-bit to 8-bit, channel mode,
  bilinear resize to the model's input size), the ``(1, C, S, S)`` contiguous copy (training
  copies into its decode cache) and
  :func:`cxrbench.models.predict.normalize`: the code training and evaluation use;
- **inference**: the runtime's ``bind(x)`` and call (on CUDA the host-to-device copy is in
  ``bind``, and the stage ends with a synchronisation).

The file is read from the OS page cache after the first call (a hot file: no disk latency). The
record's ``end_to_end`` holds each stage's median, the total's median and p90 with their
order-statistic CIs (:func:`~cxrbench.profiling.latency.summarize`), and the model-only median of
the same process series. The medians of the stages need not add up to the median of the totals.

Without ``--image`` a synthetic radiograph (:class:`~cxrbench.data.synthetic.SyntheticCXR`:
anatomy and film noise, so it compresses like a real one, not like a flat test pattern) is written
at 2048 x 2048 px in the chosen format (:func:`write_radiograph`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

FORMATS = ("jpeg", "png", "png16", "dicom")
"""Formats :func:`write_radiograph` writes: 8-bit grayscale JPEG or PNG, 16-bit PNG, 12-bit DICOM."""
DEFAULT_PX = 2048
STAGES = ("decode", "preprocess", "inference")
METHOD = ("per iteration, batch 1, in the model-only timing process: decode (decoded_image) + preprocess "
          "(finish_image resize, tensor, normalize) + inference (bind + call), contiguous perf_counter_ns "
          "stages; chunks with interference dropped as for model-only")
_SUFFIX = {"jpeg": ".jpg", "png": ".png", "png16": ".png", "dicom": ".dcm"}


def write_radiograph(folder: str | os.PathLike, fmt: str = "jpeg", px: int = DEFAULT_PX, seed: int = 0) -> Path:
    """Write a synthetic ``px`` x ``px`` grayscale radiograph as ``folder/radiograph-<px>[-16bit].<ext>``.

    ``jpeg``: 8-bit, quality 90; ``png``: 8-bit; ``png16``: 16-bit (``v * 257`` plus random low
    bits up to 127, the full 0..65535 range, as PadChest); ``dicom``: 12 bits stored in 16, MONOCHROME2,
    uncompressed (``v * 16`` plus random low bits). The 8-bit values ``v`` are
    ``SyntheticCXR.image(0, px)`` of ``seed``.
    """
    from PIL import Image

    from cxrbench.data.synthetic import SyntheticCXR, SyntheticOptions

    if fmt not in FORMATS:
        raise ValueError(f"unknown radiograph format {fmt!r}; one of {', '.join(FORMATS)}")
    v = SyntheticCXR("binary", SyntheticOptions(n_samples=1, seed=seed)).image(0, px)
    low = np.random.default_rng(seed).integers(0, 256, v.shape)
    path = Path(folder) / f"radiograph-{px}{'-16bit' if fmt == 'png16' else ''}{_SUFFIX[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jpeg":
        Image.fromarray(v).save(path, quality=90)
    elif fmt == "png":
        Image.fromarray(v).save(path)
    elif fmt == "png16":
        Image.fromarray(np.minimum(v.astype(np.int32) * 257 + low // 2, 65535).astype(np.uint16)).save(path)
    else:
        from cxrbench.data.dicom_writer import write_dicom

        write_dicom(path, (v.astype(np.uint16) * 16 + low % 16).astype(np.uint16), bits_stored=12)
    return path


def describe_image(path: str | os.PathLike, size: int, channels: int) -> dict[str, Any]:
    """Decode ``path`` once as the timing will (a check before any subprocess) and describe it:
    ``path``, ``format``, ``width``, ``height``, ``mode``, ``bytes``. A missing or undecodable file
    is a :class:`~cxrbench.errors.DatasetError` naming it."""
    from cxrbench.data.dicom import is_dicom_path
    from cxrbench.data.images import decode_file, image_header
    from cxrbench.errors import DatasetError

    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: end-to-end image not found")
    try:
        width, height, mode = image_header(p)
        arr = decode_file(p, size, channels)
    except DatasetError as exc:
        raise DatasetError(str(exc) if str(p) in str(exc) else f"{p}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a damaged file
        raise DatasetError(f"{p}: cannot decode the end-to-end image ({type(exc).__name__}: {exc})") from None
    expected = (size, size) if channels == 1 else (size, size, 3)
    if arr.shape != expected:  # pragma: no cover - decode_file's contract
        raise DatasetError(f"{p}: decoded to {arr.shape}, expected {expected}")
    if is_dicom_path(p):
        fmt = "DICOM"
    else:
        from PIL import Image

        with Image.open(p) as img:
            fmt = img.format or "?"
    return {"path": str(p.resolve()), "format": fmt, "width": width, "height": height, "mode": mode,
            "bytes": p.stat().st_size}


def end_to_end_step(call_for: Callable[[Any], Callable[[], Any]], spec: dict[str, Any], device: str,
                    rows: list[tuple[float, float, float]]) -> Callable[[], float]:
    """One timed iteration (ms, the total) that appends ``(decode, preprocess, inference)`` ms to ``rows``.

    ``call_for(x)`` is the runtime's ``bind``; ``spec``: ``path``, ``size``, ``channels``, ``mean``,
    ``std`` (per channel, in [0, 1] units).
    """
    import time

    import torch

    from cxrbench.data.images import decoded_image, finish_image
    from cxrbench.models.predict import normalize

    path, size, channels = spec["path"], int(spec["size"]), int(spec["channels"])
    mean = torch.tensor(spec["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"], dtype=torch.float32).view(1, -1, 1, 1)
    sync = torch.cuda.synchronize if device == "cuda" else None
    clock = time.perf_counter_ns

    def step() -> float:
        t0 = clock()
        with decoded_image(path, size, channels) as img:
            t1 = clock()
            arr = finish_image(img, size, channels)
        chw = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        x = normalize(torch.from_numpy(np.array(chw, order="C"))[None], mean, std)  # a copy, as into the cache
        t2 = clock()
        call_for(x)()
        if sync is not None:
            sync()
        t3 = clock()
        rows.append(((t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6))
        return (t3 - t0) / 1e6

    return step


def run_end_to_end(call_for: Callable[[Any], Callable[[], Any]], spec: dict[str, Any], device: str, cfg: Any,
                   meter: Any) -> dict[str, Any]:
    """Worker side: :func:`~cxrbench.profiling.latency.measure` the end-to-end step; every kept
    iteration's stages (``decode_ms``, ``preprocess_ms``, ``inference_ms``) and ``total_ms``."""
    import torch

    from cxrbench.profiling.latency import measure

    rows: list[tuple[float, float, float]] = []
    step = end_to_end_step(call_for, spec, device, rows)
    with torch.inference_mode():
        m = measure(step, cfg, meter)
    timed = rows[1 + m.warmup_iters:]
    kept = [timed[i] for a, b in m.kept_slices for i in range(a, b)]
    if len(kept) != len(m.samples_ms):  # pragma: no cover - measure's contract
        raise RuntimeError(f"end-to-end: {len(kept)} stage rows for {len(m.samples_ms)} samples")
    out: dict[str, Any] = {f"{s}_ms": [r[i] for r in kept] for i, s in enumerate(STAGES)}
    return {**out, "total_ms": m.samples_ms, "first_call_ms": m.first_call_ms, "warmup_iters": m.warmup_iters,
            "measure_seconds": m.seconds, "reached_cap": m.reached_cap,
            "interference": m.interference(meter, cfg.busy_threshold, cfg.busy_scope)}


def pool_end_to_end(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several processes' :func:`run_end_to_end` results as one (samples concatenated, process order)."""
    head = parts[0]
    out = {**head, "measure_seconds": sum(p["measure_seconds"] for p in parts),
           "reached_cap": any(p["reached_cap"] for p in parts), "process_medians_ms":
           [float(np.median(p["total_ms"])) for p in parts]}
    for key in (*(f"{s}_ms" for s in STAGES), "total_ms"):
        out[key] = [v for p in parts for v in p[key]]
    inter = dict(head["interference"])
    for key in ("chunks_total", "chunks_dropped", "samples_dropped"):
        inter[key] = sum(p["interference"][key] for p in parts)
    inter["all_chunks_busy"] = all(p["interference"]["all_chunks_busy"] for p in parts)
    out["interference"] = inter
    return out


def summarize_end_to_end(raw: dict[str, Any], model_only_median_ms: float, image: dict[str, Any],
                         cfg: Any, normalization: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record's ``end_to_end``: stage medians, the total's summary (median, p90 and their
    order-statistic CIs), the model-only median beside it and the overhead (total - model only)."""
    from cxrbench.profiling.latency import summarize

    stats = summarize(raw["total_ms"], cfg.unstable_iqr)
    if raw["interference"].get("all_chunks_busy"):
        stats["unstable"] = True
    stages = {s: float(np.median(raw[f"{s}_ms"])) for s in STAGES}
    keep = ("median_ms", "p90_ms", "median_ci_ms", "median_ci_coverage", "p90_ci_ms", "p90_ci_coverage", "mean_ms",
            "iqr_over_median", "n_samples", "unstable")
    out: dict[str, Any] = {
        "image": image, "normalization": normalization, "batch_size": 1, "stages_median_ms": {**stages, "total": stats["median_ms"]},
        **{k: stats[k] for k in keep}, "model_only_median_ms": model_only_median_ms,
        "overhead_ms": stats["median_ms"] - model_only_median_ms,
        "first_call_ms": raw["first_call_ms"], "warmup_iters": raw["warmup_iters"],
        "measure_seconds": raw["measure_seconds"], "reached_cap": raw["reached_cap"],
        "process_medians_ms": raw.get("process_medians_ms") or [float(np.median(raw["total_ms"]))],
        "interference": raw["interference"], "method": METHOD}
    if cfg.keep_samples:
        out["samples_ms"] = {s: raw[f"{s}_ms"] for s in (*STAGES, "total")}
    return out
