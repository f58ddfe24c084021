"""A dataset folder holding part of its layout (kermany with only val/, lung_xray missing a class
folder, image_folder with only val/): ``datasets describe`` describes what is there and lists what
is missing; a run refuses with the missing folder named (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cxrbench.cli import main
from cxrbench.data.datasets import folder, kermany, lung_xray
from cxrbench.data.datasets.miniature import make_kermany, make_lung_xray, tiny_suite, write_image
from cxrbench.data.describe import describe_dataset
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CXRBENCH_DATA", raising=False)


@pytest.fixture
def kermany_val_only(tmp_path) -> Path:
    base = make_kermany(tmp_path / "data", corrupt=False, debris=False)
    shutil.rmtree(base / "train")
    shutil.rmtree(base / "test")
    return base


def test_kermany_val_only_is_described(kermany_val_only):
    d = describe_dataset("kermany", str(kermany_val_only.parent), "binary")
    assert d["counts"] == {"val": {"normal": 2, "pneumonia": 2, "total": 4}}  # the miniature's val/: 2 + 2
    assert d["missing"] == [f"{kermany_val_only / 'train'}/", f"{kermany_val_only / 'test'}/"]
    assert d["patients"]["per_split"] == {"val": 4}


def test_kermany_val_only_run_names_the_missing_splits(kermany_val_only, tmp_path, capsys):
    with pytest.raises(DatasetError) as err:
        load_dataset(kermany.SPEC, "binary", ("normal", "pneumonia"), kermany_val_only.parent)
    msg = str(err.value)
    assert f"{kermany_val_only} is incomplete: missing {kermany_val_only / 'train'}/, {kermany_val_only / 'test'}/" in msg
    assert "4 images in what is there" in msg and "cxrbench datasets describe kermany" in msg
    suite = tiny_suite(tmp_path / "s.yaml", {"name": "kermany", "root": str(kermany_val_only.parent)},
                       {"type": "binary", "classes": ["normal", "pneumonia"]})
    assert main(["run", str(suite), "-q", "--results", str(tmp_path / "res")]) == 2
    err_text = "".join(capsys.readouterr().err.split())  # rich wraps long paths
    assert f"missing{kermany_val_only / 'train'}/" in err_text


def test_kermany_train_test_without_val_is_complete(tmp_path):
    base = make_kermany(tmp_path / "data", corrupt=False, debris=False)
    shutil.rmtree(base / "val")
    t = load_dataset(kermany.SPEC, "binary", (), tmp_path / "data")
    assert t.missing == [] and set(t.official_split) == {"train", "test"}


def test_lung_xray_missing_class_folder(tmp_path):
    base = make_lung_xray(tmp_path / "d", per_class=3, debris=False)
    shutil.rmtree(base / "Lung_Opacity")
    d = describe_dataset("lung_xray", str(tmp_path / "d"))
    assert d["counts"]["all"] == {"normal": 3, "lung_opacity": 0, "viral_pneumonia": 3, "total": 6}
    assert d["missing"] == [f"{base / 'Lung Opacity'}/"]
    with pytest.raises(DatasetError, match=r"is incomplete: missing .*Lung Opacity/"):
        load_dataset(lung_xray.SPEC, "multiclass", (), tmp_path / "d")


def test_image_folder_val_only(tmp_path, capsys):
    for cls in ("neg", "pos"):
        for j in range(3):
            write_image(tmp_path / "d" / "val" / cls / f"{cls}{j}.png", (24, 24), "L", seed=j)
    d = describe_dataset("image_folder", str(tmp_path / "d"), "binary")
    assert d["counts"] == {"val": {"neg": 3, "pos": 3, "total": 6}}
    assert d["missing"] == [f"{tmp_path / 'd' / 'train'}/", f"{tmp_path / 'd' / 'test'}/"]
    with pytest.raises(DatasetError, match=r"missing .*/d/train/, .*/d/test/"):
        load_dataset(folder.SPEC, "binary", (), tmp_path / "d")
    assert main(["datasets", "describe", "image_folder", "--root", str(tmp_path / "d"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["val"]["total"] == 6
    assert main(["datasets", "describe", "image_folder", "--root", str(tmp_path / "d")]) == 0
    out = "".join(capsys.readouterr().out.split())
    assert f"partialfolder:missing{tmp_path / 'd' / 'train'}/" in out
