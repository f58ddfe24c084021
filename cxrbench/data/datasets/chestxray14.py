"""``chestxray14``: NIH ChestX-ray14 (Wang et al., CVPR 2017), 14-label multi-label classification."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from cxrbench.data.datasets.common import file_table, is_debris, match_classes, norm
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

NAME = "chestxray14"
FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
            "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia")
ALIASES = {"pleural": "Pleural_Thickening", "infiltrate": "Infiltration"}
NO_FINDING = "nofinding"
COLUMNS = ("Image Index", "Finding Labels", "Patient ID")
SPLIT_LISTS = (("train", "train_val_list.txt"), ("test", "test_list.txt"))



class ChestXray14Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allow_missing: bool = False
    """Skip (and list) CSV rows whose image file is missing instead of failing."""
    csv: str | None = None
    """The label file (default: the newest Data_Entry_2017*.csv in the root)."""


def find_csv(root: Path, name: str | None) -> Path | None:
    if name is not None:
        path = Path(name) if os.path.isabs(name) else root / name
        return path if path.is_file() else None
    found = sorted(p for p in root.glob("Data_Entry_2017*.csv") if not is_debris(p.name))
    return found[-1] if found else None  # Data_Entry_2017_v2020.csv sorts after Data_Entry_2017.csv


def index_images(root: Path) -> dict[str, Path]:
    """File name -> path of every PNG under ``root/images*/`` (any depth), debris skipped."""
    out: dict[str, Path] = {}
    for top in sorted(root.iterdir()):
        if not (top.is_dir() and top.name.lower().startswith("images")):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not is_debris(d))
            for f in filenames:
                if f.lower().endswith(".png") and not is_debris(f):
                    out.setdefault(f, Path(dirpath) / f)
    return out


def parse_findings(cell: str, where: str) -> list[int]:
    """Indices into FINDINGS of a ``Finding Labels`` cell (pipe-separated; "No Finding" = none)."""
    lookup = {norm(f): i for i, f in enumerate(FINDINGS)}
    out = []
    for part in str(cell).split("|"):
        key = norm(part)
        if key in ("", NO_FINDING):
            continue
        if key not in lookup:
            raise DatasetError(f"dataset {NAME!r}: {where}: unknown finding {part.strip()!r}; expected "
                               f"{list(FINDINGS)} or 'No Finding'")
        out.append(lookup[key])
    return out


def read_split_lists(base: Path) -> dict[str, str] | None:
    """Image name -> 'train' / 'test' from the official lists, or None when they are absent."""
    paths = [(part, base / fname) for part, fname in SPLIT_LISTS]
    if not any(p.is_file() for _, p in paths):
        return None
    missing = [str(p) for _, p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"dataset {NAME!r}: found one official split list but not {missing}")
    out: dict[str, str] = {}
    for part, path in paths:
        for line in path.read_text().splitlines():
            name = line.strip()
            if not name:
                continue
            if name in out:
                raise DatasetError(f"dataset {NAME!r}: {name} is in both train_val_list.txt and test_list.txt")
            out[name] = part
    return out


def load(request: DataRequest) -> SampleTable:
    """Rows of ChestX-ray14 (labels in the suite's class order; see ``SPEC.layout``)."""
    opts: ChestXray14Options = request.options  # type: ignore[assignment]
    classes = list(request.classes) or list(FINDINGS)
    columns = match_classes(NAME, classes, FINDINGS, ALIASES, what="labels")
    root = request.root
    assert root is not None  # SPEC.default_folder is set: the core always resolves one
    base = root.parent if root.is_file() else root
    csv = find_csv(base, opts.csv or (str(root) if root.is_file() else None))
    if csv is None:
        raise missing_data_error(SPEC, f"no Data_Entry_2017*.csv in {base}", [base], request.options)
    import pandas as pd  # on load only: registering the dataset stays pandas-free

    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types
        raise DatasetError(f"dataset {NAME!r}: cannot read {csv}: {exc}") from None
    df.columns = [c.strip() for c in df.columns]
    absent = [c for c in COLUMNS if c not in df.columns]
    if absent:
        raise DatasetError(f"dataset {NAME!r}: {csv} lacks column(s) {absent} (has {list(df.columns)[:10]})")

    images = index_images(base)
    if not images:
        raise missing_data_error(SPEC, f"no images*/ folder with PNG files under {base}", [base], request.options)
    split_of = read_split_lists(base)
    in_csv = set(df["Image Index"])
    if split_of is not None:
        stray = [n for n in split_of if n not in in_csv]
        if stray and not opts.allow_missing:
            raise DatasetError(f"dataset {NAME!r}: the official split lists name {len(stray)} image(s) that are not "
                               f"in {csv.name}: {stray[:5]} (option allow_missing: true skips them)")

    files, labels, patients, split, skipped = [], [], [], [], []
    k = len(FINDINGS)
    for row, (name, cell, patient) in enumerate(zip(df["Image Index"], df["Finding Labels"], df["Patient ID"])):
        where = f"{csv.name} line {row + 2} ({name})"
        if name not in images:
            skipped.append((name, f"{where}: image file not found under {base}/images*/"))
            continue
        part = split_of.get(name) if split_of is not None else None
        if split_of is not None and part is None:
            skipped.append((name, f"{where}: in neither train_val_list.txt nor test_list.txt"))
            continue
        hot = np.zeros(k, dtype=np.int64)
        hot[parse_findings(cell, where)] = 1
        files.append(images[name])
        labels.append(hot[columns])
        patients.append(str(patient).strip())
        split.append(part)
    if skipped and not opts.allow_missing:
        listed = "\n".join(f"  {r}" for _, r in skipped[:5])
        raise DatasetError(f"dataset {NAME!r}: {len(skipped)} row(s) of {csv} cannot be used, e.g.:\n{listed}\n"
                           "(option allow_missing: true skips and lists them)")
    if not files:
        raise DatasetError(f"dataset {NAME!r}: no row of {csv} has an image file under {base}/images*/")
    lists = [base / f for _, f in SPLIT_LISTS if split_of is not None]
    return file_table(NAME, base, files, np.asarray(labels).reshape(len(files), len(classes)), classes,
                      patient_ids=patients, official_split=split if split_of is not None else None,
                      label_file=csv, extra_files=lists, skipped=skipped)


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("multilabel",),
    description=("NIH ChestX-ray14: 112,120 frontal X-rays of 30,805 patients, 14 findings, multi-hot in the "
                 "suite's class order (any subset of the 14 names, case-insensitive; 'No Finding' = all 0). "
                 "Patient ids from 'Patient ID'; official patient-wise split from train_val_list.txt / "
                 "test_list.txt (validation is carved from train by patient). Options: allow_missing "
                 "(skip and list rows without an image file, e.g. a partial download), csv (label file)."),
    source=("https://nihcc.app.box.com/v/ChestXray-NIHCC (Wang et al., CVPR 2017); "
            "also https://www.kaggle.com/datasets/nih-chest-xrays/data"),
    layout=("<root>/Data_Entry_2017*.csv          (Image Index, Finding Labels, Patient ID, ...)\n"
            "<root>/images*/[images/]*.png        (e.g. images_001/images/00000001_000.png)\n"
            "<root>/train_val_list.txt, test_list.txt   (optional: the official patient-wise split)"),
    options_schema=ChestXray14Options,
    default_folder="chestxray14",
)
