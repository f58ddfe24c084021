"""`cxrbench datasets describe`: counts, patients, image sizes from headers, official-split leakage."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
from rich.console import Console

from cxrbench.data.datasets.miniature import SIZES, make_kermany, make_lung_xray, make_medmnist, tiny_suite
from cxrbench.cli.datasets import add_describe_parser
from cxrbench.data.describe import describe_command, describe_dataset
from cxrbench.data.prepare import prepare_data
from cxrbench.errors import DatasetError
from cxrbench.plugins import get_registry
from cxrbench.suite.loader import load_suite


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))


def test_kermany_description(tmp_path):
    make_kermany(tmp_path / "d")
    d = describe_dataset("kermany", str(tmp_path / "d"))
    assert d["task"] == "binary" and d["n_images"] == 31 and d["official_split"]
    assert d["counts"] == {"train": {"normal": 8, "pneumonia": 10, "total": 18},
                           "val": {"normal": 2, "pneumonia": 2, "total": 4},
                           "test": {"normal": 4, "pneumonia": 5, "total": 9}}
    p = d["patients"]
    assert p["n_patients"] == 26 and p["per_split"] == {"train": 13, "val": 4, "test": 9}
    assert p["images_per_patient"] == {"min": 1, "median": 1.0, "mean": round(31 / 26, 2), "max": 3}
    assert p["images_per_patient_histogram"] == {"1": 22, "2": 3, "3-5": 1, "6+": 0}
    assert d["leakage"]["patients_in_several_splits"] == 0
    size = d["image_size"]
    # header sizes of the 30 readable files cycle through SIZES; the truncated one is 64x64
    assert size["width"]["min"] == min(w for w, _ in SIZES) and size["width"]["max"] == max(w for w, _ in SIZES)
    assert size["height"]["max"] == 64 and size["unreadable_headers"] == 0
    assert sum(size["modes"].values()) == 31 and set(size["modes"]) == {"L", "RGB", "CMYK", "P"}
    sub = describe_dataset("kermany", str(tmp_path / "d"), task="multiclass")
    assert sub["counts"]["test"] == {"normal": 4, "bacterial": 3, "viral": 2, "total": 9}


def test_leakage_between_official_splits_is_reported_not_fatal(tmp_path):
    base = make_kermany(tmp_path / "d")
    shutil.copy(base / "train" / "PNEUMONIA" / "person1946_bacteria_4874.jpeg",
                base / "test" / "PNEUMONIA" / "person1946_bacteria_4899.jpeg")
    d = describe_dataset("kermany", str(tmp_path / "d"))
    assert d["leakage"]["patients_in_several_splits"] == 1 and d["leakage"]["examples"] == ["1946"]
    assert d["leakage"]["pairs"] == {"train&val": 0, "train&test": 1, "val&test": 0}
    suite = load_suite(tiny_suite(tmp_path / "s.yaml", {"name": "kermany", "root": str(tmp_path / "d")},
                                  {"type": "binary", "classes": ["normal", "pneumonia"]}))
    data = prepare_data(suite, get_registry())
    assert data.summary()["official_split_shared_patients"] == {"count": 1, "first": ["1946"]}


def test_unreadable_headers_no_patients_and_arrays(tmp_path):
    base = make_lung_xray(tmp_path / "l", per_class=2)
    (base / "Normal" / "broken.jpg").write_bytes(b"this is not an image")
    d = describe_dataset("lung_xray", str(tmp_path / "l"))
    assert d["patients"] is None and d["leakage"] is None and d["counts"]["all"]["total"] == 7
    assert d["image_size"]["unreadable_headers"] == 1 and "broken.jpg" in d["image_size"]["unreadable_examples"][0]
    assert any("no patient ids" in n for n in d["notes"])
    make_medmnist(tmp_path / "m", counts=(4, 2, 2))
    d = describe_dataset("medmnist", str(tmp_path / "m"), options={"flag": "pneumoniamnist"})
    assert d["image_size"] == {"source": "array shape", "shape": [28, 28]} and d["counts"]["val"]["total"] == 2
    with pytest.raises(DatasetError, match="supports tasks"):
        describe_dataset("lung_xray", str(tmp_path / "l"), task="binary")


def test_cli_wiring_json_and_table(tmp_path, capsys):
    make_kermany(tmp_path / "d")
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    datasets = sub.add_parser("datasets")
    datasets.add_argument("--json", action="store_true")
    datasets.set_defaults(func=lambda args: "list")
    add_describe_parser(datasets)
    assert parser.parse_args(["datasets"]).func(None) == "list"  # plain `datasets` still lists
    args = parser.parse_args(["datasets", "describe", "kermany", "--root", str(tmp_path / "d"), "--task",
                              "multiclass", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == ["normal", "bacterial", "viral"] and out["counts"]["train"]["total"] == 18
    console = Console(record=True, width=160)
    assert describe_command("kermany", str(tmp_path / "d"), console=console) == 0
    text = console.export_text()
    assert "images per split and class" in text and "official split leakage: 0 patient(s)" in text
    args = parser.parse_args(["datasets", "describe", "medmnist", "--root", str(tmp_path), "--option", "size=64"])
    with pytest.raises(DatasetError, match="pneumoniamnist_64.npz not found"):
        args.func(args)
