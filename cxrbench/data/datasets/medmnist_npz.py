"""``medmnist``: MedMNIST 2D datasets (PneumoniaMNIST, ChestMNIST, ...) read from their ``.npz`` files.

The files are read with numpy (keys ``{train,val,test}_images`` ``(N, H, W[, 3])`` uint8 and
``{train,val,test}_labels`` ``(N, 1)`` or ``(N, K)``). The ``medmnist`` package
(``pip install 'cxrbench[medmnist]'``) is only needed to download a missing file
(option ``download: true``, needs network access).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from cxrbench.data.datasets.chestxray14 import ALIASES as CXR14_ALIASES
from cxrbench.data.datasets.chestxray14 import FINDINGS
from cxrbench.data.datasets.common import fingerprint, match_classes
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

NAME = "medmnist"
SPLITS = ("train", "val", "test")
KNOWN_CLASSES: dict[str, tuple[str, ...]] = {
    "pneumoniamnist": ("normal", "pneumonia"),
    "chestmnist": FINDINGS,
}
DEFAULT_FLAG = {"binary": "pneumoniamnist", "multilabel": "chestmnist"}

class MedMNISTOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flag: str | None = None
    """MedMNIST dataset flag, e.g. pneumoniamnist, chestmnist (default by task: binary -> pneumoniamnist,
    multilabel -> chestmnist)."""
    size: Literal[28, 64, 128, 224] = 28
    download: bool = False
    """Download a missing file with the medmnist package (needs network access)."""

    @field_validator("flag")
    @classmethod
    def _lower(cls, v: str | None) -> str | None:
        return v.lower() if v else None


def npz_name(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def _download(flag: str, size: int, root: Path) -> None:
    try:
        import medmnist
    except ImportError:
        raise DatasetError(f"dataset {NAME!r}: option download: true needs the medmnist package: "
                           "pip install 'cxrbench[medmnist]'") from None
    info = medmnist.INFO.get(flag)
    if info is None:
        raise DatasetError(f"dataset {NAME!r}: unknown MedMNIST flag {flag!r}; known: {sorted(medmnist.INFO)}")
    root.mkdir(parents=True, exist_ok=True)
    try:
        getattr(medmnist, info["python_class"])(split="test", download=True, root=str(root), size=size)
    except Exception as exc:  # noqa: BLE001 - network and checksum errors of every kind
        raise DatasetError(f"dataset {NAME!r}: downloading {npz_name(flag, size)} into {root} failed: "
                           f"{type(exc).__name__}: {exc}") from None


def _class_names(flag: str) -> tuple[str, ...] | None:
    if flag in KNOWN_CLASSES:
        return KNOWN_CLASSES[flag]
    try:
        import medmnist
    except ImportError:
        return None
    info = medmnist.INFO.get(flag)
    return tuple(info["label"][str(i)] for i in range(len(info["label"]))) if info else None


class NpzImages:
    """``load_image`` over the image arrays of a MedMNIST npz, loaded on first use (thread-safe)."""

    def __init__(self, path: str, offsets: dict[str, tuple[int, int]]):
        self.path, self.offsets = path, offsets
        self._arrays: list[tuple[int, int, np.ndarray]] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"path": self.path, "offsets": self.offsets}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["offsets"])

    def _load(self) -> list[tuple[int, int, np.ndarray]]:
        with self._lock:
            if self._arrays is None:
                with np.load(self.path) as npz:
                    self._arrays = [(a, b, npz[f"{s}_images"]) for s, (a, b) in self.offsets.items()]
        return self._arrays

    def __call__(self, i: int, size: int) -> np.ndarray:
        for start, stop, arr in self._arrays or self._load():
            if start <= i < stop:
                return arr[i - start]
        raise IndexError(f"row {i} is not in {self.path}")


def load(request: DataRequest) -> SampleTable:
    """Rows of a MedMNIST npz, with its official train/val/test split."""
    opts: MedMNISTOptions = request.options  # type: ignore[assignment]
    flag = opts.flag or DEFAULT_FLAG.get(request.task) or ""
    if not flag:
        raise DatasetError(f"dataset {NAME!r}: set option flag (e.g. pneumoniamnist) for a {request.task} task")
    root = request.root
    assert root is not None  # SPEC.default_folder is set: the core always resolves one
    path = root / npz_name(flag, opts.size)
    if not path.is_file() and opts.download:
        _download(flag, opts.size, root)
    if not path.is_file():
        raise DatasetError(
            f"dataset {NAME!r}: {path} not found.\n"
            f"  get it: option download: true (needs network and `pip install 'cxrbench[medmnist]'`), "
            f"or download {npz_name(flag, opts.size)} from https://medmnist.com (Zenodo) and put it in {root}\n"
            f"  (dataset.root = the folder holding it; default $CXRBENCH_DATA/medmnist, else ~/.medmnist)\n"
            f"  or run the same suite on synthetic data: --set dataset.name=synthetic_cxr --set dataset.root=null "
            f"--set 'dataset.options={{}}'")
    try:
        with np.load(path) as npz:
            labels = {s: np.asarray(npz[f"{s}_labels"]) for s in SPLITS}
            shape = tuple(npz["train_images"].shape[1:])
    except Exception as exc:  # noqa: BLE001 - zip, key and format errors
        raise DatasetError(f"dataset {NAME!r}: cannot read {path} (expected keys {{train,val,test}}_images and "
                           f"_labels): {type(exc).__name__}: {exc}") from None

    y = np.concatenate([labels[s].reshape(len(labels[s]), -1) for s in SPLITS]).astype(np.int64)
    multilabel = y.shape[1] > 1
    if multilabel != (request.task == "multilabel"):
        kind = f"multilabel ({y.shape[1]} labels)" if multilabel else "single-label"
        raise DatasetError(f"dataset {NAME!r}: {path.name} is {kind}, but the suite's task is {request.task!r}")
    known = _class_names(flag)
    classes = list(request.classes) or list(known or [])
    if multilabel:
        available = known or tuple(classes)
        if len(available) != y.shape[1]:
            raise DatasetError(f"dataset {NAME!r}: {path.name} has {y.shape[1]} labels; name them all in task.classes")
        y = y[:, match_classes(NAME, classes, available, CXR14_ALIASES, what="labels")]
    else:
        y = y[:, 0]
        n_classes = int(y.max()) + 1 if len(y) else 0
        if known is not None:
            if len(classes) != len(known):
                raise DatasetError(f"dataset {NAME!r}: {flag} has classes {list(known)} (case-insensitive, any "
                                   f"order), but the suite names {classes}")
            remap = np.empty(len(known), dtype=np.int64)
            remap[match_classes(NAME, classes, known)] = np.arange(len(classes))
            y = remap[y]
        elif n_classes > len(classes):
            raise DatasetError(f"dataset {NAME!r}: {path.name} has labels 0..{n_classes - 1} but the suite names "
                               f"{len(classes)} classes (taken in label order)")
    offsets, split, ids, start = {}, [], [], 0
    for s in SPLITS:
        n = len(labels[s])
        offsets[s] = (start, start + n)
        split += [s] * n
        ids += [f"{flag}/{s}/{j:06d}" for j in range(n)]
        start += n
    return SampleTable(ids=ids, labels=y, class_names=classes, load_image=NpzImages(str(path), offsets),
                       patient_ids=None, official_split=split, synthetic=False,
                       fingerprint=fingerprint(NAME, root, [path], extra=[flag, opts.size]),
                       root=str(root), archive=str(path), image_shape=shape,
                       notes=["MedMNIST ships no patient ids: splits cannot be grouped by patient"])


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("binary", "multiclass", "multilabel"),
    description=("MedMNIST 2D npz files (PneumoniaMNIST = ChestX-ray2017 resized, ChestMNIST = ChestX-ray14 "
                 "resized, or any 2D flag) at 28/64/128/224 px with the official train/val/test split. Options: "
                 "flag (default pneumoniamnist for binary, chestmnist for multilabel), size (28), download "
                 "(needs the medmnist extra and network). No patient ids."),
    source=("https://medmnist.com (Yang et al., MedMNIST v2, Scientific Data 2023; files on Zenodo), "
            "or `pip install 'cxrbench[medmnist]'` and option download: true"),
    layout=("<root>/{flag}.npz (28 px) or <root>/{flag}_{64|128|224}.npz, e.g. pneumoniamnist_224.npz\n"
            "default root: $CXRBENCH_DATA/medmnist, else ~/.medmnist (the medmnist package's folder)"),
    options_schema=MedMNISTOptions,
    default_folder="medmnist",
    fallback_root="~/.medmnist",
    root_must_exist=False,
)
