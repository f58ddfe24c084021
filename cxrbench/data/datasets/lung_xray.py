"""``lung_xray``: the Lung X-ray Image Dataset (Talukder, Mendeley Data 2023), three class folders."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from cxrbench.data.datasets.common import file_table, list_images, match_classes, norm, subdirs
from cxrbench.data.loading import missing_data_error
from cxrbench.errors import DatasetError
from cxrbench.specs import DatasetSpec, DataRequest, SampleTable

NAME = "lung_xray"
CLASSES = ("normal", "lung_opacity", "viral_pneumonia")
LAYOUT_NAMES = {"normal": "Normal", "lung_opacity": "Lung Opacity", "viral_pneumonia": "Viral Pneumonia"}

def find_class_root(root: Path, max_depth: int = 2) -> Path | None:
    """The shallowest folder under ``root`` holding the class folders (at least one: the table lists
    the others in ``missing``, a run refuses)."""
    wanted = {norm(c) for c in CLASSES}
    queue = deque([(root, 0)])
    while queue:
        folder, depth = queue.popleft()
        if wanted & {norm(d.name) for d in subdirs(folder)}:
            return folder
        if depth < max_depth:
            queue.extend((d, depth + 1) for d in subdirs(folder))
    return None


def load(request: DataRequest) -> SampleTable:
    """Rows of the Lung X-ray Image Dataset; labels follow the suite's class order."""
    classes = list(request.classes) or list(CLASSES)
    if len(classes) != len(CLASSES):
        raise DatasetError(f"dataset {NAME!r} has classes {list(CLASSES)} (case-, space- and underscore-insensitive, "
                           f"any order), but the suite names {classes}")
    matched = match_classes(NAME, classes, CLASSES)
    root = request.root
    assert root is not None  # SPEC.default_folder is set: the core always resolves one
    base = find_class_root(root)
    if base is None:
        raise missing_data_error(SPEC, f"no folder under {root} holds the class folders", [root],
                                 request.options)
    dirs = {norm(d.name): d for d in subdirs(base)}
    files, labels, missing = [], [], []
    for j, cls in enumerate(CLASSES):  # dataset order, so row order (and the cache) ignore the suite's order
        folder = dirs.get(norm(cls))
        if folder is None:
            missing.append(base / LAYOUT_NAMES[cls])
            continue
        found = list_images(folder)
        if not found:
            raise DatasetError(f"dataset {NAME!r}: class folder {folder} holds no images")
        files += found
        labels += [matched.index(j)] * len(found)
    return file_table(NAME, base, files, labels, classes, missing=missing)


SPEC = DatasetSpec(
    name=NAME,
    load=load,
    tasks=("multiclass",),
    description=("Lung X-ray Image Dataset (Talukder 2023): 3,475 chest X-rays, classes [normal, lung_opacity, "
                 "viral_pneumonia] (names case-, space- and underscore-insensitive, any order). No patient ids "
                 "and no official split: use split ratio/kfold. No options."),
    source=("Talukder, M. A., \"Lung X-Ray Image Dataset\", Mendeley Data, 2023 (search "
            "https://data.mendeley.com for 'Lung X-Ray Image Dataset'; 3,475 images)"),
    layout=("<root>/[one folder level allowed]/{Normal,Lung Opacity,Viral Pneumonia}/*.jpg\n"
            "folder names are matched case- and space-insensitively (Lung_Opacity = lung opacity)"),
    default_folder="lung_xray",
)
