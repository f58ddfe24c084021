"""Built-in metrics against scikit-learn, hand counts, and bootstrap behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from cxrbench.builtins.metrics import core_metrics, register_metrics
from cxrbench.metrics import bootstrap, classification as cm
from cxrbench.specs import Predictions

SEEDS = (0, 1, 2)
TOL = 1e-9


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_single(seed: int, n: int = 200, k: int = 3, task: str = "multiclass", positive: int = 1,
                ties: bool = False) -> Predictions:
    """Informative but imperfect single-label predictions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    if ties:  # coarse logits: many tied scores exercise the AUC tie handling
        logits = np.round(logits)
    prob = _softmax(logits)
    return Predictions(y, prob, prob.argmax(axis=1), task, tuple(f"c{i}" for i in range(k)), positive)


def make_multilabel(seed: int, n: int = 200, k: int = 14, ties: bool = False) -> Predictions:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < rng.uniform(0.05, 0.5, k)).astype(int)
    logits = rng.normal(size=(n, k)) + 1.5 * (2 * y - 1) - 1.0
    if ties:
        logits = np.round(logits)
    prob = 1 / (1 + np.exp(-logits))
    return Predictions(y, prob, (prob > 0.5).astype(int), "multilabel", tuple(f"l{i}" for i in range(k)))


def _replace(pred: Predictions, **kw) -> Predictions:
    fields = dict(y_true=pred.y_true, y_prob=pred.y_prob, y_pred=pred.y_pred, task=pred.task,
                  class_names=pred.class_names, positive=pred.positive, loss=pred.loss)
    return Predictions(**{**fields, **kw})


def single_cases() -> list[tuple[str, Predictions]]:
    cases = []
    for s in SEEDS:
        cases.append((f"binary-s{s}", make_single(s, k=2, task="binary")))
        cases.append((f"multiclass-s{s}", make_single(s, ties=s == 2)))
    b = make_single(3, k=2, task="binary")
    cases.append(("binary-positive0", _replace(b, positive=0)))
    cases.append(("binary-never-predicted", _replace(b, y_pred=np.zeros_like(b.y_pred))))  # precision 0/0
    cases.append(("binary-positive-absent", _replace(b, y_true=np.zeros_like(b.y_true))))  # recall 0/0
    mc = make_single(4, k=4)
    cases.append(("multiclass-never-predicted", _replace(mc, y_pred=np.where(mc.y_pred == 3, 0, mc.y_pred))))
    cases.append(("multiclass-never-true", _replace(mc, y_true=np.where(mc.y_true == 3, 1, mc.y_true))))
    cases.append(("multiclass-absent-everywhere", _replace(
        mc, y_true=np.where(mc.y_true == 3, 1, mc.y_true), y_pred=np.where(mc.y_pred == 3, 2, mc.y_pred))))
    return cases


def multilabel_cases() -> list[tuple[str, Predictions]]:
    cases = [(f"multilabel-s{s}", make_multilabel(s, ties=s == 2)) for s in SEEDS]
    ml = make_multilabel(5)
    t, p = ml.y_true.copy(), ml.y_pred.copy()
    t[:, 3] = 0  # label 3 absent from truth: recall 0/0, AUC undefined
    p[:, 5] = 0  # label 5 never predicted: precision 0/0
    t[:, 7] = 0
    p[:, 7] = 0  # label 7 absent everywhere: everything 0/0
    cases.append(("multilabel-absent-labels", _replace(ml, y_true=t, y_pred=p)))
    return cases


def _ids(cases):
    return [c[0] for c in cases]


SINGLE = single_cases()
MULTI = multilabel_cases()


def _ovr_specificity(y_true, y_pred, **kw) -> np.ndarray:
    mcm = skm.multilabel_confusion_matrix(y_true, y_pred, **kw)
    tn, fp = mcm[:, 0, 0], mcm[:, 0, 1]
    return np.divide(tn, tn + fp, out=np.zeros(len(tn)), where=(tn + fp) > 0)


