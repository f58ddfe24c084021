"""TorchXRayVision plugin: registrations match the library, conformance, preprocessing, weights, zero-shot."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import torchxrayvision as xrv
from cxrbench.data.images import decode_file
from cxrbench.engine.batches import Batches
from cxrbench.errors import SuiteError, WeightsError
from cxrbench.testing import check_model_spec, request_for
from cxrbench_xrv.models import MappedHead, weights_file
from cxrbench_xrv.plugin import SPECS, WEIGHTS

BY_NAME = {s.name: s for s in SPECS}
DENSE_ALL, RESNET = BY_NAME["xrv-densenet121-res224-all"], BY_NAME["xrv-resnet50-res512-all"]


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty TorchXRayVision cache folder and no network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "xrv-cache"


def test_registrations_match_torchxrayvision():
    assert sorted(WEIGHTS) == sorted(f"xrv-{k}" for k in (
        "densenet121-res224-all", "densenet121-res224-nih", "densenet121-res224-chex", "densenet121-res224-pc",
        "densenet121-res224-rsna", "densenet121-res224-mimic_nb", "densenet121-res224-mimic_ch",
        "resnet50-res512-all"))
    for spec in SPECS:
        key, _, head = WEIGHTS[spec.name]
        info = xrv.models.model_urls[key]
        assert spec.head_labels == tuple(info["labels"]) == head
        assert spec.input.image_size == spec.default_input_size == info["input_resolution"]
        assert spec.input.channels == 1 and spec.supports_pretrained
        assert "Apache-2.0" in spec.weights_license and "terms" in spec.weights_license


def test_plugin_import_is_torch_free():
    code = "import sys, cxrbench_xrv.plugin as p; assert len(p.SPECS) == 8; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# Every DenseNet registration builds the same network (only the weights file differs): the first one
# and the ResNet run in the default suite (~10 s each on one core), the other six are slow-marked.
@pytest.mark.parametrize("spec", [s if s in (DENSE_ALL, RESNET) else pytest.param(s, marks=pytest.mark.slow)
                                  for s in SPECS], ids=lambda s: s.name)
def test_conformance_random_init(spec):
    check_model_spec(spec, image_size=32)


def test_random_init_param_counts():
    """TorchXRayVision's own 18-output networks, minus their head plus a 2-way one."""
    ref_dense = sum(p.numel() for p in xrv.models.DenseNet(num_classes=18).parameters())
    ours = sum(p.numel() for p in DENSE_ALL.build(request_for(DENSE_ALL, num_classes=2, in_chans=1)).parameters())
    # torchvision densenet121 with 14 classes and 3 channels has 6,968,206 (the core's notes): 1 channel
    # drops 64 * 2 * 7 * 7 stem weights, 2 classes drop 12 * 1025 head weights.
    assert ours == ref_dense - 16 * 1025 == 6_968_206 - 6_272 - 12 * 1025 == 6_949_634
    resnet = RESNET.build(request_for(RESNET, num_classes=2, in_chans=1, image_size=512))
    # torchvision resnet50: 25,557,032 with the 1000-way fc (2,049,000); 1-channel conv1 (-6,272), 2-way fc
    assert sum(p.numel() for p in resnet.parameters()) == 25_557_032 - 2_049_000 - 6_272 + 2 * 2049 == 23_505_858
    assert resnet.conv1.in_channels == 1


# -- preprocessing ----------------------------------------------------------------------------------

def _xray_png(path: Path, size: int) -> Path:
    """A grey 8-bit PNG with smooth structure (a chest-like blob) and noise, as archives ship them."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 200 * np.exp(-((xx - 0.35) ** 2 + (yy - 0.5) ** 2) / 0.03) + 180 * np.exp(-((xx - 0.65) ** 2 + (yy - 0.5) ** 2) / 0.03)
    img = img + 30 * yy + np.random.default_rng(0).normal(0, 6, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L").save(path)
    return path


def _core_input(path: Path, spec) -> torch.Tensor:
    """The PNG as the core feeds it to ``spec``: decoded at the model's size, its own normalisation."""
    size = spec.input.image_size
    arr = decode_file(path, size, 1)[None, None].copy()
    batches = Batches(torch.from_numpy(arr), torch.zeros(1, dtype=torch.long), torch.zeros(1, 1, 1, 1),
                      torch.ones(1, 1, 1, 1)).for_model(spec.input)
    (x, _), = batches.iterate(np.arange(1), 1, torch.device("cpu"), train=False)
    return x[0]


def _xrv_input(path: Path, size: int) -> np.ndarray:
    """TorchXRayVision's documented transform (README): normalize(img, 255), centre crop, resize."""
    import skimage.io
    import torchvision

    img = xrv.datasets.normalize(skimage.io.imread(path), 255)[None, ...]
    transform = torchvision.transforms.Compose([xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(size)])
    return transform(img)


def test_intensity_mapping_is_torchxrayvisions(tmp_path):
    """At the model's own size (no resampling) the core's input equals xrv's to float rounding."""
    path = _xray_png(tmp_path / "cxr224.png", 224)
    ours, theirs = _core_input(path, DENSE_ALL).numpy(), _xrv_input(path, 224)
    assert ours.shape == theirs.shape == (1, 224, 224)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
    assert ours.min() >= -1024 and ours.max() <= 1024


