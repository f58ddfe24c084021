"""Masked multilabel labels (not annotated = neither loss nor metrics): metrics equal sklearn's on the
unmasked rows, the loss equals a hand computation, the predictions CSV round-trips the mask."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from cxrbench.data.label_space import requested_classes, select_classes
from cxrbench.engine.batches import label_tensor
from cxrbench.engine.trainer import make_loss
from cxrbench.errors import DatasetError
from cxrbench.metrics import classification as C
from cxrbench.metrics.bootstrap import bootstrap_values
from cxrbench.metrics.calibration import brier
from cxrbench.models.predict import split_unknown, to_predictions
from cxrbench.results.predictions import predictions_csv, read_predictions
from cxrbench.specs import Predictions

NAMES = ("A", "B", "C", "D")


def _pred(seed: int = 0, n: int = 40) -> Predictions:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < 0.4).astype(int)
    prob = np.clip(0.6 * y + rng.random((n, 4)) * 0.6, 0, 1)
    mask = rng.random((n, 4)) < 0.7
    mask[:, 3] = False  # label D: never annotated -> not evaluated
    mask[0] = False  # a row masked entirely
    y_masked = np.where(mask, y, 0)  # placeholder 0 where unknown
    return Predictions(y_masked, prob, (prob >= 0.5).astype(int), "multilabel", NAMES, mask=mask)


def _rows(p: Predictions, j: int) -> np.ndarray:
    return np.flatnonzero(p.mask[:, j])


def test_masked_metrics_equal_sklearn_on_the_unmasked_rows():
    p = _pred()
    per_label = C.per_label_auc(p)
    aucs, aps, precs, recs, f1s, mccs = [], [], [], [], [], []
    for j, name in enumerate(NAMES[:3]):
        r = _rows(p, j)
        t, s, yp = p.y_true[r, j], p.y_prob[r, j], p.y_pred[r, j]
        aucs.append(skm.roc_auc_score(t, s))
        aps.append(skm.average_precision_score(t, s))
        precs.append(skm.precision_score(t, yp, zero_division=0))
        recs.append(skm.recall_score(t, yp, zero_division=0))
        f1s.append(skm.f1_score(t, yp, zero_division=0))
        mccs.append(skm.matthews_corrcoef(t, yp))
        assert per_label[name] == pytest.approx(aucs[-1], abs=1e-12)
    assert math.isnan(per_label["D"])  # no known row: not evaluated
    assert C.mean_auc(p) == pytest.approx(np.mean(aucs), abs=1e-12)
    assert C.roc_auc(p) == pytest.approx(np.mean(aucs), abs=1e-12)
    assert C.auprc(p) == pytest.approx(np.mean(aps), abs=1e-12)
    assert C.precision(p) == pytest.approx(np.mean(precs), abs=1e-12)
    assert C.recall(p) == pytest.approx(np.mean(recs), abs=1e-12)
    assert C.f1(p) == pytest.approx(np.mean(f1s), abs=1e-12)
    assert C.mcc(p) == pytest.approx(np.mean(mccs), abs=1e-12)
    known = p.mask
    assert C.accuracy(p) == pytest.approx((p.y_true == p.y_pred)[known].mean(), abs=1e-12)
    sq = (p.y_prob - p.y_true) ** 2
    assert brier(p) == pytest.approx(sq[known].mean(), abs=1e-12)
    # multilabel confusion matrix: sklearn's on each label's known rows
    cm = C.confusion_matrix(p)
    for j in range(3):
        r = _rows(p, j)
        np.testing.assert_array_equal(cm[j], skm.confusion_matrix(p.y_true[r, j], p.y_pred[r, j], labels=[0, 1]))
    assert cm[3].sum() == 0


def test_masked_entries_change_nothing_and_a_fully_masked_row_contributes_nothing():
    p = _pred(1)
    scrambled = Predictions(np.where(p.mask, p.y_true, 1 - p.y_true), p.y_prob, p.y_pred, p.task, NAMES, mask=p.mask)
    for fn in (C.mean_auc, C.auprc, C.f1, C.accuracy, C.mcc, C.subset_accuracy, brier):
        assert fn(scrambled) == pytest.approx(fn(p), abs=1e-12)
    dropped = p.subset(np.arange(1, len(p.y_true)))  # row 0 is masked entirely
    for fn in (C.mean_auc, C.auprc, C.f1, C.accuracy, C.subset_accuracy, brier):
        assert fn(dropped) == pytest.approx(fn(p), abs=1e-12)
    # no mask at all: the plain metric, as before
    plain = Predictions(p.y_true, p.y_prob, p.y_pred, p.task, NAMES)
    auc_plain = np.mean([skm.roc_auc_score(p.y_true[:, j], p.y_prob[:, j]) for j in range(4)
                         if len(set(p.y_true[:, j])) == 2])
    assert C.mean_auc(plain) == pytest.approx(auc_plain, abs=1e-12)


def test_bootstrap_of_a_masked_metric_matches_the_slow_path():
    p = _pred(2, n=30)
    fast = bootstrap_values(C.mean_auc, p, n_resamples=40, seed=3)
    slow = bootstrap_values(lambda q: C.mean_auc(q), p, n_resamples=40, seed=3)  # subset() path, mask carried
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    assert np.isfinite(fast).all()


def test_masked_loss_equals_a_hand_computation():
    logits = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [0.2, 0.3, 0.4]])
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1]])
    mask = np.array([[True, False, True], [True, True, False], [False, False, False]])
    target = label_tensor(y, mask, "multilabel")
    assert torch.isnan(target[~torch.from_numpy(mask)]).all()
    loss = make_loss("multilabel")(logits, target)

    def bce(z, t):
        return -(t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z))))

    cells = [(i, j) for i in range(3) for j in range(3) if mask[i, j]]
    hand = sum(bce(float(logits[i, j]), y[i, j]) for i, j in cells) / len(cells)
    assert float(loss) == pytest.approx(hand, rel=1e-6)
    # the fully masked row contributes nothing: same loss without it
    assert float(make_loss("multilabel")(logits[:2], target[:2])) == pytest.approx(hand, rel=1e-6)
    # no mask: torch's plain BCE-with-logits mean
    full = label_tensor(y, None, "multilabel")
    assert float(make_loss("multilabel")(logits, full)) == pytest.approx(
        float(torch.nn.BCEWithLogitsLoss()(logits, full)), rel=1e-6)
    # nothing known: 0 with a zero (not nan) gradient
    z = logits.clone().requires_grad_(True)
    none = make_loss("multilabel")(z, torch.full_like(full, float("nan")))
    none.backward()
    assert float(none.detach()) == 0.0 and torch.all(z.grad == 0)


def test_predictions_csv_round_trips_the_mask(tmp_path):
    p = _pred(4, n=12)
    path = tmp_path / "p.csv"
    path.write_bytes(predictions_csv(p, [f"id{i}" for i in range(12)], None))
    back = read_predictions(path, NAMES, "multilabel").pred
    np.testing.assert_array_equal(back.mask, p.mask)
    np.testing.assert_array_equal(back.y_true, p.y_true)
    assert C.mean_auc(back) == pytest.approx(C.mean_auc(p), abs=1e-7)
    text = path.read_text().splitlines()
    assert text[1].split(",")[2:6] == ["", "", "", ""]  # row 0: every true_ cell empty
    plain = Predictions(p.y_true, p.y_prob, p.y_pred, p.task, NAMES)
    path.write_bytes(predictions_csv(plain, [f"id{i}" for i in range(12)], None))
    assert read_predictions(path, NAMES, "multilabel").pred.mask is None


def test_nan_labels_become_the_mask_of_predictions():
    y = np.array([[1.0, np.nan], [0.0, 1.0]])
    labels, mask = split_unknown(y)
    np.testing.assert_array_equal(labels, [[1, 0], [0, 1]])
    np.testing.assert_array_equal(mask, [[True, False], [True, True]])
    pred = to_predictions(np.full((2, 2), 0.7), y, "multilabel", ("a", "b"), 1)
    np.testing.assert_array_equal(pred.mask, mask)
    assert to_predictions(np.full((2, 2), 0.7), np.ones((2, 2)), "multilabel", ("a", "b"), 1).mask is None


def test_select_classes_masks_what_the_archive_lacks():
    cols = {"Effusion": np.array([1, 0, 1]), "Support Devices": np.array([0, 1, 1])}
    known = {"Effusion": np.array([True, False, True])}
    labels, mask, missing = select_classes(cols, ["pleural effusion", "Nodule", "support devices"], known)
    np.testing.assert_array_equal(labels, [[1, 0, 0], [0, 0, 1], [1, 0, 1]])
    np.testing.assert_array_equal(mask, [[True, False, True], [False, False, True], [True, False, True]])
    assert missing == ["Nodule"]
    requested_classes("x", ["Nodule", "Pleural Effusion"], ["Effusion"])  # vocabulary name: fine
    with pytest.raises(DatasetError, match="unknown labels.*Covid"):
        requested_classes("x", ["Covid"], ["Effusion"])
    with pytest.raises(DatasetError, match="same class twice"):
        requested_classes("x", ["Effusion", "pleural effusion"], ["Effusion"])


def test_report_roc_curves_and_errors_skip_masked_cells():
    from cxrbench.report.diagnostics import most_confident_errors, roc_curves

    p = _pred(5, n=20)
    curves, skipped = roc_curves(p)
    assert skipped == ["D"]
    for c in curves:
        j = NAMES.index(c["name"])
        r = _rows(p, j)
        assert c["auc"] == pytest.approx(skm.roc_auc_score(p.y_true[r, j], p.y_prob[r, j]), abs=1e-12)
    errors = most_confident_errors([f"id{i}" for i in range(20)], p, 1000)
    wrong = (p.y_pred != p.y_true) & p.mask
    assert len(errors) == int(wrong.sum()) and all(p.mask[e["row"], NAMES.index(e["caption"].split(":")[0])]
                                                    for e in errors)
