"""Miniature copies of the real dataset layouts, for tests, benchmarks and trying a suite offline.

Each ``make_*`` function writes a few tiny images under ``root`` with the real folder structure
and file-name patterns, mixed image modes and sizes, a truncated file and macOS archive debris
where the public archives have them. The images are noise over a gradient: they exercise the
harness, they teach a model nothing.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

MODES = ("L", "RGB", "CMYK", "P")


def image(size: tuple[int, int], mode: str = "L", seed: int = 0) -> Image.Image:
    """A (width, height) test image in ``mode`` (L, RGB, CMYK, P, LA, RGBA or I;16)."""
    w, h = size
    rng = np.random.default_rng(seed)
    base = np.linspace(40, 200, w)[None, :] + np.linspace(0, 30, h)[:, None]
    gray = np.clip(base + rng.normal(0, 20, (h, w)), 0, 255).astype(np.uint8)
    if mode == "I;16":
        return Image.fromarray(gray.astype(np.uint16) * 257)  # the full 16-bit range, as PNG stores samples
    img = Image.fromarray(gray, "L")
    if mode == "P":
        return img.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return img if mode == "L" else img.convert(mode)


def write_image(path: Path, size: tuple[int, int], mode: str = "L", seed: int = 0, fmt: str | None = None) -> Path:
    """Write a test image; ``fmt`` defaults to JPEG for .jpg/.jpeg (PNG for palette images) else by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = image(size, mode, seed)
    if fmt is None:
        jpeg = path.suffix.lower() in (".jpg", ".jpeg") and mode in ("L", "RGB", "CMYK")
        fmt = "JPEG" if jpeg else "PNG"
    img.save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes (a truncated download)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(16, int(len(data) * keep))])
    return path


def add_debris(root: Path, mirror: Path) -> None:
    """``__MACOSX/._*`` resource forks and ``.DS_Store`` files, as in archives zipped on a Mac."""
    for folder in [mirror, *[p for p in mirror.rglob("*") if p.is_dir()]]:
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 32)
    for f in list(mirror.rglob("*.*")):
        if f.is_file() and f.name != ".DS_Store":
            fork = root / "__MACOSX" / f.relative_to(root).parent / f"._{f.name}"
            fork.parent.mkdir(parents=True, exist_ok=True)
            fork.write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)


# (split, class folder, file name) of the miniature ChestX-ray2017; sizes/modes cycle through MODES.
KERMANY_FILES = [
    ("train", "NORMAL", "IM-0115-0001.jpeg"), ("train", "NORMAL", "IM-0115-0002.jpeg"),
    ("train", "NORMAL", "IM-0117-0001.jpeg"), ("train", "NORMAL", "IM-0119-0001.jpeg"),
    ("train", "NORMAL", "NORMAL2-IM-1427-0001.jpeg"), ("train", "NORMAL", "NORMAL2-IM-1427-0002.jpeg"),
    ("train", "NORMAL", "NORMAL2-IM-1430-0001.jpeg"), ("train", "NORMAL", "NORMAL2-IM-1431-0001.jpeg"),
    ("train", "PNEUMONIA", "person1946_bacteria_4874.jpeg"), ("train", "PNEUMONIA", "person1946_bacteria_4875.jpeg"),
    ("train", "PNEUMONIA", "person1946_bacteria_4876.jpeg"), ("train", "PNEUMONIA", "person1_virus_6.jpeg"),
    ("train", "PNEUMONIA", "person1_virus_7.jpeg"), ("train", "PNEUMONIA", "person10_bacteria_30.jpeg"),
    ("train", "PNEUMONIA", "person11_virus_38.jpeg"), ("train", "PNEUMONIA", "person12_bacteria_46.jpeg"),
    ("train", "PNEUMONIA", "person13_virus_44.jpeg"),
    ("val", "NORMAL", "NORMAL2-IM-1436-0001.jpeg"), ("val", "NORMAL", "NORMAL2-IM-1437-0001.jpeg"),
    ("val", "PNEUMONIA", "person1947_bacteria_4876.jpeg"), ("val", "PNEUMONIA", "person1949_virus_4880.jpeg"),
    ("test", "NORMAL", "IM-0001-0001.jpeg"), ("test", "NORMAL", "IM-0003-0001.jpeg"),
    ("test", "NORMAL", "NORMAL2-IM-0012-0001.jpeg"), ("test", "NORMAL", "NORMAL2-IM-0013-0001.jpeg"),
    ("test", "PNEUMONIA", "person100_bacteria_475.jpeg"), ("test", "PNEUMONIA", "person101_bacteria_484.jpeg"),
    ("test", "PNEUMONIA", "person82_virus_154.jpeg"), ("test", "PNEUMONIA", "person83_virus_156.jpeg"),
    ("test", "PNEUMONIA", "person85_bacteria_422.jpeg"),
]
KERMANY_CORRUPT = ("train", "PNEUMONIA", "person14_bacteria_51.jpeg")
SIZES = ((40, 48), (52, 40), (64, 64), (36, 44), (70, 56))


