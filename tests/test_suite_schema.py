"""Suite loading: schema errors name file and field; extends; overrides; duplicate keys; no code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cxrbench.errors import SuiteError
from cxrbench.plugins import get_registry
from cxrbench.suite.checks import check_suite
from cxrbench.suite.loader import load_suite, protocol_hash, resolved_dict, sha256_of


def test_valid_suite_resolves_defaults(suite_file):
    suite = load_suite(suite_file())
    assert suite.task.positive_class == "pneumonia"
    assert suite.seeds == [0]
    assert suite.train.optimizer.name == "adam"
    assert resolved_dict(suite)["split"]["group_by"] == "auto"


@pytest.mark.parametrize("change, field, expected", [
    ({"train": {"epochs": -1}}, "train.epochs", "greater than or equal to 0"),
    ({"train": {"optimizer": {"name": "rmsprop"}}}, "train.optimizer.name", "'sgd', 'adam' or 'adamw'"),
    ({"task": {"type": "binary", "classes": ["a", "b", "c"]}}, "task", "exactly 2 classes"),
    ({"split": {"ratios": {"train": 0.5, "val": 0.1, "test": 0.1}}}, "split.ratios", "must be 1.0"),
    ({"input": {"channels": 2}}, "input.channels", "1 or 3"),
    ({"augment": [{"name": "hflip", "p": 3}]}, "augment[0].p", "less than or equal to 1"),
    ({"augment": [{"name": "warp"}]}, "augment[0]", "does not match any of the expected tags"),
    ({"bogus_field": 1}, "bogus_field", "Extra inputs are not permitted"),
    ({"models": [{"name": "lenet", "freeze": "half"}]}, "models[0].freeze", "none, backbone or stages:N"),
])
def test_schema_errors_name_file_and_field(suite_file, change, field, expected):
    path = suite_file(**change)
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    msg = str(err.value)
    assert str(path) in msg
    assert re.search(rf"^  {re.escape(field)} \(line \d+\): ", msg, re.M), msg
    assert expected in msg


def test_schema_error_gives_the_yaml_line(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text("name: t\ntask: {type: binary, classes: [a, b]}\ndataset: {name: synthetic_cxr}\n"
                    "models: [lenet]\ntrain:\n  batch_size: 4\n  epochs: -1\n")
    with pytest.raises(SuiteError, match=r"train\.epochs \(line 7\): Input should be greater than or equal to 0"):
        load_suite(path)


def test_registry_checks_name_field(suite_file):
    path = suite_file(models=["lenet", {"name": "no_such_net"}], metrics={"primary": "acuracy"})
    suite = load_suite(path)
    with pytest.raises(SuiteError) as err:
        check_suite(suite, get_registry(), str(path))
    msg = str(err.value)
    assert "models[1].name: unknown model 'no_such_net'" in msg
    assert "metrics.primary: unknown metric 'acuracy'; did you mean accuracy" in msg


def test_model_params_validated_by_model_schema(suite_file):
    path = suite_file(models=[{"name": "lenet", "params": {"no_such_param": 3}}])
    with pytest.raises(SuiteError, match=r"models\[0\]\.params\.no_such_param"):
        check_suite(load_suite(path), get_registry(), str(path))


def test_duplicate_keys_rejected(tmp_path: Path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\ntask: {type: binary, classes: [a, b]}\nname: b\n")
    with pytest.raises(SuiteError, match="duplicate key 'name'"):
        load_suite(path)


def test_no_code_execution_from_yaml(tmp_path: Path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SuiteError, match="invalid YAML"):
        load_suite(path)


def test_extends_deep_merges_dicts_and_replaces_lists(tmp_path: Path, suite_file):
    base = suite_file(models=["lenet", "resnet18"], train={"epochs": 5, "batch_size": 8})
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {base.name}\nname: child\nmodels: [mobilenet_v2]\ntrain: {{epochs: 2}}\n")
    suite = load_suite(child)
    assert suite.name == "child"
    assert [m.name for m in suite.models] == ["mobilenet_v2"]
    assert suite.train.epochs == 2 and suite.train.batch_size == 8


def test_extends_replaces_the_reference_block(tmp_path: Path, suite_file):
    base = suite_file(reference={"source": "paper A", "models": {"lenet": {"accuracy": 0.9}}}, models=["lenet"])
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {base.name}\nreference: {{source: paper B, models: {{}}}}\n")
    suite = load_suite(child)
    assert suite.reference.source == "paper B" and suite.reference.models == {}


def test_extends_only_one_level(tmp_path: Path, suite_file):
    base = suite_file()
    mid = tmp_path / "mid.yaml"
    mid.write_text(f"extends: {base.name}\n")
    top = tmp_path / "top.yaml"
    top.write_text("extends: mid.yaml\n")
    with pytest.raises(SuiteError, match="only one level"):
        load_suite(top)


def test_overrides_and_model_filter(suite_file):
    path = suite_file(models=["lenet", "resnet18", {"name": "resnet18", "label": "r18b"}])
    suite = load_suite(path, ["train.epochs=4", "train.optimizer.lr=0.5", "models.0.freeze=backbone"],
                       models=["r18b", "lenet"])
    assert suite.train.epochs == 4 and suite.train.optimizer.lr == 0.5
    assert [m.key for m in suite.models] == ["r18b", "lenet"]
    assert suite.models[1].freeze == "backbone"
    with pytest.raises(SuiteError, match="not in the suite"):
        load_suite(path, models=["vgg16"])
    with pytest.raises(SuiteError, match="expected KEY=VALUE"):
        load_suite(path, ["train.epochs"])


def test_per_model_train_override_merges(suite_file):
    path = suite_file(models=[{"name": "lenet", "train": {"optimizer": {"lr": 0.1}}}])
    suite = load_suite(path)
    merged = suite.model_train(suite.models[0])
    assert merged.optimizer.lr == 0.1 and merged.optimizer.name == "adam" and merged.epochs == 1


def test_protocol_hash_ignores_models_and_seeds(suite_file):
    a = load_suite(suite_file(models=["lenet"], seeds=[0]))
    b = load_suite(suite_file(models=["resnet18"], seeds=[1, 2]))
    c = load_suite(suite_file(train={"epochs": 2}))
    assert protocol_hash(a) == protocol_hash(b) != protocol_hash(c)
    assert sha256_of(resolved_dict(a)) != sha256_of(resolved_dict(b))


def test_epochs_zero_needs_weights_or_a_mapped_pretrained_head(suite_file, tmp_path):
    """Evaluating without training is refused for a model that would be scored with a fresh head."""
    from cxrbench.plugins import get_registry
    from cxrbench.suite.checks import check_suite

    path = suite_file(train={"epochs": 0})
    with pytest.raises(SuiteError, match=r"models\[0\]\.train\.epochs: 0 evaluates without training.*'lenet'"):
        check_suite(load_suite(path), get_registry(), str(path))
    ok = suite_file(train={"epochs": 0}, models=[{"name": "lenet", "weights": str(tmp_path / "w.pth")}])
    check_suite(load_suite(ok), get_registry(), str(ok))  # a trained checkpoint: evaluation only is fine
