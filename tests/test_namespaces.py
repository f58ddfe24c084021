"""Model namespaces (timm:, torchvision:, hf-hub:), resolved lazily by the registry; ``--models +``;
reference blocks that never block a run; ``input.normalization: model``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from cxrbench.errors import SuiteError, UnknownNameError, WeightsError
from cxrbench.models.cost import count_params
from cxrbench.models.factory import build_model
from cxrbench.plugins import Registry, get_registry, load_plugin_manager
from cxrbench.suite.checks import check_suite
from cxrbench.suite.loader import load_suite

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *(str(p) for p in sorted((ROOT / "plugins").iterdir()) if p.is_dir())]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300, check=True)


def test_cxrbench_models_with_every_plugin_imports_no_torch_and_resolves_nothing():
    proc = _python("""
        import contextlib, io, json, sys
        from cxrbench.cli import main
        from cxrbench.plugins import get_registry
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["models", "--json"]) == 0
            assert main(["models", "--namespace", "timm", "--filter", "convnext_t*", "--json"]) == 0
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "timm", "pandas"))
        reg = get_registry()
        print(json.dumps([heavy, len(reg._resolved), sorted(p.name for p in reg.plugins if not p.error),
                          sorted(reg.model_namespaces)]))
    """)
    heavy, resolved, loaded, namespaces = json.loads(proc.stdout.strip().splitlines()[-1])
    assert heavy == [] and resolved == 0
    assert {"lrnet", "mdconv", "mobilenet_lung", "resnet_transfer", "mlflow"} <= set(loaded)  # torch-free entry points
    assert namespaces == ["hf-hub", "timm", "torchvision"]


def test_filter_lists_a_namespace_from_the_index_matching_the_library(capsys):
    import timm

    from cxrbench.cli import main

    assert main(["models", "--namespace", "timm", "--filter", "convnext_t*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["timm:" + n for n in timm.list_models("convnext_t*")]
    assert main(["models", "--namespace", "timm", "--filter", "vit_tiny*", "--pretrained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = sorted({n.split(".")[0] for n in timm.list_pretrained("vit_tiny*")})
    assert sorted(r["name"].removeprefix("timm:") for r in rows) == expected
    assert all(r["fixed_input_size"] for r in rows)
    assert main(["models", "--filter", "resnet*", "--pretrained", "--json"]) == 0
    names = {r["name"] for r in json.loads(capsys.readouterr().out)}
    assert names == {n for n, s in get_registry().models.items() if n.startswith("resnet") and s.supports_pretrained}


def test_torchvision_index_is_every_classification_model():
    import torchvision.models as tvm

    ns = get_registry().model_namespaces["torchvision"]
    assert [r["name"] for r in ns.names()] == tvm.list_models(module=tvm)
    assert len(ns.names()) == 80


def test_timm_spec_comes_from_pretrained_cfg_and_feature_info():
    import timm

    reg = Registry(*load_plugin_manager())
    spec = reg.model("timm:resnet18")
    ref = timm.create_model("resnet18", num_classes=2)
    assert spec.name == "timm:resnet18" and spec.plugin == "cxrbench.builtins.models"
    assert (spec.classifier, spec.first_conv) == ("fc", "conv1")
    assert spec.stages == tuple(f["module"] for f in ref.feature_info) == ("act1", "layer1", "layer2", "layer3",
                                                                           "layer4")
    assert spec.cam_layer == "layer4" and spec.input.mean == (0.485, 0.456, 0.406) and spec.supports_pretrained
    assert not spec.input.required  # preferred statistics: applied only with input.normalization: model
    assert reg.model("timm:resnet18") is spec  # resolved once
    vit = reg.model("timm:vit_tiny_patch16_224")
    assert (vit.classifier, vit.first_conv, vit.fixed_input_size, vit.cam_layer) == ("head", "patch_embed.proj",
                                                                                       None, None)
    assert vit.input.mean == (0.5, 0.5, 0.5) and len(vit.stages) == 12
    with pytest.raises(UnknownNameError, match="did you mean timm:convnext_tiny"):
        reg.model("timm:convnxt_tiny")


def test_torchvision_spec_follows_torchvision_conventions():
    reg = get_registry()
    rn = reg.model("torchvision:resnet18")
    builtin = reg.model("resnet18")
    assert (rn.classifier, rn.first_conv, rn.stages, rn.cam_layer) == (
        builtin.classifier, builtin.first_conv, builtin.stages, builtin.cam_layer)
    mb = reg.model("torchvision:mobilenet_v3_small")
    assert (mb.classifier, mb.first_conv, mb.cam_layer) == ("classifier.3", "features.0.0", "features.12")
    assert mb.stages == tuple(f"features.{i}" for i in range(13))
    vit = reg.model("torchvision:vit_b_16")
    assert vit.fixed_input_size == 224 and vit.classifier == "heads.head" and vit.cam_layer is None


def test_a_fixed_size_model_is_refused_before_any_work(suite_file):
    suite = load_suite(suite_file(models=["torchvision:vit_b_16", "timm:vit_tiny_patch16_224"]))
    with pytest.raises(SuiteError) as err:
        check_suite(suite, get_registry(), "s.yaml")
    msg = str(err.value)
    assert "models[0].name: model 'torchvision:vit_b_16' takes only 224 px input" in msg
    assert "models[1]" not in msg  # timm ViTs are built with img_size = the suite's size
    model = build_model(get_registry().model("timm:vit_tiny_patch16_224"), num_classes=2, in_chans=1, image_size=32)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 2)


def test_pretrained_without_weights_is_the_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    reg = get_registry()
    for name in ("timm:test_resnet.r160_in1k", "torchvision:squeezenet1_1"):
        with pytest.raises(WeightsError, match="could not be fetched"):
            build_model(reg.model(name), num_classes=2, pretrained=True)
    with pytest.raises(UnknownNameError, match="not in the local Hugging Face cache"):
        reg.model("hf-hub:someone/net")


def _fake_hub_repo(cache: Path, repo: str, arch: str, state: dict) -> None:
    from safetensors.torch import save_file

    folder = cache / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc123")
    (snap / "config.json").write_text(json.dumps({"architecture": arch, "num_classes": 5, "pretrained_cfg": {
        "input_size": [3, 64, 64], "mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6], "classifier": "fc",
        "first_conv": "conv1.0"}}))
    save_file({k: v.contiguous() for k, v in state.items()}, str(snap / "model.safetensors"))


def test_hf_hub_model_from_the_local_cache(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf
    import timm

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    torch.manual_seed(0)
    src = timm.create_model("test_resnet", num_classes=5)
    _fake_hub_repo(tmp_path, "lab/tiny", "test_resnet", src.state_dict())
    spec = Registry(*load_plugin_manager()).model("hf-hub:lab/tiny")
    assert (spec.classifier, spec.first_conv, spec.default_input_size, spec.input.mean) == ("fc", "conv1.0", 64,
                                                                                      (0.1, 0.2, 0.3))
    model = build_model(spec, num_classes=2, in_chans=1, pretrained=True)
    got = model.state_dict()
    assert torch.equal(got["layer1.0.conv1.weight"], src.state_dict()["layer1.0.conv1.weight"])
    assert torch.allclose(got["conv1.0.weight"], src.state_dict()["conv1.0.weight"].sum(1, keepdim=True))
    assert got["fc.weight"].shape == (2, src.num_features)


def test_freeze_stages_and_local_weights_work_for_namespaced_models(tmp_path):
    import timm

    reg = get_registry()
    spec = reg.model("timm:test_resnet")
    assert spec.stages == ("act1", "layer1", "layer2", "layer3", "layer4")  # timm feature_info
    model = build_model(spec, num_classes=3, freeze="stages:2")  # everything before layer2 frozen
    ref = timm.create_model("test_resnet", num_classes=3)
    expected = sum(p.numel() for n, p in ref.named_parameters() if n.startswith(("layer2.", "layer3.", "layer4.", "fc.")))
    assert count_params(model)[1] == expected < count_params(model)[0]
    path = tmp_path / "w.pth"
    torch.save(ref.state_dict(), path)
    grey = build_model(spec, num_classes=2, in_chans=1, weights=str(path))
    stem = spec.first_conv + ".weight"
    assert torch.allclose(grey.state_dict()[stem], ref.state_dict()[stem].sum(1, keepdim=True))
    assert torch.equal(grey.state_dict()["layer2.0.conv1.weight"], ref.state_dict()["layer2.0.conv1.weight"])


def test_gradcam_on_a_namespaced_model():
    pytest.importorskip("pytorch_grad_cam")
    from cxrbench.models.gradcam import grad_cam

    spec = get_registry().model("torchvision:squeezenet1_1")
    model = build_model(spec, num_classes=2, in_chans=1).eval()
    maps, shape = grad_cam(model, spec.cam_layer, torch.rand(2, 1, 64, 64))
    assert maps.shape == (2, 64, 64) and shape[0] == 512 and np.isfinite(maps).all()


def test_plus_adds_bare_names_filter_and_reference_never_blocks(tmp_path, suite_file):
    ref = {"source": "paper", "models": {"lenet": {"accuracy": 0.9}, "absent": {"accuracy": 0.5}}}
    path = suite_file(models=["lenet", {"name": "resnet18", "label": "r18"}], reference=ref)
    both = load_suite(path, models=["+timm:test_vit", "+lrnet"])
    assert [m.key for m in both.models] == ["lenet", "r18", "timm:test_vit", "lrnet"]
    assert both.models[2].model_dump(exclude_defaults=True) == {"name": "timm:test_vit"}
    mixed = load_suite(path, models=["r18", "+torchvision:squeezenet1_1"])
    assert [m.key for m in mixed.models] == ["r18", "torchvision:squeezenet1_1"]
    with pytest.raises(SuiteError, match=r"\+lenet: the suite already has a model labelled 'lenet'"):
        load_suite(path, models=["+lenet"])
    with pytest.raises(SuiteError, match="prefix a name with \\+ to add"):
        load_suite(path, models=["nope"])
    for suite in (both, mixed, load_suite(path, ["models=[lrnet, lenet]"])):
        check_suite(suite, get_registry(), str(path))  # the reference's 'absent' blocks nothing


def test_namespaced_models_run_end_to_end_next_to_a_builtin(suite_file, tmp_path):
    """3-4 small models per namespace, random init, offline, in one suite with a built-in and a plugin."""
    from cxrbench.engine.runner import run_suite

    names = ["timm:test_resnet", "timm:test_vit", "timm:test_convnext",
             "torchvision:squeezenet1_1", "torchvision:mobilenet_v3_small", "torchvision:shufflenet_v2_x0_5"]
    path = suite_file(models=["lenet"], input={"image_size": 32, "channels": 1, "normalization": "model"},
                      dataset={"options": {"n_samples": 48}},
                      train={"epochs": 1, "batch_size": 8, "max_steps_per_epoch": 2, "eval_batch_size": 64},
                      metrics={"bootstrap": 0}, reference={"source": "p", "models": {"lenet": {"accuracy": 0.9}}})
    outcome = run_suite(path, models=["lenet", "+lrnet", *("+" + n for n in names)], results_root=tmp_path / "res",
                        device="cpu")
    assert {r.model: r.status for r in outcome.records} == {m: "ok" for m in ["lenet", "lrnet", *names]}
    reg = get_registry()
    for rec in outcome.records:
        spec = reg.model(rec.model_name)
        torch.manual_seed(0)
        fresh = build_model(spec, num_classes=2, in_chans=1, image_size=32)
        assert rec.cost["params"] == sum(p.numel() for p in fresh.parameters()), rec.model
        assert rec.cost["macs"] > 0, rec.model
        norm = rec.input
        expected = np.mean(spec.input.mean) if spec.input else np.mean((0.485, 0.456, 0.406))
        assert norm["mean"] == pytest.approx([expected]) and len(norm["std"]) == 1, rec.model
        pred = pd.read_csv(outcome.store.dir / rec.predictions_path)
        assert len(pred) == rec.n_test and {"prob_normal", "prob_pneumonia"} <= set(pred.columns)
        y, yhat = pred.y_true.to_numpy(), pred.y_pred.to_numpy()
        assert rec.metrics["accuracy"] == pytest.approx(accuracy_score(y, yhat))
        assert rec.metrics["f1"] == pytest.approx(f1_score(y, yhat, zero_division=0))
        assert rec.metrics["roc_auc"] == pytest.approx(roc_auc_score(y, pred.prob_pneumonia))
    assert reg.model("timm:test_vit").input.mean == (0.5, 0.5, 0.5)
    from cxrbench.leaderboard.table import build_boards, load_runs

    (board,) = build_boards(load_runs(tmp_path / "res"))
    assert list(board.comparison().model) == ["lenet"]  # only lenet has a reference figure


class _ToyNamespace:
    """A third-party namespace through the ``register_model_namespaces`` hook."""

    @staticmethod
    def _resolve(name: str):
        from dataclasses import replace

        if name not in ("small", "big"):
            raise UnknownNameError(f"unknown toy model {name!r}")
        return replace(get_registry().model("lenet"), name=f"toy:{name}", family="toy")

    from cxrbench import hookimpl as _hookimpl

    @staticmethod
    @_hookimpl
    def register_model_namespaces():
        from cxrbench.specs import ModelNamespaceSpec

        return [ModelNamespaceSpec("toy", _ToyNamespace._resolve, lambda: [{"name": "small", "pretrained": []},
                                                                           {"name": "big", "pretrained": []}])]


def test_a_plugin_registers_a_namespace_through_the_hook():
    reg = Registry(*load_plugin_manager(extra_plugins=(_ToyNamespace,)))
    assert set(reg.model_namespaces) >= {"timm", "torchvision", "hf-hub", "toy"}
    assert reg.model_namespaces["toy"].plugin == "_ToyNamespace"
    spec = reg.model("toy:small")
    assert (spec.name, spec.family, spec.plugin) == ("toy:small", "toy", "_ToyNamespace")
    assert count_params(build_model(spec, num_classes=2, in_chans=1, image_size=32))[0] == \
        count_params(build_model(reg.model("lenet"), num_classes=2, in_chans=1, image_size=32))[0]
    with pytest.raises(UnknownNameError, match="unknown toy model 'huge'"):
        reg.model("toy:huge")
    with pytest.raises(UnknownNameError, match="unknown model 'nons:x'"):
        reg.model("nons:x")
    assert reg.portable(models=["toy:big", "lenet"]).models.keys() == {"toy:big", "lenet"}


def test_preferred_statistics_apply_only_when_asked_and_required_ones_always(suite_file):
    """One declaration (``ModelSpec.input``), two strengths: a timm model's pretrained_cfg statistics
    (``required=False``) feed it only under ``input.normalization: model``; a required mapping always."""
    from dataclasses import replace

    from cxrbench.engine.batches import model_input_for
    from cxrbench.specs import ModelInput
    from cxrbench.suite.loader import load_suite

    spec = Registry(*load_plugin_manager()).model("timm:resnet18")
    plain = load_suite(suite_file())  # input.normalization: dataset, 1 channel
    asked = load_suite(suite_file(), ["input.normalization=model"])
    assert model_input_for(plain, spec) is None
    got = model_input_for(asked, spec)
    assert got.mean == pytest.approx((np.mean((0.485, 0.456, 0.406)),))
    assert got.std == pytest.approx((np.mean((0.229, 0.224, 0.225)),))
    required = replace(spec, input=ModelInput(mean=(0.5,), std=(0.25,), name="fixed range"))
    assert model_input_for(plain, required) is required.input and model_input_for(asked, required) is required.input
    assert model_input_for(asked, replace(spec, input=None)).mean == got.mean  # ImageNet's when none declared
