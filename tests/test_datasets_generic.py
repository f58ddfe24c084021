"""image_folder and csv: the generic datasets a third party points a suite at."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cxrbench.data.datasets import csv_table, folder
from cxrbench.data.datasets.miniature import add_debris, tiny_suite, write_image
from cxrbench.data.loading import load_dataset
from cxrbench.engine.runner import run_suite
from cxrbench.errors import DatasetError

PNG_MODES = ("L", "RGB", "P", "LA")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))


def make_folders(base: Path, counts: dict[str, int], ext: str = ".png", start: int = 0) -> None:
    for c, (cls, n) in enumerate(counts.items()):
        for j in range(n):
            k = start + 10 * c + j
            write_image(base / cls / f"pat{j // 2:02d}_{cls}_{j}{ext}", (30 + k % 3 * 5, 32), PNG_MODES[k % 4], seed=k)


def load_folder(root, classes, task="binary", **options):
    return load_dataset(folder.SPEC, task, classes, root, options)


def load_csv(root, classes, task="binary", **options):
    return load_dataset(csv_table.SPEC, task, classes, root, options)


def test_image_folder_flat_with_debris_and_patient_regex(tmp_path):
    make_folders(tmp_path / "d", {"Normal": 4, "abnormal": 6})
    (tmp_path / "d" / "Normal" / "nested").mkdir()
    write_image(tmp_path / "d" / "Normal" / "nested" / "pat09_extra.bmp", (20, 20), "L", fmt="BMP")
    (tmp_path / "d" / "Normal" / "notes.txt").write_text("not an image")
    add_debris(tmp_path / "d", tmp_path / "d")
    t = load_folder(tmp_path / "d", ("normal", "ABNORMAL"))
    assert len(t) == 11 and Counter(t.labels.tolist()) == {0: 5, 1: 6}
    assert "Normal/nested/pat09_extra.bmp" in t.ids and t.official_split is None and t.patient_ids is None
    t = load_folder(tmp_path / "d", ("abnormal", "normal"), patient_regex=r"^(pat\d+)_")
    assert Counter(t.labels.tolist()) == {0: 6, 1: 5}  # labels follow the suite's class order
    assert Counter(t.patient_ids) == {"pat00": 4, "pat01": 4, "pat02": 2, "pat09": 1}
    with pytest.raises(DatasetError, match="does not match"):
        load_folder(tmp_path / "d", ("normal", "abnormal"), patient_regex=r"^(xyz)")
    with pytest.raises(DatasetError, match="patient_regex"):
        load_folder(tmp_path / "d", ("normal", "abnormal"), patient_regex="no group")


def test_image_folder_patients_official_layout_and_errors(tmp_path):
    make_folders(tmp_path / "s" / "train", {"neg": 6, "pos": 6})
    make_folders(tmp_path / "s" / "test", {"neg": 2, "pos": 2}, start=50)
    t = load_folder(tmp_path / "s", ("neg", "pos"), patient_regex=r"^(pat\d+)_")
    assert Counter(t.official_split) == {"train": 12, "test": 4}
    assert Counter(t.patient_ids)["pat00"] == 8  # 2 images in each of train/neg, train/pos, test/neg, test/pos
    with pytest.raises(DatasetError, match=r"folder\(s\) \['pos'\] .* not among the suite's classes"):
        load_folder(tmp_path / "s", ("neg",))
    with pytest.raises(DatasetError, match="unknown classes"):
        load_folder(tmp_path / "s", ("neg", "other"))
    (tmp_path / "s" / "test" / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        load_folder(tmp_path / "s", ("neg", "pos", "empty"), task="multiclass")


def write_csv(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_labels_patients_split_and_relative_paths(tmp_path):
    make_folders(tmp_path / "data" / "img", {"a": 4, "b": 4})
    rows = ["path,label,patient_id,split"]
    for j in range(4):
        rows.append(f"img/a/pat{j // 2:02d}_a_{j}.png,Healthy,p{j // 2},{'train' if j < 2 else 'test'}")
        rows.append(f"img/b/pat{j // 2:02d}_b_{j}.png,sick,q{j // 2},{'Train' if j < 2 else 'TEST'}")
    csv = write_csv(tmp_path / "data" / "labels.csv", rows)
    t = load_csv(csv, ("healthy", "Sick"))
    assert len(t) == 8 and t.labels.tolist() == [0, 1] * 4
    assert t.patient_ids[:4] == ["p0", "q0", "p0", "q0"] and Counter(t.official_split) == {"train": 4, "test": 4}
    # the same CSV elsewhere, its paths relative to dataset.root
    write_csv(tmp_path / "meta" / "labels.csv", rows)
    t2 = load_csv(tmp_path / "data", ("healthy", "sick"), csv=str(tmp_path / "meta" / "labels.csv"))
    assert [Path(p).name for p in t2.load_image.paths] == [Path(p).name for p in t.load_image.paths]


def test_csv_errors_name_the_row(tmp_path):
    make_folders(tmp_path / "img", {"a": 2})
    csv = write_csv(tmp_path / "l.csv", ["path,label", "img/a/pat00_a_0.png,normal", "img/a/pat00_a_1.png,covid"])
    with pytest.raises(DatasetError, match=r"l.csv line 3: label 'covid' is not one of the classes"):
        load_csv(csv, ("normal", "pneumonia"))
    csv = write_csv(tmp_path / "l.csv", ["path,label", "img/a/pat00_a_0.png,normal", "img/a/gone.png,pneumonia"])
    with pytest.raises(DatasetError, match=r"l.csv line 3: image 'img/a/gone.png' not found"):
        load_csv(csv, ("normal", "pneumonia"))
    t = load_csv(csv, ("normal", "pneumonia"), allow_missing=True)
    assert len(t) == 1 and t.skipped[0][0] == "img/a/gone.png"
    csv = write_csv(tmp_path / "l.csv", ["path,label,split", "img/a/pat00_a_0.png,normal,holdout"])
    with pytest.raises(DatasetError, match="line 2: split 'holdout'"):
        load_csv(csv, ("normal", "pneumonia"))
    with pytest.raises(DatasetError, match="CSV file .* not found"):
        load_csv(tmp_path, ("normal", "pneumonia"), csv="missing.csv")


def test_csv_multilabel_pipe_and_columns(tmp_path):
    make_folders(tmp_path / "img", {"a": 3})
    names = [f"img/a/pat{j // 2:02d}_a_{j}.png" for j in range(3)]
    pipe = write_csv(tmp_path / "p.csv", ["path,labels", f"{names[0]},Edema|Effusion", f"{names[1]},",
                                          f"{names[2]},No Finding"])
    t = load_csv(pipe, ("effusion", "edema", "mass"), task="multilabel")
    np.testing.assert_array_equal(t.labels, [[1, 1, 0], [0, 0, 0], [0, 0, 0]])
    cols = write_csv(tmp_path / "c.csv", ["path,Edema,Effusion,patient_id", f"{names[0]},1,0,x", f"{names[1]},0,1,x",
                                          f"{names[2]},1,1,y"])
    t = load_csv(cols, ("effusion", "edema"), task="multilabel")
    np.testing.assert_array_equal(t.labels, [[0, 1], [1, 0], [1, 1]])
    assert t.patient_ids == ["x", "x", "y"]
    with pytest.raises(DatasetError, match="unknown label columns"):
        load_csv(cols, ("effusion", "mass"), task="multilabel")


def test_image_folder_and_csv_suites_end_to_end(tmp_path):
    make_folders(tmp_path / "f", {"normal": 10, "pneumonia": 10})
    suite = tiny_suite(tmp_path / "f.yaml", {"name": "image_folder", "root": str(tmp_path / "f"),
                                             "options": {"patient_regex": "^(pat\\d+_[a-z]+)_"}},
                       {"type": "binary", "classes": ["normal", "pneumonia"]},
                       split={"strategy": "kfold", "folds": 2, "val_fraction": 0.25})
    out = run_suite(suite, results_root=tmp_path / "res", device="cpu")
    assert [r.status for r in out.records] == ["ok", "ok"]
    assert sum(r.n_test for r in out.records) == 20  # each image tested once across the folds

    rows = ["path,label,split"] + [f"f/{c}/pat{j // 2:02d}_{c}_{j}.png,{c},{'test' if j >= 7 else 'train'}"
                                   for c in ("normal", "pneumonia") for j in range(10)]
    csv = write_csv(tmp_path / "list.csv", rows)
    suite = tiny_suite(tmp_path / "c.yaml", {"name": "csv", "root": None, "options": {"csv": str(csv)}},
                       {"type": "binary", "classes": ["normal", "pneumonia"]})
    out = run_suite(suite, results_root=tmp_path / "res", device="cpu")
    (record,) = out.records
    assert record.status == "ok" and record.n_test == 6