def _sk_single(pred: Predictions) -> dict[str, float]:
    t, p, prob = pred.y_true, pred.y_pred, pred.y_prob
    zd = dict(zero_division=0)
    if pred.task == "binary":
        avg = dict(average="binary", pos_label=pred.positive, **zd)
        spec = skm.recall_score(t, p, average="binary", pos_label=1 - pred.positive, **zd)
        pos = t == pred.positive
        auc = skm.roc_auc_score(pos, prob[:, pred.positive]) if 0 < pos.sum() < len(pos) else math.nan
    else:
        avg = dict(average="macro", **zd)
        spec = float(_ovr_specificity(t, p).mean())
        if len(np.unique(t)) == prob.shape[1]:
            auc = skm.roc_auc_score(t, prob, multi_class="ovr", average="macro")
        else:  # a class absent from y_true: sklearn refuses, we return nan
            with pytest.raises(ValueError):
                skm.roc_auc_score(t, prob, multi_class="ovr", average="macro")
            auc = math.nan
    return {
        "accuracy": skm.accuracy_score(t, p),
        "precision": skm.precision_score(t, p, **avg),
        "recall": skm.recall_score(t, p, **avg),
        "sensitivity": skm.recall_score(t, p, **avg),
        "specificity": spec,
        "f1": skm.f1_score(t, p, **avg),
        "precision_weighted": skm.precision_score(t, p, average="weighted", **zd),
        "recall_weighted": skm.recall_score(t, p, average="weighted", **zd),
        "f1_weighted": skm.f1_score(t, p, average="weighted", **zd),
        "kappa": skm.cohen_kappa_score(t, p),
        "roc_auc": auc,
    }


def _sk_multilabel(pred: Predictions) -> dict[str, float]:
    t, p, prob = pred.y_true, pred.y_pred, pred.y_prob
    zd = dict(zero_division=0)
    defined = [j for j in range(t.shape[1]) if 0 < t[:, j].sum() < len(t)]
    if len(defined) == t.shape[1]:
        auc = skm.roc_auc_score(t, prob, average="macro")
    else:
        auc = float(np.mean([skm.roc_auc_score(t[:, j], prob[:, j]) for j in defined]))
    return {
        "accuracy": float((t == p).mean()),
        "subset_accuracy": skm.accuracy_score(t, p),
        "precision": skm.precision_score(t, p, average="macro", **zd),
        "recall": skm.recall_score(t, p, average="macro", **zd),
        "sensitivity": skm.recall_score(t, p, average="macro", **zd),
        "specificity": float(_ovr_specificity(t, p).mean()),
        "f1": skm.f1_score(t, p, average="macro", **zd),
        "precision_weighted": skm.precision_score(t, p, average="weighted", **zd),
        "recall_weighted": skm.recall_score(t, p, average="weighted", **zd),
        "f1_weighted": skm.f1_score(t, p, average="weighted", **zd),
        "roc_auc": auc,
        "mean_auc": auc,
    }


SPECS = {s.name: s for s in core_metrics()}


def assert_metrics_match(specs: dict, pred: Predictions, expected: dict[str, float]) -> None:
    """Every metric of ``specs`` that applies to ``pred``'s task (but loss, and parametric ones named
    without a level) is a float equal to ``expected`` (nan where expected is nan)."""
    applicable = {n for n, s in specs.items() if pred.task in s.tasks and n != "loss" and s.with_param is None}
    assert applicable == set(expected)
    for name, want in expected.items():
        got = specs[name].fn(pred)
        assert isinstance(got, float), name
        if math.isnan(want):
            assert math.isnan(got), name
        else:
            assert got == pytest.approx(want, abs=TOL), name


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", SINGLE, ids=_ids(SINGLE))
def test_single_label_metrics_match_sklearn(case):
    assert_metrics_match(SPECS, case[1], _sk_single(case[1]))


