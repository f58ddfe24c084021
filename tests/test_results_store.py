"""The results layer: every path of a run folder, the one atomic write, the predictions CSV format, layering."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cxrbench.results.predictions import predictions_csv, read_predictions, write_predictions
from cxrbench.results.store import RunStore, imported_latency_dir, safe_name, write_atomic, write_json_atomic
from cxrbench.specs import Predictions



def test_every_run_path(tmp_path):
    store = RunStore.create(tmp_path, "s", "r1")
    d = tmp_path / "s" / "r1"
    assert store.dir == d and store.run_id == "r1"
    assert store.header_path == d / "run.json" and store.splits_path == d / "splits.csv"
    assert store.record_path("j") == d / "records" / "j.json"
    assert store.predictions_path("j") == d / "predictions" / "j.csv"
    assert store.checkpoint_path("j") == d / "checkpoints" / "j.pt"
    assert store.latency_path("j") == d / "latency" / "j.json"
    assert store.external_predictions_path("ext", "j") == d / "external" / "ext" / "j.csv"
    assert store.log_path("j") == d / "logs" / "j.log"
    assert store.probes_path == d / "probes.json" and store.report_dir == d / "report"
    assert store.relative(store.predictions_path("j")) == "predictions/j.csv"
    assert imported_latency_dir(tmp_path, "my suite", "pi 5") == tmp_path / "my_suite" / "_latency" / "pi_5"
    assert safe_name("../x y") == "x_y" and safe_name("") == "unknown"


def test_atomic_write_bytes_text_json_and_log(tmp_path):
    store = RunStore.create(tmp_path, "s", "r1")
    path = store.write_bytes(store.checkpoint_path("j"), b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    write_atomic(path, "é")
    assert path.read_bytes() == "é".encode()
    store.append_log("j", "one\n")
    store.append_log("j", "two\n")
    assert store.log_path("j").read_text() == "one\ntwo\n"
    write_json_atomic(store.header_path, {"a": np.int64(3), "b": np.arange(2), "c": Path("x")})
    assert store.read_header() == {"a": 3, "b": [0, 1], "c": "x"}
    with pytest.raises(TypeError):
        write_json_atomic(store.header_path, {"bad": object()})  # fails before the file is touched
    assert store.read_header()["a"] == 3
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600


def _pred(task: str) -> Predictions:
    if task == "multilabel":
        y = np.array([[1, 0], [0, 1]])
        return Predictions(y, np.array([[0.9, 0.2], [0.123456789, 0.5]]), np.array([[1, 0], [0, 1]]), task,
                           ("a", "b"))
    return Predictions(np.array([1, 0]), np.array([[0.25, 0.75], [1 / 3, 2 / 3]]), np.array([1, 1]), task,
                       ("neg", "pos"), 1)


def test_predictions_csv_is_the_documented_format(tmp_path):
    assert predictions_csv(_pred("binary"), ["001", "x"], ["p1", "p2"]).decode() == (
        "sample_id,patient_id,y_true,y_pred,prob_neg,prob_pos\n"
        "001,p1,1,1,0.25,0.75\n"
        "x,p2,0,1,0.33333333,0.66666667\n")
    assert predictions_csv(_pred("multilabel"), ["i", "j"], None).decode() == (
        "sample_id,patient_id,true_a,true_b,pred_a,pred_b,prob_a,prob_b\n"
        "i,,1,0,1,0,0.9,0.2\n"
        "j,,0,1,0,1,0.12345679,0.5\n")
    path = write_predictions(tmp_path / "p.csv", _pred("binary"), ["001", "x"], None)
    back = read_predictions(path, ["neg", "pos"], "binary")
    assert back.sample_ids == ["001", "x"] and back.patient_ids == ["", ""]  # ids stay strings
    np.testing.assert_array_equal(back.pred.y_true, [1, 0])
    np.testing.assert_allclose(back.pred.y_prob, [[0.25, 0.75], [0.33333333, 0.66666667]])


def test_predictions_align_by_sample_id(tmp_path):
    pred = _pred("binary")
    a = read_predictions(write_predictions(tmp_path / "a.csv", pred, ["u", "v"], None), ["neg", "pos"], "binary")
    b = read_predictions(write_predictions(tmp_path / "b.csv", pred.subset(np.array([1, 0])), ["v", "u"], None),
                         ["neg", "pos"], "binary")
    aligned = b.aligned_to(a)
    assert aligned.sample_ids == ["u", "v"]
    np.testing.assert_array_equal(aligned.pred.y_true, pred.y_true)
    other = read_predictions(write_predictions(tmp_path / "c.csv", pred, ["u", "w"], None), ["neg", "pos"], "binary")
    assert other.aligned_to(a) is None
