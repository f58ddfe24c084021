"""The quickstart teaches: no architecture twice, a test set large enough to tell models apart
(grouped by patient), and a legend under the table with the next commands to try."""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from cxrbench.data.loading import load_dataset
from cxrbench.data.splits import plan_folds
from cxrbench.leaderboard.render import PAPER_SUITE_ON_SYNTHETIC, legend
from cxrbench.leaderboard.table import Board
from cxrbench.plugins import get_registry
from cxrbench.suite.checks import check_suite
from cxrbench.suite.loader import load_suite

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "suites" / "quickstart.yaml"
ALIASES = {"resnet50_transfer": "resnet50", "resnet18_scratch": "resnet18", "resnet18_finetune": "resnet18",
           "mobilenet_ft": "mobilenet_v2"}


def test_the_registry_names_what_each_alias_builds():
    registry = get_registry()
    assert {n: s.alias_of for n, s in registry.models.items() if s.alias_of} == ALIASES
    assert all(registry.model(target).alias_of is None for target in ALIASES.values())


def test_models_listing_shows_the_alias(capsys):
    import json

    from cxrbench.cli import main

    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r["alias_of"] for r in json.loads(capsys.readouterr().out)}
    assert {n: a for n, a in rows.items() if a} == ALIASES and rows["resnet18"] is None


def test_quickstart_has_no_architecture_twice():
    registry = get_registry()
    suite = load_suite(QUICKSTART)
    check_suite(suite, registry, str(QUICKSTART))
    archs = Counter(registry.model(m.name).architecture for m in suite.models)
    assert [a for a, n in archs.items() if n > 1] == []
    assert not {m.name for m in suite.models} & set(ALIASES)
    assert len(suite.models) == 11


def test_quickstart_test_set_size_and_patient_grouping():
    suite = load_suite(QUICKSTART)
    spec = get_registry().dataset(suite.dataset.name)
    table = load_dataset(spec, suite.task.type, suite.task.classes, None, suite.dataset.options)
    (fold,) = plan_folds(table, suite.split)
    rows = pd.DataFrame({"patient": table.patient_ids, "label": table.labels})
    per_patient = rows.groupby("patient").size()
    assert len(rows) == 3400 and per_patient.max() == 2 and per_patient.min() == 1  # max_images_per_patient: 2
    assert rows.groupby("patient").label.nunique().max() == 1  # one label per patient
    parts = {"train": fold.train, "val": fold.val, "test": fold.test}
    assert sum(len(v) for v in parts.values()) == 3400 and len(np.unique(np.concatenate(list(parts.values())))) == 3400
    # a 1/5 hold-out for test (round(1 / 0.2) = 5 groups), then 1/7 of the rest for validation
    # (round(0.8 / 0.114) = 7), whole patients only: off the exact fraction by at most one patient's images
    assert abs(len(fold.test) - 3400 / 5) <= 2 and len(fold.test) >= 600
    assert abs(len(fold.val) - (3400 - len(fold.test)) / 7) <= 2
    patients = {k: set(rows.patient.iloc[v]) for k, v in parts.items()}
    assert not (patients["train"] & patients["test"]) and not (patients["val"] & patients["test"])
    assert not (patients["train"] & patients["val"])
    assert len(patients["test"]) == rows.patient.iloc[fold.test].nunique() >= 400


def test_every_accuracy_ci_on_the_quickstart_test_set_is_at_most_0_05_wide_each_side():
    """The patient-level (cluster-robust) standard error of an accuracy is largest at 0.5 with every
    patient all right or all wrong: 0.5 * sqrt(sum m_i^2) / sum m_i for m_i test images of patient i.
    Its normal 95% half-width bounds what the patient bootstrap gives any model on this test set."""
    suite = load_suite(QUICKSTART)
    spec = get_registry().dataset(suite.dataset.name)
    table = load_dataset(spec, suite.task.type, suite.task.classes, None, suite.dataset.options)
    (fold,) = plan_folds(table, suite.split)
    m = pd.Series(np.asarray(table.patient_ids)[fold.test]).value_counts().to_numpy()
    worst = 1.96 * 0.5 * np.sqrt((m ** 2).sum()) / m.sum()
    assert worst <= 0.05, worst


def _board() -> Board:
    return Board(suite="quickstart", primary="accuracy", higher_is_better=True, metrics=["accuracy"],
                 rows=pd.DataFrame(), runs=["r1"], synthetic=True, dataset="synthetic_cxr")


def test_legend_text():
    lines = legend(_board(), "results/quickstart/r1")
    assert lines == [
        "columns: metrics on the held-out test set (↑ higher / ↓ lower is better), ranked by accuracy; 95% CI = its "
        "bootstrap interval over patients; group = models sharing a letter do not differ significantly; params / "
        "MACs = size and cost per image at this input size",
        "baseline_majority always predicts the commonest class, baseline_stratified guesses by class frequency: a "
        "model has learned something only where its CI lies above theirs",
        "next: cxrbench report results/quickstart/r1   |   cxrbench leaderboard --suite quickstart --latest --plot "
        "pareto   |   cxrbench run suites/pneumonia_binary.yaml --set dataset.name=synthetic_cxr --set "
        "dataset.root=null --set dataset.variant=null --set input.image_size=64",
    ]
    assert "--results /tmp/x --suite" in legend(_board(), "r", " --results /tmp/x")[2]
    timed = _board()
    timed.latency = pd.DataFrame({"model": ["lenet"], "median_ms": [1.0]})
    assert legend(timed, "r")[0].endswith("at this input size; ms median / p90 = latency per image")


def test_the_suggested_paper_suite_runs_on_synthetic_data():
    args = shlex.split(PAPER_SUITE_ON_SYNTHETIC)
    assert args[:2] == ["cxrbench", "run"]
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    suite = load_suite(ROOT / args[2], overrides)
    check_suite(suite, get_registry(), args[2])
    assert suite.dataset.name == "synthetic_cxr" and suite.input.image_size == 64