@pytest.mark.parametrize("case", MULTI, ids=_ids(MULTI))
def test_multilabel_metrics_match_sklearn(case):
    assert_metrics_match(SPECS, case[1], _sk_multilabel(case[1]))


def test_zero_division_and_undefined_values_are_what_sklearn_would_give():
    b = dict(SINGLE)["binary-never-predicted"]
    assert cm.precision(b) == 0.0 and cm.f1(b) == 0.0
    absent = dict(SINGLE)["binary-positive-absent"]
    assert cm.recall(absent) == 0.0 and math.isnan(cm.roc_auc(absent))
    assert math.isnan(cm.roc_auc(dict(SINGLE)["multiclass-never-true"]))
    ml = dict(MULTI)["multilabel-absent-labels"]
    aucs = cm.per_label_auc(ml)
    assert math.isnan(aucs["l3"]) and math.isnan(aucs["l7"]) and not math.isnan(aucs["l0"])
    assert math.isnan(cm.cohen_kappa(ml))
    constant = _replace(b, y_true=np.zeros_like(b.y_true), y_pred=np.zeros_like(b.y_pred))
    assert math.isnan(cm.cohen_kappa(constant))  # chance agreement 1: undefined, as in sklearn


@pytest.mark.parametrize("case", SINGLE + MULTI, ids=_ids(SINGLE + MULTI))
def test_per_label_auc_matches_sklearn(case):
    pred = case[1]
    k = len(pred.class_names)
    truth = np.eye(k)[pred.y_true] if pred.task != "multilabel" else pred.y_true
    got = cm.per_label_auc(pred)
    assert list(got) == list(pred.class_names)
    for j, name in enumerate(pred.class_names):
        if 0 < truth[:, j].sum() < len(truth):
            assert got[name] == pytest.approx(skm.roc_auc_score(truth[:, j], pred.y_prob[:, j]), abs=TOL)
        else:
            assert math.isnan(got[name])


@pytest.mark.parametrize("case", SINGLE + MULTI, ids=_ids(SINGLE + MULTI))
def test_confusion_matrix_matches_sklearn(case):
    pred = case[1]
    k = len(pred.class_names)
    if pred.task == "multilabel":
        want = skm.multilabel_confusion_matrix(pred.y_true, pred.y_pred)
    else:
        want = skm.confusion_matrix(pred.y_true, pred.y_pred, labels=list(range(k)))
    got = cm.confusion_matrix(pred)
    assert got.dtype.kind == "i"
    np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", SINGLE + MULTI, ids=_ids(SINGLE + MULTI))
def test_classification_report_matches_sklearn(case):
    pred = case[1]
    want = skm.classification_report(pred.y_true, pred.y_pred, labels=list(range(len(pred.class_names))),
                                      target_names=list(pred.class_names), output_dict=True, zero_division=0)
    got = cm.classification_report(pred)
    expected_keys = [*pred.class_names, "macro avg", "weighted avg"]
    if pred.task != "multilabel":
        expected_keys.insert(len(pred.class_names), "accuracy")
    assert list(got) == expected_keys
    for key, value in got.items():
        if isinstance(value, dict):
            assert set(value) == set(want[key])
            for m, v in value.items():
                assert v == pytest.approx(want[key][m], abs=TOL), (key, m)
        else:
            assert value == pytest.approx(want[key], abs=TOL)


