"""``kermany``: ChestX-ray2017 / "Chest X-Ray Images (Pneumonia)" (Kermany et al., Cell 2018).

Variants: ``binary`` (normal vs pneumonia) and ``subtype`` (normal / bacterial / viral, read from
the file names). Patient ids come from the file names too, so splits can be grouped by patient.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

from cxrbench.data.datasets.common import file_table, list_images, match_classes, norm, subdirs
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DatasetVariant, DataRequest, SampleTable

NAME = "kermany"
SPLITS = ("train", "val", "test")
VARIANTS = {"binary": ("normal", "pneumonia"), "subtype": ("normal", "bacterial", "viral")}
ALIASES = {"bacteria": "bacterial", "virus": "viral"}
PNEUMONIA_RE = re.compile(r"^person(\d+)_(bacteria|virus)_\d+", re.IGNORECASE)
NORMAL_RE = re.compile(r"^(.*?IM-\d+)(?:-\d+)+$", re.IGNORECASE)  # [NORMAL2-]IM-<patient>-<n>[-<m>]
NORMAL_FALLBACK_RE = re.compile(r"^(.+)-\d+$")

def _has_classes(split_dir: Path) -> bool:
    return {"normal", "pneumonia"} <= {norm(d.name) for d in subdirs(split_dir)}


def find_split_root(root: Path, max_depth: int = 3) -> Path | None:
    """The shallowest folder under ``root`` with a ``{train,val,test}/{NORMAL,PNEUMONIA}`` split (debris
    skipped); splits may be missing (the table lists them in ``missing``, a run refuses).

    The Kaggle archive nests a second copy (chest_xray/chest_xray/...): the outer one wins. Mendeley's
    archive puts OCT/{train,test} next to chest_xray/: the class folders tell them apart.
    """
    queue = deque([(root, 0)])
    while queue:
        folder, depth = queue.popleft()
        dirs = {norm(d.name): d for d in subdirs(folder)}
        if any(part in dirs and _has_classes(dirs[part]) for part in SPLITS):
            return folder
        if depth < max_depth:
            queue.extend((d, depth + 1) for d in subdirs(folder))
    return None


def parse_name(stem: str, folder_class: str) -> tuple[str, str | None]:
    """(patient id, subtype or None) from a file name stem and its class folder.

    ``person1946_bacteria_4874`` -> ("1946", "bacterial"); ``IM-0115-0001`` -> ("IM-0115", "normal");
    ``NORMAL2-IM-1427-0001`` -> ("NORMAL2-IM-1427", "normal"). Unparseable names are their own patient.
    """
    if folder_class == "normal":
        m = NORMAL_RE.match(stem) or NORMAL_FALLBACK_RE.match(stem)
        return (m.group(1) if m else stem), "normal"
    m = PNEUMONIA_RE.match(stem)
    if not m:
        return stem, None
    return m.group(1), "bacterial" if m.group(2).lower() == "bacteria" else "viral"


def load(request: DataRequest) -> SampleTable:
    """Rows of ChestX-ray2017 for a suite (see the module docstring and ``SPEC.layout``)."""
    variant = request.variant or "binary"
    expected = VARIANTS[variant]
    classes = list(request.classes) or list(expected)
    if len(classes) != len(expected):
        raise DatasetError(f"dataset {NAME!r} variant {variant!r} has classes {list(expected)} "
                           f"(case-insensitive, any order), but the suite names {classes}")
    matched = match_classes(NAME, classes, expected, ALIASES)
    index_of = {expected[j]: i for i, j in enumerate(matched)}  # dataset class -> suite label index

    root = request.root
    assert root is not None  # SPEC.default_folder is set: the core always resolves one
    base = find_split_root(root)
    if base is None:
        raise missing_data_error(SPEC, f"no folder with train/, val/ or test/ holding NORMAL/ and PNEUMONIA/ "
                                       f"under {root}",
                                 [root], request.options, request.variant)

    files, labels, patients, split, subtypes, odd = [], [], [], [], [], []
    split_dirs = {norm(d.name): d for d in subdirs(base)}
    for part in SPLITS:
        if part not in split_dirs:
            continue  # val is optional (Mendeley's original has train/test only)
        class_dirs = {norm(d.name): d for d in subdirs(split_dirs[part])}
        for cls in ("normal", "pneumonia"):
            if cls not in class_dirs:
                raise DatasetError(f"dataset {NAME!r}: {split_dirs[part]} has no {cls.upper()}/ folder "
                                   f"(found {sorted(d.name for d in class_dirs.values())})")
            found = list_images(class_dirs[cls])
            if not found:
                raise DatasetError(f"dataset {NAME!r}: class folder {class_dirs[cls]} holds no images")
            for f in found:
                patient, subtype = parse_name(f.stem, cls)
                if subtype is None:
                    odd.append(f)
                key = cls if variant == "binary" else subtype
                files.append(f)
                labels.append(index_of.get(key, -1))
                patients.append(patient)
                split.append(part)
                subtypes.append(subtype or "unknown")
    if variant == "subtype" and odd:
        names = ", ".join(str(f) for f in odd[:5])
        raise DatasetError(f"dataset {NAME!r} variant 'subtype': {len(odd)} pneumonia file name(s) carry no "
                           f"subtype (expected person<N>_bacteria_<M> or person<N>_virus_<M>): {names}")
    missing = [base / part for part in ("train", "test") if part not in split_dirs]  # val is optional
    return file_table(NAME, base, files, labels, classes, patient_ids=patients, official_split=split,
                      extras={"subtype": subtypes}, missing=missing)


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("binary", "multiclass"),
    description=("ChestX-ray2017 pediatric chest X-rays (5,856 JPEGs). variant binary (default for binary "
                 "tasks): classes [normal, pneumonia]; variant subtype (default for multiclass): [normal, "
                 "bacterial, viral] from the file names. Names are case-insensitive, any order. Patient ids "
                 "from the file names; official train/val/test split (val optional). No options."),
    source=("https://data.mendeley.com/datasets/rscbjbr9sj/2 (Kermany, Zhang & Goldbaum 2018, "
            "doi:10.17632/rscbjbr9sj.2, CC BY 4.0); "
            "also https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia"),
    layout=("chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg   (val optional)\n"
            "pneumonia files: person<patient>_{bacteria|virus}_<n>.jpeg; normal files: "
            "[NORMAL2-]IM-<patient>-<n>.jpeg\n"
            "dataset.root = the folder holding chest_xray/, or chest_xray itself"),
    variants=(DatasetVariant("binary", ("binary",), "normal vs pneumonia"),
              DatasetVariant("subtype", ("multiclass",), "normal / bacterial / viral, from the file names")),
    default_folder="chest_xray",
)
