"""``cxrbench datasets describe chestxray14`` on a full-size tree: 112,120 rows, 30,805 patients.

The tree has the real layout (``Data_Entry_2017_v2020.csv``, ``images_001..012/images/*.png``,
``train_val_list.txt`` / ``test_list.txt``) with every PNG a hard link (symlink where hard links are
refused) to one of a few tiny files, so it costs inodes, not disk. ``describe`` runs in a fresh process pinned
to 2 cores; its wall time must stay under 60 s and its peak RSS under 2 GiB. Run with ``make bench``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cxrbench.data.datasets.chestxray14 import FINDINGS
from cxrbench.data.datasets.miniature import write_image

N_ROWS, N_PATIENTS, PER_FOLDER = 112_120, 30_805, 10_000
LIMIT_S, LIMIT_BYTES = 60.0, 2 << 30


def build_tree(root: Path, n_rows: int = N_ROWS, n_patients: int = N_PATIENTS, seed: int = 0) -> Path:
    """A ChestX-ray14 tree of ``n_rows`` linked PNGs; ~20% of patients in the test list, like the real split."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    # every patient gets one image, the rest are spread at random: 1..n images per patient
    patient = np.sort(np.concatenate([np.arange(1, n_patients + 1),
                                      rng.integers(1, n_patients + 1, n_rows - n_patients)]))
    follow = np.zeros(n_rows, dtype=np.int64)
    first = np.r_[True, patient[1:] != patient[:-1]]
    starts = np.flatnonzero(first)
    follow = np.arange(n_rows) - np.repeat(starts, np.diff(np.r_[starts, n_rows]))
    names = [f"{p:08d}_{f:03d}.png" for p, f in zip(patient, follow)]
    k = len(FINDINGS)
    hot = rng.random((n_rows, k)) < 0.05
    cells = ["|".join(FINDINGS[j] for j in np.flatnonzero(h)) or "No Finding" for h in hot]
    for i, name in enumerate(names):
        folder = root / f"images_{i // PER_FOLDER + 1:03d}" / "images"
        if i % PER_FOLDER == 0:  # one source file per folder: ext4 allows 65,000 hard links per inode
            folder.mkdir(parents=True, exist_ok=True)
            src = write_image(root / "link_sources" / f"{i // PER_FOLDER}.png", (16, 16), "L", i)
        try:
            os.link(src, folder / name)
        except OSError:
            os.symlink(src, folder / name)
    test_patient = rng.random(n_patients + 1) < 0.2
    lines = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
             "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n"]
    lines += [f"{n},{c},{f},{p},50,M,PA,2500,2048,0.168,0.168\n" for n, c, f, p in zip(names, cells, follow, patient)]
    (root / "Data_Entry_2017_v2020.csv").write_text("".join(lines))
    is_test = test_patient[patient]
    (root / "train_val_list.txt").write_text("".join(f"{n}\n" for n, t in zip(names, is_test) if not t))
    (root / "test_list.txt").write_text("".join(f"{n}\n" for n, t in zip(names, is_test) if t))
    return root


_CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from cxrbench.data.describe import describe_dataset
desc = describe_dataset("chestxray14", sys.argv[1])
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak_bytes": peak, "n_images": desc["n_images"],
                  "n_patients": desc["patients"]["n_patients"], "counts": desc["counts"],
                  "unreadable": desc["image_size"].get("unreadable_headers")}))
"""


@pytest.mark.slow
def test_describe_chestxray14_full_size_under_60s_and_2gib(benchmark, tmp_path):
    t0 = time.perf_counter()
    root = build_tree(tmp_path / "nih")
    build_s = time.perf_counter() - t0
    cores = sorted(os.sched_getaffinity(0))[:2] if hasattr(os, "sched_getaffinity") else None
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")

    def run() -> dict:
        pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
        out = subprocess.run([sys.executable, "-c", _CHILD, str(root)], capture_output=True, text=True, env=env,
                             preexec_fn=pin, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(build_seconds=build_s, describe_seconds=result["seconds"],
                                peak_mib=result["peak_bytes"] / 2**20)
    print(f"\nbuild {build_s:.1f} s; describe {result['seconds']:.1f} s, peak RSS {result['peak_bytes'] / 2**20:.0f} MiB")
    assert result["n_images"] == N_ROWS and result["n_patients"] == N_PATIENTS
    assert result["unreadable"] == 0
    assert sum(row["total"] for row in result["counts"].values()) == N_ROWS
    assert result["seconds"] < LIMIT_S, result["seconds"]
    assert result["peak_bytes"] < LIMIT_BYTES, result["peak_bytes"]
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 < LIMIT_BYTES
