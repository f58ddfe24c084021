"""The CheXpert labeler's 14 observations and their uncertainty policy, shared by ``chexpert`` and ``mimic_cxr``.

Both archives ship one column per observation holding ``1.0`` (positive), ``0.0`` (negative),
``-1.0`` (uncertain) or a blank (not mentioned). The policy (``uncertain: ones | zeros | ignore``,
Irvin et al. 2019's U-Ones / U-Zeros / U-Ignore) decides what an uncertain label becomes; a blank is
not annotated (masked, as TorchXRayVision reads it as NaN) unless ``blank: zeros``. Masked entries
count in neither the loss nor the metrics (``SampleTable.label_mask``); uncertain entries are kept
apart in ``SampleTable.label_uncertain`` whatever the policy, for ``describe``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from cxrbench.data.label_space import archive_name, missing_note, requested_classes, select_classes
from cxrbench.errors import DatasetError
from cxrbench.specs import SampleTable

if TYPE_CHECKING:  # pandas is imported on load only: listing datasets stays fast
    import pandas as pd

OBSERVATIONS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
)
"""The labeler's columns, as the CSVs spell them."""
NAMES: tuple[str, ...] = tuple(archive_name(o) for o in OBSERVATIONS)
"""The same in the shared vocabulary where it has them ("Pleural Effusion" -> "Effusion")."""
DEFAULT_CLASSES: tuple[str, ...] = NAMES[1:]
"""A table's classes when the suite names none: every observation but "No Finding" (TorchXRayVision's choice)."""
_VALUES = {"1": 1, "1.0": 1, "0": 0, "0.0": 0, "-1": -1, "-1.0": -1, "": None}


class LabelerOptions(BaseModel):
    """The options both CheXpert-labelled archives share."""

    model_config = ConfigDict(extra="forbid")
    uncertain: Literal["ones", "zeros", "ignore"] = "ignore"
    """What an uncertain (-1) label becomes: 1, 0, or not annotated (masked)."""
    blank: Literal["ignore", "zeros"] = "ignore"
    """A blank (not mentioned) label: not annotated (masked, TorchXRayVision's reading) or 0."""
    allow_missing: bool = False
    """Skip (and list) rows whose image file is missing instead of failing."""


@dataclass
class LabelMatrix:
    """Labels of the requested classes for every CSV row (see :func:`read_labels`)."""

    labels: np.ndarray
    mask: np.ndarray
    uncertain: np.ndarray
    classes: list[str]
    missing: list[str]


def check_columns(dataset: str, df: pd.DataFrame, path: object, required: Sequence[str]) -> None:
    """A DatasetError naming the file and the columns it lacks."""
    absent = [c for c in required if c not in df.columns]
    if absent:
        raise DatasetError(f"dataset {dataset!r}: {path} lacks column(s) {absent} (has {list(df.columns)[:20]})")


def _parse(dataset: str, df: pd.DataFrame, path: object, column: str) -> np.ndarray:
    """One observation column as float (1, 0, -1, nan for blank); anything else names file and row."""
    raw = df[column].astype(str).str.strip()
    codes = raw.map(_VALUES)
    bad = np.flatnonzero(codes.isna().to_numpy() & (raw != "").to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DatasetError(f"dataset {dataset!r}: {path} line {i + 2}, column {column!r}: unknown label value "
                           f"{raw.iloc[i]!r} (expected 1.0, 0.0, -1.0 or blank; {len(bad)} such row(s))")
    return codes.to_numpy(dtype=np.float64, na_value=np.nan)


def read_labels(dataset: str, df: pd.DataFrame, path: object, classes: Sequence[str],
                opts: LabelerOptions) -> LabelMatrix:
    """The requested ``classes`` (default :data:`DEFAULT_CLASSES`) of every row of ``df`` under the
    policy of ``opts``: labels 0/1, mask (False = not annotated) and uncertain, each ``(N, K)``.

    A vocabulary class the labeler lacks (e.g. "Nodule") is masked everywhere and listed in
    ``missing``; a name that is neither raises a DatasetError.
    """
    classes = list(classes) or list(DEFAULT_CLASSES)
    requested_classes(dataset, classes, [*NAMES, *OBSERVATIONS])
    check_columns(dataset, df, path, OBSERVATIONS)
    values, known, uncertain = {}, {}, {}
    for obs, name in zip(OBSERVATIONS, NAMES):
        v = _parse(dataset, df, path, obs)
        unc = v == -1
        blank = np.isnan(v)
        lab = v == 1
        ok = ~blank if opts.blank == "ignore" else np.ones(len(v), dtype=bool)
        if opts.uncertain == "ones":
            lab = lab | unc
        elif opts.uncertain == "ignore":
            ok = ok & ~unc
        values[name], known[name], uncertain[name] = lab.astype(np.int64), ok, unc.astype(np.int64)
    labels, mask, missing = select_classes(values, classes, known)
    unc_matrix, _, _ = select_classes(uncertain, classes)
    return LabelMatrix(labels, mask, unc_matrix.astype(bool), classes, missing)


def labelled_table(table: SampleTable, dataset: str, opts: LabelerOptions, m: LabelMatrix, rows: np.ndarray) -> None:
    """Attach rows ``rows`` of ``m``'s mask and uncertain matrix to ``table`` and note the policy."""
    mask, uncertain = m.mask[rows], m.uncertain[rows]
    table.label_mask = None if mask.all() else mask
    table.label_uncertain = uncertain
    table.notes += [f"uncertain (-1) labels: {opts.uncertain} ({int(uncertain.sum())} uncertain entries); blank "
                    f"labels: {'not annotated (masked)' if opts.blank == 'ignore' else 'negative'}; "
                    f"{int((~mask).sum())} of {mask.size} label entries masked (neither loss nor metrics)",
                    *missing_note(dataset, m.missing)]


def concat(matrices: Sequence[LabelMatrix]) -> LabelMatrix:
    """The rows of several label matrices (same classes) one after the other."""
    first = matrices[0]
    return LabelMatrix(*(np.concatenate([getattr(m, a) for m in matrices]) for a in ("labels", "mask", "uncertain")),
                       first.classes, first.missing)