def test_hand_counted_binary_example():
    # 4 positives, 6 negatives; TP=3 FN=1 FP=1 TN=5.
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p1 = np.array([0.9, 0.8, 0.7, 0.4, 0.6, 0.4, 0.3, 0.2, 0.1, 0.1])
    pred = Predictions(y, np.stack([1 - p1, p1], axis=1), (p1 > 0.5).astype(int), "binary", ("neg", "pos"))
    assert cm.accuracy(pred) == pytest.approx(8 / 10)
    assert cm.precision(pred) == pytest.approx(3 / 4)
    assert cm.recall(pred) == pytest.approx(3 / 4)
    assert cm.specificity(pred) == pytest.approx(5 / 6)
    assert cm.f1(pred) == pytest.approx(3 / 4)
    # po = 0.8, pe = 0.4*0.4 + 0.6*0.6 = 0.52 -> (0.8-0.52)/(1-0.52) = 7/12
    assert cm.cohen_kappa(pred) == pytest.approx(7 / 12)
    # pairs won: 6 + 6 + 6 + (4 + half of the 0.4-0.4 tie) = 22.5 of 24
    assert cm.roc_auc(pred) == pytest.approx(22.5 / 24)
    np.testing.assert_array_equal(cm.confusion_matrix(pred), [[5, 1], [1, 3]])
    assert cm.loss(pred) != cm.loss(pred)  # nan without a recorded loss
    assert cm.loss(_replace(pred, loss=0.25)) == 0.25


def test_hand_counted_multiclass_example():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    p = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 0])
    pred = Predictions(y, np.eye(3)[p], p, "multiclass", ("a", "b", "c"))
    # per class (TP, FP, FN): a (2,1,1), b (2,1,1), c (3,1,1); negatives 7, 7, 6
    assert cm.accuracy(pred) == pytest.approx(7 / 10)
    assert cm.precision(pred) == pytest.approx((2 / 3 + 2 / 3 + 3 / 4) / 3)
    assert cm.recall(pred) == pytest.approx((2 / 3 + 2 / 3 + 3 / 4) / 3)
    assert cm.specificity(pred) == pytest.approx((6 / 7 + 6 / 7 + 5 / 6) / 3)
    assert cm.recall_weighted(pred) == pytest.approx(7 / 10)
    # po = 0.7, pe = (3*3 + 3*3 + 4*4) / 100 = 0.34 -> 0.36 / 0.66
    assert cm.cohen_kappa(pred) == pytest.approx(6 / 11)


def test_hand_counted_multilabel_accuracies():
    t = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0]])
    p = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])
    pred = Predictions(t, p.astype(float), p, "multilabel", ("x", "y", "z"))
    assert cm.accuracy(pred) == pytest.approx(10 / 12)  # two wrong cells of twelve
    assert cm.subset_accuracy(pred) == pytest.approx(2 / 4)  # rows 0 and 2 entirely right


def test_registered_metrics():
    assert [s.name for s in register_metrics()][:14] == [s.name for s in core_metrics()]
    specs = core_metrics()
    names = [s.name for s in specs]
    assert names == ["accuracy", "subset_accuracy", "precision", "recall", "sensitivity", "specificity", "f1",
                     "precision_weighted", "recall_weighted", "f1_weighted", "kappa", "roc_auc", "mean_auc",
                     "loss"]
    by = {s.name: s for s in specs}
    assert by["subset_accuracy"].tasks == ("multilabel",) and by["mean_auc"].tasks == ("multilabel",)
    assert set(by["kappa"].tasks) == {"binary", "multiclass"}
    assert by["loss"].higher_is_better is False and by["loss"].bootstrappable is False
    assert all(s.higher_is_better and s.bootstrappable for s in specs if s.name != "loss")
    assert all(s.description for s in specs)
    assert by["sensitivity"].fn is by["recall"].fn


# --- bootstrap -------------------------------------------------------------------------------------

BOOT_CASES = [("binary", make_single(10, n=300, k=2, task="binary")), ("multiclass", make_single(11, n=300)),
              ("multilabel", make_multilabel(12, n=300))]


@pytest.mark.parametrize("case", BOOT_CASES, ids=_ids(BOOT_CASES))
def test_bootstrap_ci_contains_point_and_is_deterministic(case):
    pred = case[1]
    for name in ("accuracy", "f1", "roc_auc", "specificity"):
        fn = SPECS[name].fn
        low, high = bootstrap.bootstrap_ci(fn, pred, n_resamples=300, seed=7)
        assert low < fn(pred) < high, name
        assert (low, high) == bootstrap.bootstrap_ci(fn, pred, n_resamples=300, seed=7)
        assert (low, high) != bootstrap.bootstrap_ci(fn, pred, n_resamples=300, seed=8)
        low80, high80 = bootstrap.bootstrap_ci(fn, pred, n_resamples=300, confidence=0.8, seed=7)
        assert low <= low80 < high80 <= high


