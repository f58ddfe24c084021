"""Holm / Benjamini-Hochberg adjustment and the compact letter display, against loops and hand cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from cxrbench.metrics.multiple import adjust_pvalues, compact_letter_display


def _holm_loop(p: list[float]) -> list[float]:
    """Holm step-down, written out: sorted p_(i) * (m - i), running max, capped at 1."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def _bh_loop(p: list[float]) -> list[float]:
    """BH step-up, written out: p_(i) * m / i, running min from the largest, capped at 1."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out, running = [0.0] * m, 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, p[i] * m / (rank + 1))
        out[i] = running
    return out


def test_hand_values():
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(adjust_pvalues(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, "none"), p)


@pytest.mark.parametrize("trial", range(4))  # statsmodels' Holm runs gc.collect() per call: few calls
def test_random_inputs_match_loops_and_statsmodels(trial):
    rng = np.random.default_rng(trial)
    p = rng.random(rng.integers(1, 30)) ** 3
    p[rng.random(p.size) < 0.2] = p[0]  # ties
    with_nan = np.insert(p, [0, p.size], np.nan)  # nan is not part of the family
    holm = adjust_pvalues(with_nan, "holm")
    assert np.isnan(holm[0]) and np.isnan(holm[-1])
    np.testing.assert_allclose(holm[1:-1], _holm_loop(list(p)), atol=1e-12)
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), _bh_loop(list(p)), atol=1e-12)
    if trial == 0:
        np.testing.assert_allclose(holm[1:-1], multipletests(p, method="holm")[1], atol=1e-12)
        np.testing.assert_allclose(adjust_pvalues(p, "bh"), multipletests(p, method="fdr_bh")[1], atol=1e-12)


def test_unknown_method():
    with pytest.raises(ValueError, match="holm"):
        adjust_pvalues([0.1], "bonf")


@pytest.mark.parametrize("different, expected", [
    ([], {"A": "a", "B": "a", "C": "a"}),
    ([("A", "B"), ("A", "C"), ("B", "C")], {"A": "a", "B": "b", "C": "c"}),
    ([("C", "A")], {"A": "a", "B": "ab", "C": "b"}),
    # 4 models: A-C, A-D, B-D differ -> {A,B}, {B,C}, {C,D}
    ([("A", "C"), ("A", "D"), ("B", "D")], {"A": "a", "B": "ab", "C": "bc", "D": "c"}),
    # two independent splits: {A,C}, {A,D}, {B,C}, {B,D}
    ([("A", "B"), ("C", "D")], {"A": "ab", "B": "cd", "C": "ac", "D": "bd"}),
    # top differs from everyone, the rest are alike
    ([("A", "B"), ("A", "C"), ("A", "D")], {"A": "a", "B": "b", "C": "b", "D": "b"}),
])
def test_letters_hand_cases(different, expected):
    order = sorted(expected)
    assert compact_letter_display(order, different) == expected


def test_the_sweep_removes_a_letter_insert_absorb_leaves_redundant():
    # A-C, A-E, D-E differ. Insert-absorb ends with {A,B,D}, {B,C,D}, {B,C,E}: B's letter in the
    # middle column only links B-C and B-D, both linked by the others. Sweeping B out leaves {C,D}.
    order, diff = list("ABCDE"), [("A", "C"), ("A", "E"), ("D", "E")]
    assert compact_letter_display(order, diff) == {"A": "a", "B": "ab", "C": "bc", "D": "ac", "E": "b"}


def _assert_valid(order, diff, letters):
    dset = {frozenset(p) for p in diff}
    for x, y in itertools.combinations(order, 2):
        share = bool(set(letters[x]) & set(letters[y]))
        assert share == (frozenset((x, y)) not in dset), (x, y, letters)
    for m in order:
        assert letters[m]
        for ch in letters[m]:  # minimal: dropping any one letter of a model loses a needed link
            reduced = {**letters, m: letters[m].replace(ch, "")}
            lost = [o for o in order if o != m and frozenset((m, o)) not in dset
                    and not set(reduced[m]) & set(letters[o])]
            assert lost or len(letters[m]) == 1 and not reduced[m], (m, ch, letters)


@pytest.mark.parametrize("trial", range(60))
def test_letters_are_valid_and_minimal_on_random_families(trial):
    rng = np.random.default_rng(trial)
    order = [f"m{i}" for i in range(int(rng.integers(2, 9)))]
    diff = [p for p in itertools.combinations(order, 2) if rng.random() < rng.uniform(0.1, 0.9)]
    letters = compact_letter_display(order, diff)
    _assert_valid(order, diff, letters)
    assert "a" in letters[order[0]]  # the best-ranked model gets the first letter


def test_bad_pairs():
    with pytest.raises(ValueError):
        compact_letter_display(["A", "B"], [("A", "Z")])
    with pytest.raises(ValueError):
        compact_letter_display(["A", "A"], [])