def make_kermany(root: Path, corrupt: bool = True, debris: bool = True) -> Path:
    """``root/chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}`` (30 images + 1 truncated); returns chest_xray."""
    base = root / "chest_xray"
    for k, (part, cls, name) in enumerate(KERMANY_FILES):
        write_image(base / part / cls / name, SIZES[k % len(SIZES)], MODES[k % len(MODES)], seed=k)
    if corrupt:
        truncate(write_image(base.joinpath(*KERMANY_CORRUPT), (64, 64), "L", seed=99), 0.4)
    if debris:
        add_debris(base, base)  # __MACOSX inside chest_xray/, next to train/ (as in the Kaggle archive)
    return base


LUNG_FOLDERS = ("Normal", "Lung_Opacity", "Viral Pneumonia")


def make_lung_xray(root: Path, per_class: int = 6, nested: str | None = "Lung X-Ray Image",
                   debris: bool = True) -> Path:
    """``root/[nested]/{Normal,Lung_Opacity,Viral Pneumonia}/*.jpg`` with ``per_class`` images each."""
    base = root / nested if nested else root
    for c, folder in enumerate(LUNG_FOLDERS):
        for j in range(per_class):
            k = c * per_class + j
            ext = ".png" if MODES[k % len(MODES)] == "P" else ".jpg"
            write_image(base / folder / f"{folder.split()[0].lower()}_{j:03d}{ext}", SIZES[k % len(SIZES)],
                        MODES[k % len(MODES)], seed=k)
    if debris:
        add_debris(root, base)
    return base


# (Image Index, Finding Labels, Patient ID, split) of the miniature ChestX-ray14.
CXR14_ROWS = [
    ("00000001_000.png", "Cardiomegaly", 1, "train"), ("00000001_001.png", "Cardiomegaly|Emphysema", 1, "train"),
    ("00000001_002.png", "Cardiomegaly|Effusion", 1, "train"), ("00000002_000.png", "No Finding", 2, "train"),
    ("00000003_000.png", "Hernia", 3, "test"), ("00000003_001.png", "Hernia|Infiltration", 3, "test"),
    ("00000004_000.png", "Mass|Nodule", 4, "train"), ("00000005_000.png", "No Finding", 5, "train"),
    ("00000005_001.png", "Atelectasis", 5, "train"), ("00000006_000.png", "No Finding", 6, "test"),
    ("00000007_000.png", "Pneumothorax|Pleural_Thickening", 7, "train"), ("00000008_000.png", "Edema", 8, "test"),
    ("00000009_000.png", "Consolidation|Pneumonia", 9, "train"), ("00000010_000.png", "Fibrosis", 10, "train"),
    ("00000011_000.png", "No Finding", 11, "test"), ("00000012_000.png", "Effusion|Infiltration", 12, "train"),
    ("00000013_000.png", "No Finding", 13, "train"), ("00000013_001.png", "Effusion", 13, "train"),
    ("00000014_000.png", "Atelectasis|Effusion", 14, "test"), ("00000015_000.png", "No Finding", 15, "train"),
    ("00000016_000.png", "Cardiomegaly", 16, "test"), ("00000017_000.png", "Nodule", 17, "train"),
    ("00000018_000.png", "No Finding", 18, "train"), ("00000019_000.png", "Infiltration", 19, "test"),
]
CXR14_CORRUPT = "00000020_000.png"