@pytest.mark.parametrize("case", BOOT_CASES, ids=_ids(BOOT_CASES))
def test_vectorised_bootstrap_equals_resampling_rows(case):
    """The row-weighted fast path gives exactly what recomputing on each resampled subset gives."""
    pred = case[1]
    for name, spec in SPECS.items():
        if pred.task not in spec.tasks or not spec.bootstrappable:
            continue
        fast = bootstrap.bootstrap_values(spec.fn, pred, n_resamples=40, seed=3)
        slow = bootstrap.bootstrap_values(lambda p, f=spec.fn: f(p), pred, n_resamples=40, seed=3)
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12, err_msg=name)


def test_bootstrap_resamples_rows_like_sklearn_on_subsets():
    """Independent check of the resampling itself: sklearn on explicit row subsets, same draws."""
    pred = make_single(13, n=120, k=2, task="binary")
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 120, size=(50, 120))
    want = [skm.f1_score(pred.y_true[i], pred.y_pred[i], zero_division=0) for i in idx]
    np.testing.assert_allclose(bootstrap.bootstrap_values(cm.f1, pred, 50, seed=5), want, atol=TOL)
    low, high = bootstrap.bootstrap_ci(cm.f1, pred, 50, seed=5)
    assert (low, high) == pytest.approx(tuple(np.percentile(want, [2.5, 97.5])), abs=TOL)


def test_bootstrap_narrows_with_more_data():
    small, large = make_single(20, n=100), make_single(20, n=2000)
    for fn in (cm.accuracy, cm.f1, cm.roc_auc):
        w_small = np.subtract(*bootstrap.bootstrap_ci(fn, small, 300)[::-1])
        w_large = np.subtract(*bootstrap.bootstrap_ci(fn, large, 300)[::-1])
        assert 0 < w_large < w_small / 2


def test_bootstrap_skips_undefined_resamples_and_gives_up_when_too_few():
    pred = make_single(21, n=60, k=2, task="binary")
    one_pos = np.zeros(60, dtype=int)
    one_pos[0] = 1  # AUC undefined in resamples missing row 0: (59/60)**60 ~ 36%
    rare = _replace(pred, y_true=one_pos)
    values = bootstrap.bootstrap_values(cm.roc_auc, rare, 200)
    assert 0.25 < np.isnan(values).mean() < 0.5
    assert all(math.isfinite(v) for v in bootstrap.bootstrap_ci(cm.roc_auc, rare, 200))
    single_class = _replace(pred, y_true=np.zeros(60, dtype=int))
    assert all(math.isnan(v) for v in bootstrap.bootstrap_ci(cm.roc_auc, single_class, 200))
    assert all(math.isnan(v) for v in bootstrap.bootstrap_ci(cm.loss, _replace(pred, loss=0.3), 50))
    with pytest.raises(ValueError):
        bootstrap.bootstrap_ci(cm.accuracy, pred, confidence=95)


def test_bootstrap_tolerates_plugin_metrics_that_raise():
    pred = make_single(22, n=40, k=2, task="binary")
    rare = _replace(pred, y_true=np.r_[1, np.zeros(39, dtype=int)])

    def strict_auc(p: Predictions) -> float:
        if len(np.unique(p.y_true)) < 2:
            raise ValueError("only one class present")
        return skm.roc_auc_score(p.y_true, p.y_prob[:, 1])

    np.testing.assert_allclose(bootstrap.bootstrap_values(strict_auc, rare, 30, seed=1),
                               bootstrap.bootstrap_values(cm.roc_auc, rare, 30, seed=1), rtol=0, atol=TOL)
