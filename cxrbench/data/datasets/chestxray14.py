"""``chestxray14``: NIH ChestX-ray14 (Wang et al., CVPR 2017), 14-label multi-label classification."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

from cxrbench.data.datasets.common import file_table, is_debris, norm
from cxrbench.data.label_space import missing_note, requested_classes, select_classes
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

if TYPE_CHECKING:  # pandas is imported on load only: listing datasets stays fast
    import pandas as pd

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


def index_images(root: Path) -> dict[str, str]:
    """File name -> path of every PNG under ``root/images*/`` (any depth), debris skipped.

    Names only (``os.walk`` lists folders without a ``stat`` per file): 112,120 files in well under
    a second."""
    out: dict[str, str] = {}
    for top in sorted(root.iterdir()):
        if not (top.is_dir() and top.name.lower().startswith("images")):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not is_debris(d))
            for f in filenames:
                if f[-4:].lower() == ".png" and not is_debris(f) and f not in out:
                    out[f] = os.path.join(dirpath, f)
    return out


def parse_findings(cells: pd.Series, names: pd.Series, csv: Path) -> np.ndarray:
    """Multi-hot ``(N, 14)`` (FINDINGS order) of the ``Finding Labels`` cells (pipe-separated;
    "No Finding" = none); an unknown finding names its CSV line."""
    parts = cells.astype(str).str.split("|").explode()
    keys = parts.str.lower().str.replace(r"[^0-9a-z]", "", regex=True)
    codes = keys.map({norm(f): i for i, f in enumerate(FINDINGS)})
    unknown = codes.isna() & ~keys.isin(["", NO_FINDING])
    if unknown.any():
        row = int(parts.index[unknown.to_numpy()][0])
        part = parts[unknown].iloc[0]
        raise DatasetError(f"dataset {NAME!r}: {csv.name} line {row + 2} ({names.iloc[row]}): unknown finding "
                           f"{part.strip()!r}; expected {list(FINDINGS)} or 'No Finding'")
    hot = np.zeros((len(cells), len(FINDINGS)), dtype=np.int64)
    found = codes.notna().to_numpy()
    hot[parts.index.to_numpy()[found].astype(np.int64), codes.to_numpy()[found].astype(np.int64)] = 1
    return hot


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
    requested_classes(NAME, classes, FINDINGS)  # spellings such as "pleural" are label_space SYNONYMS
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

    names = df["Image Index"].str.strip()
    hot = parse_findings(df["Finding Labels"], names, csv)
    found = names.map(images)
    part = names.map(split_of) if split_of is not None else pd.Series([None] * len(df), dtype=object)
    no_file = found.isna().to_numpy()
    no_split = (split_of is not None) & part.isna().to_numpy() & ~no_file
    skipped = [(names[i], f"{csv.name} line {i + 2} ({names[i]}): "
                          + (f"image file not found under {base}/images*/" if no_file[i]
                             else "in neither train_val_list.txt nor test_list.txt"))
               for i in np.flatnonzero(no_file | no_split)]
    if skipped and not opts.allow_missing:
        listed = "\n".join(f"  {r}" for _, r in skipped[:5])
        raise DatasetError(f"dataset {NAME!r}: {len(skipped)} row(s) of {csv} cannot be used, e.g.:\n{listed}\n"
                           "(option allow_missing: true skips and lists them)")
    rows = np.flatnonzero(~(no_file | no_split))
    if len(rows) == 0:
        raise DatasetError(f"dataset {NAME!r}: no row of {csv} has an image file under {base}/images*/")
    labels, mask, missing = select_classes({f: hot[rows, j] for j, f in enumerate(FINDINGS)}, classes)
    lists = [base / f for _, f in SPLIT_LISTS if split_of is not None]
    table = file_table(NAME, base, found.to_numpy()[rows].tolist(), labels, classes,
                       patient_ids=df["Patient ID"].str.strip().to_numpy()[rows].tolist(),
                       official_split=part.to_numpy()[rows].tolist() if split_of is not None else None,
                       label_file=csv, extra_files=lists, skipped=skipped,
                       extras={"source": [NAME] * len(rows),
                               **({"view": df["View Position"].str.strip().to_numpy()[rows].tolist()}
                                  if "View Position" in df.columns else {})})
    table.label_mask = None if mask.all() else mask
    table.notes += missing_note(NAME, missing)
    return table


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
