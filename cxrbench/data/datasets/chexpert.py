"""``chexpert``: Stanford CheXpert (Irvin et al., AAAI 2019), CheXpert-v1.0 and CheXpert-v1.0-small as shipped.

The root holds ``train.csv`` and ``valid.csv`` (columns ``Path, Sex, Age, Frontal/Lateral, AP/PA``
and the 14 observations); ``Path`` is relative to the root's *parent*
(``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``) or, in re-packaged copies, to
the root itself. Labels and the uncertainty policy: :mod:`cxrbench.data.datasets.chexpert_labels`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import os
import re
from pathlib import Path

import numpy as np

from cxrbench.data.datasets.chexpert_labels import LabelerOptions, check_columns, concat, labelled_table, read_labels
from cxrbench.data.datasets.common import file_table
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

if TYPE_CHECKING:  # pandas is imported on load only: listing datasets stays fast
    import pandas as pd

NAME = "chexpert"
CSVS = (("train", "train.csv"), ("test", "valid.csv"))
"""The official split: train.csv is training, valid.csv (radiologist consensus labels) the test set."""
META = ("Path", "Frontal/Lateral", "AP/PA")
_PATIENT = re.compile(r"(?:^|/)(patient\d+)/")
_ARCHIVE_DIR = re.compile(r"^CheXpert-v1\.0[^/]*/", re.IGNORECASE)


class ChexpertOptions(LabelerOptions):
    frontal_only: bool = True
    """Keep frontal images only (``Frontal/Lateral == Frontal``)."""


def find_base(root: Path) -> Path | None:
    """The folder holding train.csv: ``root`` itself or its one CheXpert-v1.0* sub-folder."""
    if (root / "train.csv").is_file() or (root / "valid.csv").is_file():
        return root
    inner = sorted(p for p in root.glob("CheXpert-v1.0*") if (p / "train.csv").is_file())
    return inner[0] if inner else None


def relative_paths(base: Path, paths: pd.Series) -> pd.Series:
    """``Path`` cells relative to ``base``: a leading ``<base name>/`` or ``CheXpert-v1.0*/`` is dropped."""
    p = paths.str.strip().str.replace("\\", "/", regex=False)
    own = p.str.startswith(base.name + "/")
    p = p.where(~own, p.str.slice(len(base.name) + 1))
    return p.where(own, p.str.replace(_ARCHIVE_DIR, "", regex=True))


def _read(base: Path, fname: str) -> pd.DataFrame:
    import pandas as pd
    path = base / fname
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types
        raise DatasetError(f"dataset {NAME!r}: cannot read {path}: {exc}") from None
    df.columns = [c.strip() for c in df.columns]
    check_columns(NAME, df, path, META)
    return df


def load(request: DataRequest) -> SampleTable:
    """Rows of CheXpert (see ``SPEC.layout``): one per image, labels in the suite's class order."""
    import pandas as pd
    opts: ChexpertOptions = request.options  # type: ignore[assignment]
    root = request.root
    assert root is not None  # SPEC.default_folder is set
    base = find_base(root)
    if base is None:
        raise missing_data_error(SPEC, f"no train.csv / valid.csv in {root}", [root], request.options)
    parts = []
    for split, fname in CSVS:
        if not (base / fname).is_file():
            raise DatasetError(f"dataset {NAME!r}: {base} has no {fname} (CheXpert ships train.csv and valid.csv)")
        df = _read(base, fname)
        m = read_labels(NAME, df, base / fname, request.classes, opts)
        frame = pd.DataFrame({"rel": relative_paths(base, df["Path"]), "where": [f"{fname} line {i + 2}"
                                                                                  for i in range(len(df))]})
        frame["split"], frame["lateral"] = split, df["Frontal/Lateral"].str.strip().str.lower() == "lateral"
        frame["appa"] = df["AP/PA"].str.strip()
        for col in ("Sex", "Age"):
            frame[col.lower()] = df[col].str.strip() if col in df.columns else ""
        parts.append((frame, m))
    frame = pd.concat([f for f, _ in parts], ignore_index=True)
    matrix = concat([m for _, m in parts])
    keep = ~frame["lateral"].to_numpy() if opts.frontal_only else np.ones(len(frame), dtype=bool)
    n_lateral = int((~keep).sum())

    patient = frame["rel"].str.extract(_PATIENT, expand=False)
    no_patient = np.flatnonzero(patient.isna().to_numpy())
    if len(no_patient):
        i = int(no_patient[0])
        raise DatasetError(f"dataset {NAME!r}: {frame['where'][i]}: Path {frame['rel'][i]!r} has no patientNNNNN "
                           f"folder")
    files = [os.path.join(base, r) for r in frame["rel"]]
    exists = np.fromiter((keep[i] and os.path.isfile(f) for i, f in enumerate(files)), dtype=bool, count=len(files))
    lost = np.flatnonzero(keep & ~exists)
    skipped = [(frame["rel"][i], f"{frame['where'][i]}: image file {files[i]} not found") for i in lost]
    if skipped and not opts.allow_missing:
        listed = "\n".join(f"  {r}" for _, r in skipped[:5])
        raise DatasetError(f"dataset {NAME!r}: {len(skipped)} row(s) cannot be used, e.g.:\n{listed}\n"
                           "(option allow_missing: true skips and lists them)")
    rows = np.flatnonzero(keep & exists)
    if len(rows) == 0:
        raise DatasetError(f"dataset {NAME!r}: no usable row in {base}/train.csv, valid.csv")
    view = np.where(frame["lateral"], "Lateral", frame["appa"].replace("", "Frontal"))[rows]
    table = file_table(NAME, base, [files[i] for i in rows], matrix.labels[rows], matrix.classes,
                       patient_ids=patient.to_numpy()[rows].tolist(), official_split=frame["split"].to_numpy()[rows].tolist(),
                       label_file=base / "train.csv", extra_files=[base / "valid.csv"], skipped=skipped,
                       extras={"view": view.tolist(), "source": [NAME] * len(rows),
                               "sex": frame["sex"].to_numpy()[rows].tolist(), "age": frame["age"].to_numpy()[rows].tolist()})
    labelled_table(table, NAME, opts, matrix, rows)
    table.notes += ["official split: train.csv -> train, valid.csv (radiologist consensus) -> test; validation is "
                   "carved from train by patient",
                   *([f"{n_lateral} lateral image(s) left out (frontal_only: true)"] if n_lateral else [])]
    return table


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("multilabel",),
    description=("Stanford CheXpert v1.0 (full or -small): 224,316 chest radiographs of 65,240 patients, 14 "
                 "observations from the CheXpert labeler (1 / 0 / -1 uncertain / blank), mapped to the shared "
                 "label vocabulary (Pleural Effusion -> Effusion). Options: uncertain (ones | zeros | ignore = "
                 "masked), blank (ignore = masked | zeros), frontal_only (default true), allow_missing. Patient "
                 "from the path; official split train.csv -> train, valid.csv -> test; view from AP/PA."),
    source="https://stanfordmlgroup.github.io/competitions/chexpert/ (Irvin et al., AAAI 2019; registration, "
           "Stanford research-use agreement)",
    layout=("<root>/train.csv, valid.csv      (Path, Sex, Age, Frontal/Lateral, AP/PA, No Finding, ..., "
            "Support Devices)\n"
            "<root>/train/patient00001/study1/view1_frontal.jpg   (Path: CheXpert-v1.0-small/train/...)\n"
            "<root>/valid/patient64541/study1/view1_frontal.jpg"),
    options_schema=ChexpertOptions,
    default_folder="chexpert",
)