@pytest.mark.parametrize("spec,source", [(DENSE_ALL, 448), (RESNET, 1024)], ids=["densenet-448to224", "resnet-1024to512"])
def test_preprocessing_matches_torchxrayvision_transform(tmp_path, spec, source):
    """A larger square PNG: the core's decode (PIL bilinear, uint8) + mapping vs xrv's skimage resize.

    One grey level is 2048 / 255 = 8.03 units. The resamplers differ: skimage blurs with a Gaussian
    before downsampling and pads with 0 (mid grey) at the border, PIL uses a widened triangle filter,
    and the core rounds to uint8 after resizing. Measured on this noisy image (noise sd 6 levels):
    inside a 2-pixel border mean 0.68 levels, max 3.9, correlation > 0.999; the border itself up to 14.
    """
    path = _xray_png(tmp_path / "cxr.png", source)
    ours, theirs = _core_input(path, spec).numpy(), _xrv_input(path, spec.input.image_size)
    level = 2048 / 255
    diff = np.abs(ours - theirs)[:, 2:-2, 2:-2] / level
    assert diff.mean() < 0.8, diff.mean()
    assert diff.max() < 5, diff.max()
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.999


# -- weights --------------------------------------------------------------------------------------

def _cached_weights(name: str, folder: Path) -> torch.nn.Module:
    """A TorchXRayVision-format weights file for ``name`` in ``folder`` (random values): DenseNets are
    whole pickled modules, the ResNet a torchvision state dict, as the release files are."""
    torch.manual_seed(1)
    path, _ = weights_file(name, str(folder))
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.startswith("xrv-densenet"):
        src = xrv.models.DenseNet(num_classes=18)
        torch.save(src, path)
    else:
        from torchvision.models import resnet50

        src = resnet50(num_classes=18)
        src.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        torch.save(src.state_dict(), path)
    return src.eval()


def test_pretrained_offline_without_file_names_it(offline_cache):
    start = time.perf_counter()
    with pytest.raises(WeightsError, match=r"nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121.*\.pt.*xrv-cache"):
        DENSE_ALL.build(request_for(DENSE_ALL, num_classes=2, in_chans=1, pretrained=True,
                                    params={"cache_dir": str(offline_cache)}))
    assert time.perf_counter() - start < 5


def test_pretrained_loads_the_cached_file_and_replaces_the_head(offline_cache):
    src = _cached_weights(RESNET.name, offline_cache)
    model = RESNET.build(request_for(RESNET, num_classes=3, in_chans=1, pretrained=True, image_size=512,
                                     params={"cache_dir": str(offline_cache)}))
    torch.testing.assert_close(model.layer4[2].conv3.weight, src.layer4[2].conv3.weight)
    torch.testing.assert_close(model.bn1.running_var, src.bn1.running_var)
    assert model.fc.weight.shape == (3, 2048)  # fine-tuning: a fresh head for the suite's classes


# -- zero-shot ------------------------------------------------------------------------------------

def test_zero_shot_binary_and_multilabel_by_hand(offline_cache):
    """The mapped head gives the source network's own outputs: binary softmax == the label's sigmoid."""
    name = "xrv-densenet121-res224-chex"
    spec = BY_NAME[name]
    src = _cached_weights(name, offline_cache)
    x = torch.rand(2, 1, 64, 64) * 2048 - 1024
    with torch.no_grad():
        z = src(x)  # 18 logits in TorchXRayVision's order: Effusion 7, Pneumonia 8, Cardiomegaly 10
        common = dict(in_chans=1, pretrained=True, zero_shot=True, params={"cache_dir": str(offline_cache)})
        binary = spec.build(request_for(spec, num_classes=2, task="binary", classes=("normal", "pneumonia"),
                                        **common)).eval()
        assert isinstance(binary.classifier, MappedHead) and binary.classifier.index == [None, 8]
        torch.testing.assert_close(torch.softmax(binary(x), 1)[:, 1], torch.sigmoid(z[:, 8]))
        multi = spec.build(request_for(spec, num_classes=2, task="multilabel",
                                       classes=("pleural effusion", "cardiomegaly"), **common)).eval()
        torch.testing.assert_close(multi(x), z[:, [7, 10]])
    assert set(binary.state_dict()) == set(src.state_dict()) - {"op_threshs"}  # the head keeps the file's layout


@pytest.mark.parametrize("task,classes,match", [
    ("multilabel", ("Effusion", "Hernia"), r"no output for \['Hernia'\]"),   # CheXpert weights never saw Hernia
    ("binary", ("Effusion", "Pneumonia"), "both"),
    ("multiclass", ("normal", "bacterial", "viral"), "not multiclass"),
])
def test_zero_shot_refuses_what_the_head_cannot_score(task, classes, match):
    spec = BY_NAME["xrv-densenet121-res224-chex"]
    with pytest.raises(SuiteError, match=match):
        spec.build(request_for(spec, num_classes=len(classes), task=task, classes=classes, in_chans=1,
                               zero_shot=True, image_size=32))
