"""Shortcut probes: mask geometry, the flag rule, the source probe, and `cxrbench probe` on real runs.

Two tiny runs are trained once per module: LeNet on synthetic_cxr with a planted corner tag on
every positive and a near-invisible finding (it can only learn the tag), and LeNet on clean data
with obvious findings. The masking probe must flag the first and not the second.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

from cxrbench.cli import main
from cxrbench.data.loading import load_dataset
from cxrbench.results.predictions import read_predictions
from cxrbench.engine.runner import run_suite
from cxrbench.errors import DatasetError
from cxrbench.plugins import get_registry
from cxrbench.probes import PROBES_FILE
from cxrbench.probes.masking import MaskGeometry, apply_mask, parse_geometry, shortcut_verdict
from cxrbench.probes.report import probes_context
from cxrbench.probes.run import run_probes
from cxrbench.probes.source import source_labels, source_probe

SIZE = 32


# ----------------------------------------------------------------------------- geometry and rule

def test_box_is_the_centred_fraction():
    # 0.7 * 32 = 22.4 -> 22 px, (32 - 22) // 2 = 5 on each side; 0.5 * 40 = 20 rows, 10 above
    assert MaskGeometry(0.7, 0.7).box(32, 32) == (5, 27, 5, 27)
    assert MaskGeometry(width=0.7, height=0.5).box(40, 32) == (10, 30, 5, 27)
    assert parse_geometry("0.7x0.6") == MaskGeometry(0.7, 0.6)
    assert parse_geometry("0.65") == MaskGeometry(0.65, 0.65)
    for bad in ("1.2", "0", "abc", "0.5x0.5x0.5"):
        with pytest.raises(ValueError):
            parse_geometry(bad)


def test_apply_mask_fills_exactly_the_box_or_the_border():
    x = torch.full((3, SIZE, SIZE), 200, dtype=torch.uint8)
    fill = torch.tensor([1, 2, 3], dtype=torch.uint8)
    lungs = apply_mask(x, "lungs_masked", MaskGeometry(), fill)
    centre = apply_mask(x, "center_only", MaskGeometry(), fill)
    for c in range(3):
        assert int((lungs[c] == fill[c]).sum()) == 22 * 22
        assert int((centre[c] == fill[c]).sum()) == SIZE * SIZE - 22 * 22
    assert (lungs[:, 5:27, 5:27] == fill.view(3, 1, 1)).all() and (lungs[:, :5] == 200).all()
    assert (centre[:, 5:27, 5:27] == 200).all() and (centre[:, :, 27:] == fill.view(3, 1, 1)).all()
    assert apply_mask(x, "original", MaskGeometry(), fill) is x


def test_synthetic_shortcut_tag_lies_in_the_probe_border():
    table = load_dataset(
        get_registry().dataset("synthetic_cxr"), "binary", ("normal", "pneumonia"), None,
        {"n_samples": 20, "shortcut": True, "shortcut_strength": 1.0})
    tagged = int(np.flatnonzero(table.extras["shortcut_marker"])[0])
    img = torch.from_numpy(table.load_image(tagged, SIZE)).unsqueeze(0)
    tag = (slice(None), slice(1, 3), slice(29, 31))  # render(): inset round(.03*32)=1, side max(2, round(.07*32))=2
    assert (img[tag] == 255).all()
    assert (apply_mask(img, "lungs_masked", MaskGeometry(), 0)[tag] == 255).all()  # kept with the lungs hidden
    assert (apply_mask(img, "center_only", MaskGeometry(), 0)[tag] == 0).all()


def test_shortcut_verdict_rule():
    v = shortcut_verdict({"original": 0.9, "lungs_masked": 0.8, "center_only": 0.55}, chance=0.5)
    assert v["margin"] == pytest.approx(0.4) and v["retained"] == pytest.approx(0.75)
    assert v["retained_center_only"] == pytest.approx(0.125) and v["flagged"] and v["verdict"].startswith("FLAGGED")
    v = shortcut_verdict({"original": 0.9, "lungs_masked": 0.65, "center_only": 0.9}, chance=0.5)
    assert v["retained"] == pytest.approx(0.375) and not v["flagged"]
    # lower is better (e.g. a loss): baseline 0.7, model 0.3, masked 0.4 keeps 0.3 / 0.4 = 75%
    v = shortcut_verdict({"original": 0.3, "lungs_masked": 0.4, "center_only": 0.7}, 0.7, higher_is_better=False)
    assert v["retained"] == pytest.approx(0.75) and v["flagged"]
    v = shortcut_verdict({"original": 0.53, "lungs_masked": 0.53, "center_only": 0.5}, chance=0.5)
    assert v["retained"] is None and not v["flagged"] and v["verdict"].startswith("not assessed")
    v = shortcut_verdict({"original": float("nan"), "lungs_masked": 0.5, "center_only": 0.5}, chance=0.5)
    assert not v["flagged"] and v["verdict"].startswith("undefined")


# ----------------------------------------------------------------------------- source probe

def _synthetic(n: int, **options):
    return load_dataset(
        get_registry().dataset("synthetic_cxr"), "binary", ("normal", "pneumonia"), None,
        {"n_samples": n, "seed": 3, **options})


def test_source_probe_finds_a_visible_source_and_not_a_random_one():
    table = _synthetic(120, shortcut=True, shortcut_strength=0.5)
    images = np.stack([table.load_image(i, SIZE) for i in range(len(table))])[:, None]
    marker = np.asarray(table.extras["shortcut_marker"])
    sources, origin = source_labels(table, "shortcut_marker")
    assert np.array_equal(sources, marker) and "shortcut_marker" in origin
    res = source_probe(images, sources, table.patient_ids, labels=table.labels, class_names=["normal", "pneumonia"])
    assert res["status"] == "ok" and res["auc"] > 0.9 and res["warning"] and res["grouped"]
    labels = np.asarray(table.labels)
    expected = {str(s): {"normal": int(((marker == s) & (labels == 0)).sum()),
                         "pneumonia": int(((marker == s) & (labels == 1)).sum())} for s in (False, True)}
    assert res["by_class"] == expected and expected["True"]["normal"] == 0  # only positives are tagged
    assert res["sources"] == {"False": int((~marker).sum()), "True": int(marker.sum())}

    random_source = np.random.default_rng(0).integers(0, 2, len(table))
    res = source_probe(images, random_source, table.patient_ids)
    assert res["auc"] < 0.75 and not res["warning"]
    assert source_probe(images, np.zeros(len(table)))["status"] == "skipped"


def test_source_labels_default_named_missing_and_csv(tmp_path):
    table = _synthetic(10)
    assert source_labels(table)[0] is None  # synthetic data declares no 'source'
    with pytest.raises(DatasetError, match="per-image extras: shortcut_marker"):
        source_labels(table, "hospital")
    from cxrbench.data.datasets.miniature import write_image

    rows = []
    for i in range(6):
        write_image(tmp_path / "img" / f"{i}.png", (SIZE, SIZE), seed=i)
        rows.append({"path": f"img/{i}.png", "label": ["normal", "pneumonia"][i % 2], "hospital": f"h{i // 3}"})
    pd.DataFrame(rows).to_csv(tmp_path / "data.csv", index=False)
    csv_table = load_dataset(
        get_registry().dataset("csv"), "binary", ("normal", "pneumonia"), None, {"csv": str(tmp_path / "data.csv")})
    sources, origin = source_labels(csv_table, "hospital")
    expected = {f"img/{i}.png": f"h{i // 3}" for i in range(6)}
    assert list(sources) == [expected[sid] for sid in csv_table.ids] and "data.csv" in origin


# ----------------------------------------------------------------------------- real runs

def _suite(path: Path, shortcut: bool, save: bool = True, n: int = 240, epochs: int = 4) -> Path:
    options = {"n_samples": n, "seed": 1, "difficulty": 1.0 if shortcut else 0.0}
    if shortcut:
        options |= {"shortcut": True, "shortcut_strength": 1.0}
    suite = {"name": "probe_shortcut" if shortcut else "probe_clean",
             "task": {"type": "binary", "classes": ["normal", "pneumonia"]},
             "dataset": {"name": "synthetic_cxr", "options": options}, "split": {"strategy": "ratio", "seed": 0},
             "input": {"image_size": SIZE, "channels": 1, "normalization": "dataset"}, "models": ["lenet"],
             "seeds": [1],
             "train": {"epochs": epochs, "batch_size": 16, "save_checkpoints": save,
                       "optimizer": {"name": "adam", "lr": 0.003}},
             "metrics": {"primary": "roc_auc", "report": ["roc_auc"], "bootstrap": 0}, "profile": {"cost": False}}
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("probes")
    out = {}
    for name, shortcut in (("shortcut", True), ("clean", False)):
        outcome = run_suite(_suite(root / f"{name}.yaml", shortcut), results_root=root / "results", device="cpu")
        assert outcome.status == "complete"
        out[name] = outcome.store.dir
    return out


@pytest.fixture(scope="module")
def probed(runs):
    return {"shortcut": run_probes(runs["shortcut"], source_column="shortcut_marker", device="cpu"),
            "clean": run_probes(runs["clean"], device="cpu")}


def test_masking_probe_flags_the_shortcut_model_only(runs, probed):
    (sc,) = probed["shortcut"]["masking"]["models"]
    (clean,) = probed["clean"]["masking"]["models"]
    for m, run_dir in ((sc, runs["shortcut"]), (clean, runs["clean"])):
        # the unmasked score is the run's own: recomputed from its predictions file with scikit-learn
        pred = read_predictions(run_dir / "predictions" / f"{m['job']}.csv", ["normal", "pneumonia"], "binary").pred
        assert m["scores"]["original"] == pytest.approx(roc_auc_score(pred.y_true, pred.y_prob[:, 1]), abs=1e-6)
        assert m["reproduced"] and m["majority"] == 0.5  # a constant score has AUC 0.5
        assert m["margin"] >= 0.2  # both models learned something, so both are assessed
    assert sc["flagged"] is True and sc["retained"] >= 0.9
    assert sc["scores"]["lungs_masked"] > 0.95 and sc["scores"]["center_only"] < 0.8  # the tag is all it has
    assert clean["flagged"] is False and clean["retained"] < 0.5
    assert clean["scores"]["center_only"] > clean["scores"]["lungs_masked"]


def test_probes_json_content(runs, probed):
    data = json.loads((runs["shortcut"] / PROBES_FILE).read_text())
    assert data["run_id"] == runs["shortcut"].name and data["suite"] == "probe_shortcut"
    masking = data["masking"]
    assert masking["primary"] == "roc_auc" and masking["geometry"] == {"width": 0.7, "height": 0.7}
    assert masking["retain"] == 0.5 and "majority baseline" in masking["rule"]
    (m,) = masking["models"]
    assert m["model"] == "lenet" and m["job"] == "lenet__fold0__seed1" and m["status"] == "ok"
    assert set(m["scores"]) == {"original", "lungs_masked", "center_only"} and m["flagged"] is True
    splits = pd.read_csv(runs["shortcut"] / "splits.csv")
    assert m["n_test"] == int(((splits["fold"] == 0) & (splits["split"] == "test")).sum())
    src = data["source"]
    assert src["status"] == "ok" and src["column"] == "shortcut_marker" and src["auc"] > 0.9 and src["warning"]
    assert src["by_class"]["True"]["normal"] == 0 and src["by_class"]["False"]["pneumonia"] == 0
    clean_src = probed["clean"]["source"]
    assert clean_src["status"] == "skipped" and "--source-column" in clean_src["message"]


def test_cli_json_and_report_section(runs, probed, capsys):
    from cxrbench.report.build import build_report

    assert main(["probe", str(runs["clean"]), "--json", "--device", "cpu", "--mask", "0.6x0.7"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["masking"]["geometry"] == {"width": 0.6, "height": 0.7}
    html = build_report(runs["shortcut"], gradcam=False).read_text()
    assert 'id="probes"' in html and "Shortcut probes" in html and "FLAGGED" in html
    assert "the image source is easy to recognise" in html


def test_cli_run_without_checkpoints(tmp_path, capsys):
    suite = _suite(tmp_path / "s.yaml", shortcut=False, save=False, n=60, epochs=1)
    outcome = run_suite(suite, results_root=tmp_path / "results", device="cpu")
    assert main(["probe", str(outcome.store.dir)]) == 2
    err = capsys.readouterr().err
    assert "no model to probe" in err and "save_checkpoints: true" in err
    assert not (outcome.store.dir / PROBES_FILE).exists()
    ctx = probes_context(outcome.store)
    assert not ctx["exists"] and f"cxrbench probe {outcome.store.run_id}" in ctx["hint"]
