"""The dataset contract: options schemas, variants, one root resolution, typed table fields,
``cxrbench validate`` naming bad dataset options, and ``cxrbench.testing.check_dataset_spec``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from cxrbench.cli import main
from cxrbench.data.cache import entry_dir
from cxrbench.data.datasets import chestxray14, csv_table, folder, kermany, lung_xray, medmnist_npz
from cxrbench.data.datasets.common import fingerprint
from cxrbench.data.datasets.miniature import (make_chestxray14, make_kermany, make_lung_xray, make_medmnist,
                                              write_image)
from cxrbench.data.datasets.miniature_chexpert import make_chexpert, make_mimic_cxr
from cxrbench.data.loading import load_dataset, make_request, resolve_root
from cxrbench.errors import DatasetError
from cxrbench.plugins import get_registry
from cxrbench.specs import DatasetSpec, DatasetVariant, SampleTable
from cxrbench.testing import check_dataset_spec
from cxrbench.data.datasets import miniature_archives as archives
from tests.conftest import write_suite
from tests.plugin_factory import make_plugin, remove_plugin_path


def _image_folder(base: Path) -> Path:
    for c, cls in enumerate(("normal", "pneumonia")):
        for j in range(3):
            write_image(base / cls / f"p{j}_{cls}.png", (30, 34), "L", seed=10 * c + j)
    return base


def _csv(base: Path) -> Path:
    _image_folder(base / "img")
    rows = ["path,label,patient_id,split"]
    for c, cls in enumerate(("normal", "pneumonia")):
        rows += [f"img/{cls}/p{j}_{cls}.png,{cls},p{j},{'test' if j == 2 else 'train'}" for j in range(3)]
    (base / "labels.csv").write_text("\n".join(rows) + "\n")
    return base / "labels.csv"


# (dataset, task, variant, options, makes the data under tmp and returns the root or None)
BUILTIN_CASES = [
    ("synthetic_cxr", "binary", None, {"n_samples": 24}, lambda tmp: None),
    ("synthetic_cxr", "multiclass", None, {"n_samples": 24, "official_split": True}, lambda tmp: None),
    ("synthetic_cxr", "multilabel", None, {"n_samples": 24}, lambda tmp: None),
    ("kermany", "binary", None, {}, lambda tmp: make_kermany(tmp, corrupt=False)),
    ("kermany", "multiclass", "subtype", {}, lambda tmp: make_kermany(tmp, corrupt=False)),
    ("lung_xray", "multiclass", None, {}, lambda tmp: make_lung_xray(tmp, per_class=3)),
    ("chestxray14", "multilabel", None, {}, lambda tmp: make_chestxray14(tmp, corrupt=False)),
    ("medmnist", "binary", None, {"flag": "pneumoniamnist"},
     lambda tmp: make_medmnist(tmp, counts=(6, 2, 4)).parent),
    ("medmnist", "multilabel", None, {"flag": "chestmnist"},
     lambda tmp: make_medmnist(tmp, "chestmnist", counts=(6, 2, 4), n_labels=14).parent),
    ("image_folder", "binary", None, {}, _image_folder),
    ("csv", "binary", None, {}, _csv),
    ("chexpert", "multilabel", None, {"uncertain": "ignore"}, lambda tmp: make_chexpert(tmp)),
    ("mimic_cxr", "multilabel", None, {"uncertain": "ones"}, lambda tmp: make_mimic_cxr(tmp)),
    ("padchest", "multilabel", None, {}, lambda tmp: archives.make_padchest(tmp)),
    ("rsna_pneumonia", "binary", None, {}, lambda tmp: archives.make_rsna(tmp)),
    ("rsna_pneumonia", "multiclass", "detailed", {}, lambda tmp: archives.make_rsna(tmp)),
    ("rsna_pneumonia", "multilabel", "findings", {}, lambda tmp: archives.make_rsna(tmp)),
    ("vindr_cxr", "multilabel", None, {"label": "any"}, lambda tmp: archives.make_vindr(tmp)),
    ("siim_pneumothorax", "binary", None, {}, lambda tmp: archives.make_siim(tmp)),
    ("siim_pneumothorax", "multilabel", None, {}, lambda tmp: archives.make_siim(tmp)),
    ("shenzhen", "binary", None, {}, lambda tmp: archives.make_tb(tmp, "shenzhen")),
    ("montgomery", "binary", None, {}, lambda tmp: archives.make_tb(tmp, "montgomery")),
]


@pytest.mark.parametrize("name,task,variant,options,make", BUILTIN_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in BUILTIN_CASES])
def test_every_builtin_dataset_passes_the_conformance_check(tmp_path, name, task, variant, options, make):
    root = make(tmp_path / "data")
    table = check_dataset_spec(get_registry().dataset(name), root=root, options=options, task=task, variant=variant)
    assert len(table) > 0


def test_the_cases_cover_every_builtin_dataset():
    builtin = {n for n, s in get_registry().datasets.items() if s.plugin.startswith("cxrbench.")}
    assert builtin == {c[0] for c in BUILTIN_CASES}


def test_builtin_specs_declare_schema_variants_and_folder():
    assert kermany.SPEC.variant_names == ["binary", "subtype"]
    assert kermany.SPEC.pick_variant("binary", None) == "binary"
    assert kermany.SPEC.pick_variant("multiclass", None) == "subtype"
    assert {s.name: s.default_folder for s in (kermany.SPEC, lung_xray.SPEC, chestxray14.SPEC, medmnist_npz.SPEC,
                                                folder.SPEC, csv_table.SPEC)} == {
        "kermany": "chest_xray", "lung_xray": "lung_xray", "chestxray14": "chestxray14", "medmnist": "medmnist",
        "image_folder": "image_folder", "csv": None}
    for spec in get_registry().datasets.values():
        assert spec.options_schema.model_config.get("extra") == "forbid", spec.name


# ----------------------------------------------------------------------------- root resolution

def test_root_is_resolved_once_by_the_core(tmp_path, monkeypatch):
    (tmp_path / "data" / "chest_xray").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MYDATA", str(tmp_path / "data"))
    monkeypatch.delenv("CXRBENCH_DATA", raising=False)
    spec = kermany.SPEC
    expected = (tmp_path / "data" / "chest_xray").resolve()
    assert resolve_root(spec, "~/data/chest_xray") == expected
    assert resolve_root(spec, "$MYDATA/chest_xray") == expected
    with pytest.raises(DatasetError, match=r"dataset.root is not set and \$CXRBENCH_DATA is not set"):
        resolve_root(spec, None)
    monkeypatch.setenv("CXRBENCH_DATA", "$MYDATA")
    assert resolve_root(spec, None) == expected
    with pytest.raises(DatasetError, match=r"(?s)nowhere does not exist.*data.mendeley.com"):
        resolve_root(spec, tmp_path / "nowhere")
    assert resolve_root(csv_table.SPEC, None) is None  # no default folder: the loader decides
    # medmnist may create its root (download) and falls back to ~/.medmnist
    monkeypatch.delenv("CXRBENCH_DATA")
    assert resolve_root(medmnist_npz.SPEC, None) == tmp_path / ".medmnist"
    req = make_request(kermany.SPEC, "multiclass", root="$MYDATA")
    assert req.root == (tmp_path / "data").resolve() and req.variant == "subtype"


def test_loaders_get_a_validated_options_instance(tmp_path):
    req = make_request(medmnist_npz.SPEC, "binary", root=tmp_path, options={"flag": "PneumoniaMNIST", "size": 64})
    assert isinstance(req.options, medmnist_npz.MedMNISTOptions)
    assert (req.options.flag, req.options.size, req.options.download) == ("pneumoniamnist", 64, False)
    with pytest.raises(DatasetError, match=r"dataset.options.size: Input should be 28, 64, 128 or 224 "
                                           r"\(dataset 'medmnist'\)"):
        make_request(medmnist_npz.SPEC, "binary", root=tmp_path, options={"size": 32})
    with pytest.raises(DatasetError, match=r"dataset.variant: dataset 'medmnist' has no variants"):
        make_request(medmnist_npz.SPEC, "binary", root=tmp_path, variant="big")


# ----------------------------------------------------------------------------- typed table fields

def test_table_facts_are_typed_fields_and_cache_slot_is_unchanged(tmp_path):
    root = make_chestxray14(tmp_path / "nih", corrupt=False, missing=1)
    t = load_dataset(chestxray14.SPEC, "multilabel", root=root, options={"allow_missing": True})
    csv = root.resolve() / "Data_Entry_2017_v2020.csv"
    assert t.root == str(root.resolve()) and t.label_file == str(csv) and t.archive is None
    assert [s[0] for s in t.skipped] == ["00000019_000.png"] and set(t.extras) == {"source", "view"}  # per-row only
    # the fingerprint still covers the images, then the label CSV, then the split lists (same key as before)
    files = t.load_image.paths
    lists = [root.resolve() / "train_val_list.txt", root.resolve() / "test_list.txt"]
    assert t.fingerprint == fingerprint("chestxray14", root.resolve(), [*files, csv, *lists])
    # the cache slot hashes (root, csv, npz) exactly as the extras-based version did
    slot = hashlib.sha256(json.dumps({"dataset": "chestxray14", "where": [str(root.resolve()), str(csv), None],
                                      "size": 32, "channels": 1}, sort_keys=True).encode()).hexdigest()[:12]
    assert entry_dir(tmp_path, t, 32, 1, "chestxray14").name.startswith(f"chestxray14-32px-1ch-{slot}-")

    npz = make_medmnist(tmp_path / "m", counts=(4, 2, 2))
    m = load_dataset(medmnist_npz.SPEC, "binary", root=npz.parent)
    assert (m.archive, m.image_shape, m.extras) == (str(npz.resolve()), (28, 28), {})
    assert m.notes and "no patient ids" in m.notes[0]


def test_table_level_values_in_extras_are_refused():
    def load(request):
        return SampleTable(ids=["a", "b"], labels=np.array([0, 1]), class_names=["x", "y"],
                           load_image=lambda i, s: np.zeros((s, s), np.uint8), extras={"csv": "labels.csv"})

    spec = DatasetSpec(name="leaky", load=load, description="d", tasks=("binary",))
    with pytest.raises(DatasetError, match=r"extras\['csv'\] is a str, not a list"):
        load_dataset(spec, "binary")


# ----------------------------------------------------------------------------- check_dataset_spec catches faults

class ToyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 6


def _toy_load(request):
    n = request.options.n
    return SampleTable(ids=[f"img{i}" for i in range(n)], labels=np.arange(n) % 2, class_names=["neg", "pos"],
                       load_image=lambda i, s: np.full((s, s), i, np.uint8), patient_ids=[f"p{i}" for i in range(n)])


TOY = DatasetSpec(name="toy", load=_toy_load, description="toy", tasks=("binary",), options_schema=ToyOptions)


def _broken(**table_changes):
    def load(request):
        return replace(_toy_load(request), **table_changes)

    return replace(TOY, load=load)


class Loose(BaseModel):
    n: int = 6


@pytest.mark.parametrize("spec,needle", [
    (replace(TOY, options_schema=Loose), "accepts unknown keys"),
    (replace(TOY, load=lambda r: {}["missing"]), "load raised KeyError, not DatasetError"),
    (_broken(ids=["a"] * 6), "ids must be unique"),
    (_broken(labels=np.arange(6) % 3), "labels must be class indices 0..1"),
    (_broken(labels=(np.arange(6) % 2).astype(float)), "integer numpy array"),
    (_broken(patient_ids=["p"] * 5), "patient_ids must be 6"),
    (_broken(official_split=["train"] * 5 + ["holdout"]), "train / val / test"),
    (_broken(extras={"view": ["PA"] * 5}), "extras['view'] has 5 entries for 6 rows"),
    (_broken(load_image=lambda i, s: np.zeros((s, s), np.float32)), "must return uint8"),
    (_broken(load_image=lambda i, s: np.zeros((s, s, 4), np.uint8)), "must return uint8"),
    (replace(TOY, variants=(DatasetVariant("big", ("multiclass",)),)), "serves tasks"),
    (replace(TOY, default_folder="a/b"), "default_folder must be one folder name"),
])
def test_check_dataset_spec_names_each_fault(spec, needle):
    with pytest.raises(AssertionError) as err:
        check_dataset_spec(spec)
    assert needle in str(err.value)


def test_check_dataset_spec_passes_a_good_spec_and_checks_requested_classes():
    assert len(check_dataset_spec(TOY, options={"n": 8})) == 8
    with pytest.raises(AssertionError, match=r"must be the requested \['a', 'b'\]"):
        check_dataset_spec(TOY, classes=["a", "b"])


# ----------------------------------------------------------------------------- a plugin written outside the core

PLUGIN = '''
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cxrbench.errors import DatasetError
from cxrbench.hookspecs import hookimpl
from cxrbench.specs import DatasetSpec, DatasetVariant, SampleTable


class BlobOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_samples: int = Field(40, ge=4)
    contrast: float = Field(0.5, ge=0.0, le=1.0)


def load(request):
    assert isinstance(request.options, BlobOptions) and isinstance(request.root, Path) and request.root.is_absolute()
    seeds = request.root / "seed.txt"
    if not seeds.is_file():
        raise DatasetError(f"blobs: {seeds} not found")
    seed, n = int(seeds.read_text()), request.options.n_samples
    labels = np.arange(n) % 2
    amp = 40 + int(150 * request.options.contrast)

    def image(i, size):
        rng = np.random.default_rng([seed, i])
        img = rng.integers(0, 60, (size, size)).astype(np.uint8)
        if labels[i]:
            img[size // 4: size // 2, size // 4: size // 2] += amp
        return img

    return SampleTable(ids=[f"blob{i:03d}" for i in range(n)], labels=labels, class_names=["normal", "pneumonia"],
                       load_image=image, patient_ids=[f"p{i // 2}" for i in range(n)], root=str(request.root),
                       notes=[f"variant {request.variant}"], extras={"source": ["a", "b"] * (n // 2)})


@hookimpl
def register_datasets():
    return [DatasetSpec(name="blobs_test", load=load, description="bright squares on noise", tasks=("binary",),
                        options_schema=BlobOptions, variants=(DatasetVariant("squares", ("binary",)),),
                        default_folder="blobs")]
'''


def blobs_suite(path: Path, dataset: dict, **changes) -> Path:
    """A tiny suite on ``dataset`` (replaced, not merged into the synthetic default)."""
    write_suite(path, **changes)
    data = yaml.safe_load(path.read_text())
    data["dataset"] = dataset
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def blobs_plugin(tmp_path, fresh_registry, monkeypatch):
    make_plugin(tmp_path / "site", "cxrb_blobs_plugin", PLUGIN)
    (tmp_path / "data" / "blobs").mkdir(parents=True)
    (tmp_path / "data" / "blobs" / "seed.txt").write_text("7")
    monkeypatch.setenv("CXRBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CXRBENCH_CACHE", str(tmp_path / "cache"))
    yield
    remove_plugin_path(tmp_path / "site", "cxrb_blobs_plugin")


def test_plugin_dataset_bad_option_fails_validate_naming_the_field(blobs_plugin, tmp_path, capsys):
    blobs = {"name": "blobs_test", "options": {"n_samples": 20}}
    good = blobs_suite(tmp_path / "good.yaml", blobs)
    assert main(["validate", str(good)]) == 0
    bad = blobs_suite(tmp_path / "bad.yaml", {"name": "blobs_test", "options": {"n_samples": "many"}})
    capsys.readouterr()
    assert main(["validate", str(bad)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "dataset.options.n_samples: Input should be a valid integer" in err and "(dataset 'blobs_test')" in err
    typo = blobs_suite(tmp_path / "typo.yaml", {"name": "blobs_test", "options": {"contrst": 0.2},
                                                "variant": "circles"})
    assert main(["validate", str(typo)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "dataset.options.contrst: Extra inputs are not permitted" in err and "known options: n_samples, contrast" in err
    assert "dataset.variant: unknown variant 'circles'" in err
    ext = blobs_suite(tmp_path / "ext.yaml", blobs, external_test=[{
        "name": "other", "dataset": {"name": "blobs_test", "options": {"contrast": 2}},
        "label_map": {"normal": "normal", "pneumonia": "pneumonia"}}])
    assert main(["validate", str(ext)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "external_test[0].dataset.options.contrast: Input should be less than or equal to 1" in err
    assert "(dataset 'blobs_test')" in err


def test_plugin_dataset_with_good_options_loads_through_a_suite(blobs_plugin, tmp_path):
    suite = blobs_suite(tmp_path / "run.yaml", {"name": "blobs_test", "options": {"n_samples": 40, "contrast": 1.0}},
                        metrics={"primary": "accuracy", "report": ["accuracy"], "bootstrap": 0})
    assert main(["run", str(suite), "--quiet", "--results", str(tmp_path / "res")]) == 0
    run_dir = next((tmp_path / "res" / "tiny").iterdir())
    records = [json.loads(p.read_text()) for p in (run_dir / "records").glob("*.json")]
    assert {r["model"]: r["status"] for r in records}["lenet"] == "ok"
    assert all(r["status"] == "ok" for r in records)
    splits = pd.read_csv(run_dir / "splits.csv")
    assert sorted(set(splits.sample_id)) == [f"blob{i:03d}" for i in range(40)]
    table = check_dataset_spec(get_registry().dataset("blobs_test"), options={"n_samples": 8})
    assert table.root == str((tmp_path / "data" / "blobs").resolve()) and table.notes == ["variant squares"]


def test_validate_names_a_builtin_dataset_option_before_any_work(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml")
    assert main(["validate", str(suite), "--set", "dataset.options.n_samples=abc"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "dataset.options.n_samples: Input should be a valid integer" in err and "(dataset 'synthetic_cxr')" in err
    assert main(["run", str(suite), "--quiet", "--results", str(tmp_path / "res"),
                 "--set", "dataset.variant=big"]) == 2
    assert "dataset.variant: dataset 'synthetic_cxr' has no variants (got 'big')" in " ".join(
        capsys.readouterr().err.split())
    assert not (tmp_path / "res").exists()
