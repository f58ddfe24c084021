"""Many comparisons at once: adjusted p-values and a compact letter display.

* :func:`adjust_pvalues`: Holm's step-down (controls the family-wise error rate; the default) or
  Benjamini-Hochberg's step-up (controls the false discovery rate), via statsmodels'
  ``multipletests``; nan p-values are left out of the family and stay nan.
* :func:`compact_letter_display`: Piepho's (2004) insert-absorb algorithm, then his sweep of
  redundant letters. Two models share a letter exactly when they are *not* significantly
  different; letters are assigned so the best-ranked model gets ``a``.

Piepho, H.-P. (2004). An algorithm for a letter-based representation of all-pairwise
comparisons. Journal of Computational and Graphical Statistics 13(2), 456-466.
"""

from __future__ import annotations

import string
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

ADJUSTMENTS = {"holm": "holm", "bh": "fdr_bh", "none": None}
"""Accepted ``method`` names -> statsmodels' names (``none``: raw p-values)."""


def adjust_pvalues(p_values: Sequence[float], method: str = "holm") -> np.ndarray:
    """Adjusted p-values over the family of finite ``p_values`` (``"holm"``, ``"bh"`` or ``"none"``)."""
    if method not in ADJUSTMENTS:
        raise ValueError(f"unknown p-value adjustment {method!r}; use one of {sorted(ADJUSTMENTS)}")
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ADJUSTMENTS[method] is None or not ok.any():
        out[ok] = p[ok]
        return out
    from statsmodels.stats.multitest import multipletests

    out[ok] = multipletests(p[ok], method=ADJUSTMENTS[method])[1]
    return out


def _letter(i: int) -> str:
    alphabet = string.ascii_lowercase + string.ascii_uppercase
    return alphabet[i] if i < len(alphabet) else f"<{i + 1}>"


def compact_letter_display(order: Sequence[Hashable], different: Iterable[tuple[Hashable, Hashable]]
                           ) -> dict[Hashable, str]:
    """Letters per model: models sharing a letter are not significantly different.

    ``order`` lists the models best first (it sets which letter comes first); ``different`` holds
    the significantly different pairs (either orientation). Every model gets at least one letter.
    """
    rank = {m: i for i, m in enumerate(order)}
    if len(rank) != len(order):
        raise ValueError("models in `order` must be unique")
    diff = {frozenset(p) for p in different}
    for pair in diff:
        if len(pair) != 2 or not pair <= rank.keys():
            raise ValueError(f"pair {sorted(pair, key=str)} is not two models of `order`")
    columns: list[set[int]] = [set(range(len(order)))]
    for pair in sorted(diff, key=lambda p: sorted(rank[m] for m in p)):
        i, j = sorted(rank[m] for m in pair)
        new: list[set[int]] = []
        for col in columns:
            if i in col and j in col:  # insert: split the column so i and j no longer share it
                new += [col - {i}, col - {j}]
            else:
                new.append(col)
        columns = _absorb(new)
    columns = _absorb(_sweep(columns))
    columns.sort(key=lambda c: sorted(c))
    return {m: "".join(_letter(k) for k, col in enumerate(columns) if rank[m] in col) for m in order}


def _absorb(columns: list[set[int]]) -> list[set[int]]:
    """Drop empty columns, duplicates and columns contained in another one."""
    out: list[set[int]] = []
    for k, col in enumerate(columns):
        if not col:
            continue
        if any((col < other) or (col == other and k2 < k) for k2, other in enumerate(columns) if k2 != k):
            continue
        out.append(col)
    return out


def _sweep(columns: list[set[int]]) -> list[set[int]]:
    """Remove a model from a column when each pair it forms there is still covered by another column
    (members of one column are never significantly different, by construction)."""
    columns = [set(c) for c in columns]
    for k, col in enumerate(columns):
        for m in sorted(col):
            others = col - {m}
            if others and all(any(m in c and o in c for k2, c in enumerate(columns) if k2 != k) for o in others):
                col.discard(m)
    return columns
