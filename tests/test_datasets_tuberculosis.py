"""shenzhen and montgomery on miniature copies: labels from the _0/_1 suffix, one patient per image,
clinical readings, the CXR_png folder as root, describe counts and bad file names."""

from __future__ import annotations

import pytest

from cxrbench.data.datasets import tuberculosis
from cxrbench.data.datasets.miniature_archives import MONTGOMERY_FILES, SHENZHEN_FILES, make_tb
from cxrbench.data.describe import describe_dataset
from cxrbench.data.loading import load_dataset
from cxrbench.errors import DatasetError
from cxrbench.testing import check_dataset_spec

STEMS = {"shenzhen": SHENZHEN_FILES, "montgomery": MONTGOMERY_FILES}
TOP = {"shenzhen": "ChinaSet_AllFiles", "montgomery": "MontgomerySet"}


def load(name, root, classes=()):
    return load_dataset(tuberculosis.SPEC[name], "binary", classes, root, {})


@pytest.mark.parametrize("name", ["shenzhen", "montgomery"])
def test_labels_patients_and_readings(tmp_path, name):
    root = make_tb(tmp_path / name, name)
    t = load(name, root)
    stems = STEMS[name]
    assert t.class_names == ["normal", "tuberculosis"]
    assert t.labels.tolist() == [int(s[-1]) for s in stems]
    assert t.ids == [f"{s}.png" for s in stems] and t.patient_ids == [s.split("_")[1] for s in stems]
    assert t.extras["sex"] == ["F", "M"] * (len(stems) // 2) + ["F"] * (len(stems) % 2)
    base_age = 30 if name == "shenzhen" else 40
    assert t.extras["age"] == [str(base_age + k) for k in range(len(stems))]
    assert [r != "normal" for r in t.extras["reading"]] == [s.endswith("_1") for s in stems]
    assert load(name, root / TOP[name] / "CXR_png").ids == t.ids  # the image folder itself as root
    assert load(name, root, ("TB", "Normal")).labels.tolist() == [1 - int(s[-1]) for s in stems]


@pytest.mark.parametrize("name", ["shenzhen", "montgomery"])
def test_describe_counts_and_contract(tmp_path, name):
    root = make_tb(tmp_path / name, name, readings=False)
    d = describe_dataset(name, str(root))
    n_tb = sum(s.endswith("_1") for s in STEMS[name])
    assert d["counts"] == {"all": {"normal": len(STEMS[name]) - n_tb, "tuberculosis": n_tb,
                                   "total": len(STEMS[name])}}
    assert d["patients"]["n_patients"] == len(STEMS[name])
    assert d["image_size"]["modes"] == {"RGB": len(STEMS[name]) // 2 + len(STEMS[name]) % 2, "L": len(STEMS[name]) // 2}
    check_dataset_spec(tuberculosis.SPEC[name], root, {})


def test_bad_names_and_missing_folder(tmp_path):
    root = make_tb(tmp_path / "sz", "shenzhen")
    (root / "ChinaSet_AllFiles" / "CXR_png" / "CHNCXR_0004_2.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"do not end in _0 \(normal\) or _1.*CHNCXR_0004_2.png"):
        load("shenzhen", root)
    with pytest.raises(DatasetError, match="ChinaSet_AllFiles/CXR_png"):
        load("shenzhen", tmp_path / "sz" / "ChinaSet_AllFiles" / "ClinicalReadings")