def make_chestxray14(root: Path, corrupt: bool = True, missing: int = 0, debris: bool = True) -> Path:
    """``root/Data_Entry_2017_v2020.csv``, ``images_001/images/*.png``, ``train_val_list.txt``, ``test_list.txt``.

    ``missing`` leaves out the image files of the last ``missing`` rows (a partial download).
    """
    root.mkdir(parents=True, exist_ok=True)
    rows = list(CXR14_ROWS) + ([(CXR14_CORRUPT, "No Finding", 20, "train")] if corrupt else [])
    modes = ("L", "L", "RGBA", "I;16", "L", "RGB")
    for k, (name, *_rest) in enumerate(rows):
        if k >= len(rows) - missing:
            continue
        path = write_image(root / "images_001" / "images" / name, (48 + k % 3 * 8,) * 2, modes[k % len(modes)], k)
        if name == CXR14_CORRUPT:
            truncate(path, 0.5)
    header = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n")
    lines = [f"{n},{f},{n[9:12].lstrip('0') or 0},{p},{40 + p},M,PA,1024,1024,0.143,0.143\n" for n, f, p, _ in rows]
    (root / "Data_Entry_2017_v2020.csv").write_text(header + "".join(lines))
    (root / "train_val_list.txt").write_text("".join(f"{n}\n" for n, _, _, s in rows if s == "train"))
    (root / "test_list.txt").write_text("".join(f"{n}\n" for n, _, _, s in rows if s == "test"))
    if debris:
        (root / ".DS_Store").write_bytes(b"\x00" * 16)
        (root / "images_001" / "images" / "._00000001_000.png").write_bytes(b"\x00\x05\x16\x07")
    return root


def make_medmnist(root: Path, flag: str = "pneumoniamnist", size: int = 28, counts: tuple[int, int, int] = (40, 10, 20),
                  n_labels: int | None = None, seed: int = 0) -> Path:
    """A ``{flag}[_size].npz`` in the real key format (``n_labels`` > 1: multi-hot labels ``(N, n_labels)``)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for part, n in zip(("train", "val", "test"), counts):
        arrays[f"{part}_images"] = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        if n_labels and n_labels > 1:
            arrays[f"{part}_labels"] = (rng.uniform(size=(n, n_labels)) < 0.3).astype(np.uint8)
        else:
            arrays[f"{part}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    path = root / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
    np.savez_compressed(path, **arrays)
    return path


def jpeg_bytes(size: tuple[int, int], mode: str = "L", seed: int = 0, quality: int = 90) -> bytes:
    """A JPEG file's bytes (benchmarks write many of these)."""
    buf = io.BytesIO()
    image(size, mode, seed).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def tiny_suite(path: Path, dataset: dict, task: dict, **changes) -> Path:
    """Write a tiny suite for a miniature dataset (32 px, 1 channel, lenet, 1 epoch, batch 8); returns its path.

    ``changes`` replace top-level blocks (``split``, ``metrics``, ``models``, ...).
    """
    import yaml

    multilabel = task.get("type") == "multilabel"
    data = {
        "name": "tiny_data",
        "task": task,
        "dataset": dataset,
        "split": {"strategy": "official", "seed": 0},
        "input": {"image_size": 32, "channels": 1, "normalization": "dataset"},
        "augment": [],
        "models": ["lenet"],
        "train": {"epochs": 1, "batch_size": 8, "save_checkpoints": False},
        "seeds": [0],
        "metrics": {"primary": "mean_auc" if multilabel else "accuracy",
                    "report": ["mean_auc"] if multilabel else ["accuracy"], "bootstrap": 0},
        "profile": {"cost": False},
    }
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
