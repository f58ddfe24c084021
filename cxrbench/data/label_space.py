"""The one label vocabulary every chest X-ray archive is mapped into (TorchXRayVision's).

Each dataset maps its own label names to these canonical names (``ARCHIVE_MAP`` arguments of
:func:`map_label`), so a suite names its classes once and any dataset that has them can train or
test. A class the dataset does not annotate is *missing*, never negative: :func:`select_classes`
returns a mask the engine and the metrics honour (``SampleTable.label_mask``).
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from cxrbench.errors import DatasetError, SuiteError

VOCABULARY: tuple[str, ...] = (
    "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
    "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia",
    "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum",
)
"""TorchXRayVision's ``default_pathologies``, in its order."""

SYNONYMS: dict[str, str] = {
    "pleural effusion": "Effusion",
    "pleural thickening": "Pleural_Thickening",
    "pleural": "Pleural_Thickening",
    "infiltrate": "Infiltration",
    "infiltrates": "Infiltration",
    "lung lesion": "Lung Lesion",
    "lung opacity": "Lung Opacity",
    "enlarged cardiomediastinum": "Enlarged Cardiomediastinum",
    "cardiomegaly": "Cardiomegaly",
}
"""Spellings the archives use for a canonical name (compared after :func:`key`)."""


def key(name: str) -> str:
    """Case-, space-, underscore- and hyphen-insensitive form of a label, class or folder name (the
    one matching rule: :func:`cxrbench.data.datasets.common.norm` is this function)."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


_CANONICAL = {key(n): n for n in VOCABULARY} | {key(s): n for s, n in SYNONYMS.items()}


def canonical(name: str) -> str | None:
    """The vocabulary name ``name`` denotes (any spelling in :data:`SYNONYMS`), or None."""
    return _CANONICAL.get(key(name))


def archive_name(name: str) -> str:
    """The name a table uses for an archive's label ``name``: its vocabulary name when it has one
    (CheXpert's "Pleural Effusion" -> "Effusion"), else the archive's own spelling ("Support Devices")."""
    return canonical(name) or name


def requested_classes(dataset: str, classes: Sequence[str], available: Sequence[str]) -> None:
    """Raise a DatasetError for a requested class that is neither one of ``available`` nor a
    vocabulary name (a vocabulary name the archive lacks is *missing*: masked, not an error)."""
    have = {key(a) for a in available} | {key(canonical(a) or a) for a in available}
    unknown = [c for c in classes if key(c) not in have and canonical(c) is None]
    if unknown:
        raise DatasetError(f"dataset {dataset!r}: unknown labels {unknown}; expected names from "
                           f"{list(available)} or the shared vocabulary {list(VOCABULARY)} (case-insensitive)")
    keys = [key(canonical(c) or c) for c in classes]
    if len(set(keys)) != len(keys):
        raise DatasetError(f"dataset {dataset!r}: labels {list(classes)} name the same class twice")


def missing_note(dataset: str, missing: Sequence[str]) -> list[str]:
    """The table note for classes the archive does not annotate (empty when none)."""
    if not missing:
        return []
    return [f"{dataset} does not annotate {', '.join(missing)}: masked for every row (not evaluated, never "
            f"scored as negative)"]


def select_classes(available: Mapping[str, np.ndarray], classes: Sequence[str],
                   known: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Label matrix, mask and missing classes for the suite's ``classes``.

    ``available`` maps a canonical class name to its 0/1 column (N,) in the archive; ``known``
    optionally maps it to a bool column saying where that label is annotated (e.g. CheXpert's
    blanks and ignored uncertain labels are False). Returns ``(labels (N, K) int64, mask (N, K)
    bool, missing)``: a class absent from ``available`` is all-False in the mask and listed in
    ``missing`` (reported as not evaluated, never scored as negative).
    """
    n = len(next(iter(available.values()))) if available else 0
    by_key = {key(c): c for c in available}
    labels = np.zeros((n, len(classes)), dtype=np.int64)
    mask = np.zeros((n, len(classes)), dtype=bool)
    missing: list[str] = []
    for j, cls in enumerate(classes):
        name = canonical(cls) or cls
        src = by_key.get(key(name))
        if src is None:
            missing.append(cls)
            continue
        labels[:, j] = np.asarray(available[src], dtype=np.int64)
        mask[:, j] = True if known is None or src not in known else np.asarray(known[src], dtype=bool)
    return labels, mask, missing


def head_map(head_labels: Sequence[str], classes: Sequence[str], task: str, model: str = "the model") -> list[int | None]:
    """For each suite class, the output of a pretrained multi-label head that scores it (zero-shot).

    ``head_labels`` are the head's outputs in order (``""`` = an output its weights never trained);
    names match through :func:`canonical`. Multilabel: every class must map (an unmapped label would
    have no prediction, and scoring it as a constant would drag every macro metric). Binary: exactly
    one class maps; the other gets ``None``, a constant logit 0, so the softmax of the pair is that
    output's sigmoid, the head's own probability. Multiclass is refused: independent sigmoid outputs
    are no softmax prediction. Raises :class:`~cxrbench.errors.SuiteError` naming what is missing.
    """
    index = {key(canonical(n) or n): i for i, n in enumerate(head_labels) if n}
    found = [index.get(key(canonical(c) or c)) for c in classes]
    trained = ", ".join(n for n in head_labels if n)
    if task == "multilabel":
        missing = [c for c, i in zip(classes, found) if i is None]
        if missing:
            raise SuiteError(f"zero-shot (train.epochs: 0): {model}'s pretrained head has no output for "
                             f"{missing}; it predicts: {trained}. Drop those classes or fine-tune (epochs >= 1)")
        return found
    if task == "binary":
        if sum(i is not None for i in found) != 1:
            raise SuiteError(f"zero-shot (train.epochs: 0) of a binary task needs exactly one of {list(classes)} "
                             f"among {model}'s pretrained outputs ({trained}); "
                             f"{'both' if all(i is not None for i in found) else 'neither'} are. Fine-tune it instead")
        return found
    raise SuiteError(f"zero-shot (train.epochs: 0) is defined for binary and multilabel tasks, not {task}: "
                     f"{model}'s outputs are independent sigmoids, not a softmax over {list(classes)}")
