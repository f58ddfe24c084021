"""Every paper suite end to end on a miniature copy of its dataset in the real on-disk format.

Each suite runs unchanged except for ``--set dataset.root=<miniature>`` and tiny settings (32 px,
1 epoch of 1 step, 2 folds where it cross-validates, no pretrained weights: no network here, a
small bootstrap). To stay fast, each suite runs the paper's own model plus one cheap baseline
(``--models``); suites with fewer models run all of them. pneumonia_binary: lrnet + lenet;
lung_3class: mobilenet_lung + mobilenet_v2; chestxray14_mdconv(_chestmnist): mobilenetv2_mdconv +
mobilenet_v2.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from cxrbench.data.datasets.miniature import (CXR14_ROWS, KERMANY_FILES, make_chestxray14, make_kermany,
                                              make_lung_xray, make_medmnist)
from cxrbench.engine.runner import run_suite
from cxrbench.leaderboard.table import build_boards, load_runs
from cxrbench.suite.loader import load_suite

SUITES = Path(__file__).resolve().parents[1] / "suites"
KERMANY_TEST = sum(part == "test" for part, _, _ in KERMANY_FILES)  # 9; the truncated file is a train image
KERMANY_TRAIN_VAL = sum(part != "test" for part, _, _ in KERMANY_FILES)  # 21 readable train + val images
LUNG_PER_CLASS = 10
CHESTMNIST_COUNTS = (40, 10, 20)


def _kermany(tmp: Path) -> Path:
    make_kermany(tmp)
    return tmp


def _lung(tmp: Path) -> Path:
    make_lung_xray(tmp, per_class=LUNG_PER_CLASS)
    return tmp


def _cxr14(tmp: Path) -> Path:
    return make_chestxray14(tmp)


def _chestmnist(tmp: Path) -> Path:
    make_medmnist(tmp, "chestmnist", size=28, counts=CHESTMNIST_COUNTS, n_labels=14)
    return tmp


# suite -> (miniature builder, extra --set, --models, expected (n_train + n_val, n_test) per fold or None for kfold)
CASES: dict[str, tuple[Callable[[Path], Path], list[str], list[str] | None, tuple[int, int] | None]] = {
    "pneumonia_binary": (_kermany, ["split.folds=2", "split.val_fraction=0.25"], ["lrnet", "lenet"], None),
    "pneumonia_subtype": (_kermany, [], None, (KERMANY_TRAIN_VAL, KERMANY_TEST)),
    # 10 images per class, ratio 80/10/10 stratified: 1 test image per class
    "lung_3class": (_lung, [], ["mobilenet_lung", "mobilenet_v2"], (3 * LUNG_PER_CLASS - 3, 3)),
    # val_fraction 0.1 asks for a 10-way stratified holdout of ~16 training rows, which sklearn refuses
    "chestxray14_mdconv": (_cxr14, ["split.val_fraction=0.25"], ["mobilenetv2_mdconv", "mobilenet_v2"],
                           (sum(s == "train" for *_, s in CXR14_ROWS), sum(s == "test" for *_, s in CXR14_ROWS))),
    "chestxray14_mdconv_chestmnist": (_chestmnist, ["dataset.options.size=28"], ["mobilenetv2_mdconv", "mobilenet_v2"],
                                      (CHESTMNIST_COUNTS[0] + CHESTMNIST_COUNTS[1], CHESTMNIST_COUNTS[2])),
    "resnet18_transfer": (_kermany, [], None, (KERMANY_TRAIN_VAL, KERMANY_TEST)),
}


def tiny_overrides(path: Path, root: Path) -> list[str]:
    sets = [f"dataset.root={root}", "input.image_size=32", "input.cache_size=null", "train.epochs=1",
            "train.batch_size=8", "train.max_steps_per_epoch=1", "train.save_checkpoints=false",
            "metrics.bootstrap=10"]
    for i, m in enumerate(load_suite(path).models):
        if m.pretrained:
            sets.append(f"models.{i}.pretrained=false")  # no network here
    return sets


def _check_patients(splits: pd.DataFrame, kfold: bool) -> None:
    """No patient on two sides of any fold, nor (kfold) in the test sets of two folds."""
    grouped = splits[splits.patient_id.notna() & (splits.patient_id.astype(str) != "")]
    if grouped.empty:
        return
    assert grouped.groupby(["fold", "patient_id"]).split.nunique().max() == 1
    if kfold:
        tests = grouped[grouped.split == "test"]
        assert tests.groupby("patient_id").fold.nunique().max() == 1


@pytest.mark.parametrize("stem", sorted(CASES))
def test_paper_suite_runs_on_its_miniature_dataset(stem, tmp_path):
    build, extra, models, expected = CASES[stem]
    path = SUITES / f"{stem}.yaml"
    root = build(tmp_path / "data")
    outcome = run_suite(path, [*tiny_overrides(path, root), *extra], models=models,
                        results_root=tmp_path / "results", device="cpu")
    assert outcome.status == "complete", [(r.job_id, r.error) for r in outcome.records if r.status != "ok"]
    header = outcome.store.read_header()
    assert header["synthetic"] is False
    suite = load_suite(path, [*tiny_overrides(path, root), *extra], models)
    records = [r for r in outcome.store.records() if r.kind == "model"]
    folds = 2 if suite.split.strategy == "kfold" else 1
    assert sorted((r.model, r.fold) for r in records) == sorted((m.key, f) for m in suite.models for f in range(folds))
    assert all(r.status == "ok" for r in records)

    splits = pd.read_csv(outcome.store.dir / "splits.csv", dtype={"patient_id": str, "sample_id": str})
    _check_patients(splits, kfold=folds > 1)
    if expected is None:  # kfold: every readable image is tested exactly once over the folds
        per_fold = {f: len(splits[(splits.fold == f) & (splits.split == "test")]) for f in range(folds)}
        assert sum(per_fold.values()) == len(KERMANY_FILES)
        assert splits[splits.split == "test"].sample_id.is_unique
    for rec in records:
        fold = splits[splits.fold == rec.fold]
        if expected is not None:
            assert (rec.n_train + rec.n_val, rec.n_test) == expected
        assert rec.n_test == (fold.split == "test").sum() and rec.n_train == (fold.split == "train").sum()
        pred = pd.read_csv(outcome.store.dir / rec.predictions_path, dtype={"sample_id": str})
        assert len(pred) == rec.n_test
        assert set(pred.sample_id) == set(fold[fold.split == "test"].sample_id)
    if stem == "lung_3class":  # stratified: one test image per class folder
        pred = pd.read_csv(outcome.store.dir / records[0].predictions_path)
        assert Counter(pred.y_true) == Counter({0: 1, 1: 1, 2: 1})

    (board,) = build_boards(load_runs(tmp_path / "results"))
    comparison = board.comparison()
    reference = suite.reference.models if suite.reference else {}
    assert sorted(zip(comparison.model, comparison.metric)) == sorted(
        (m, k) for m, figures in reference.items() for k in figures)
    for row in comparison.to_dict("records"):
        assert row["paper"] == pytest.approx(reference[row["model"]][row["metric"]])
        assert not pd.isna(row["ours"]), row  # the model ran, so every reference row has our figure
