"""Registers TorchXRayVision's pretrained chest X-ray classifiers with cxrbench (torch-free at import).

One model per TorchXRayVision weights file: ``xrv-densenet121-res224-{all,nih,chex,pc,rsna,mimic_nb,
mimic_ch}`` and ``xrv-resnet50-res512-all``. Each declares its preprocessing (1 channel, 224 or 512 px,
pixels mapped to [-1024, 1024] as ``xrv.datasets.normalize(img, 255)`` does) through
:class:`~cxrbench.specs.ModelInput`, and its pretrained head (``head_labels``) for zero-shot runs.
The network code (torch, torchxrayvision) is imported inside ``build``.
"""

from __future__ import annotations

from functools import partial

from pydantic import BaseModel, ConfigDict, Field

from cxrbench.data.label_space import VOCABULARY
from cxrbench.hookspecs import hookimpl
from cxrbench.specs import BuildRequest, ModelInput, ModelSpec

PAPER = ("Cohen et al. TorchXRayVision: A library of chest X-ray datasets and models. MIDL 2022 "
         "(arXiv:2111.00595); weights of Cohen et al., On the limits of cross-domain generalization in "
         "automated X-ray prediction, MIDL 2020 (arXiv:2002.02497).")
LICENSE_NOTE = ("TorchXRayVision code: Apache-2.0; the weights were trained on {data}, each under its own "
                "terms of use (several research-only or credentialed): check them before redistributing")
XRV_RANGE = ModelInput(mean=(0.5,), std=(1 / 2048,), name="torchxrayvision [-1024, 1024]")
"""``(x / 255 - 0.5) * 2048 == xrv.datasets.normalize(x, 255)``: 1/2048 is exact in float32."""

_CHEX = {"Atelectasis", "Consolidation", "Pneumothorax", "Edema", "Effusion", "Pneumonia", "Cardiomegaly",
         "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum"}


def _head(trained: set[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The 18 outputs in TorchXRayVision's order, ``""`` where these weights never trained one."""
    return tuple(n if n in trained else "" for n in VOCABULARY)


class XRVParams(BaseModel):
    """Options of every ``xrv-*`` model."""

    model_config = ConfigDict(extra="forbid")

    cache_dir: str | None = Field(None, description="folder holding TorchXRayVision's weight files "
                                                    "(default: its own, ~/.torchxrayvision/models_data)")


# cxrbench name -> (TorchXRayVision weights key, what the weights were trained on, trained outputs)
WEIGHTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "xrv-densenet121-res224-all": (
        "densenet121-res224-all", "NIH ChestX-ray14, PadChest, CheXpert, MIMIC-CXR, Google (NIH relabels), "
        "OpenI and RSNA Pneumonia", _head(VOCABULARY)),
    "xrv-densenet121-res224-nih": ("densenet121-res224-nih", "NIH ChestX-ray14", _head(VOCABULARY[:14])),
    "xrv-densenet121-res224-chex": ("densenet121-res224-chex", "CheXpert (Stanford)", _head(_CHEX)),
    "xrv-densenet121-res224-pc": ("densenet121-res224-pc", "PadChest",
                                  _head(set(VOCABULARY[:14]) | {"Fracture"})),
    "xrv-densenet121-res224-rsna": ("densenet121-res224-rsna", "RSNA Pneumonia Challenge (Kaggle)",
                                    _head({"Pneumonia", "Lung Opacity"})),
    "xrv-densenet121-res224-mimic_nb": ("densenet121-res224-mimic_nb", "MIMIC-CXR (NegBio labels)", _head(_CHEX)),
    "xrv-densenet121-res224-mimic_ch": ("densenet121-res224-mimic_ch", "MIMIC-CXR (CheXpert labels)", _head(_CHEX)),
    "xrv-resnet50-res512-all": ("resnet50-res512-all", "PadChest, NIH ChestX-ray14, RSNA Pneumonia, SIIM "
                                "Pneumothorax and VinDr-CXR", _head(VOCABULARY)),
}

DENSENET_STAGES = ("features.conv0", "features.denseblock1", "features.denseblock2", "features.denseblock3",
                   "features.denseblock4")
RESNET_STAGES = ("conv1", "layer1", "layer2", "layer3", "layer4")


def build(request: BuildRequest, name: str):
    """Build ``name`` (the network code is imported here, not at plugin import)."""
    from cxrbench_xrv.models import build_xrv

    return build_xrv(request, name)


def _spec(name: str) -> ModelSpec:
    key, data, head = WEIGHTS[name]
    dense = key.startswith("densenet")
    size = 224 if dense else 512
    arch = dict(family="DenseNet", classifier="classifier", first_conv="features.conv0", stages=DENSENET_STAGES,
                cam_layer="features.norm5") if dense else \
        dict(family="ResNet", classifier="fc", first_conv="conv1", stages=RESNET_STAGES, cam_layer="layer4")
    trained = sum(1 for h in head if h)
    return ModelSpec(
        name=name, build=partial(build, name=name), paper=PAPER, default_input_size=size, params_schema=XRVParams,
        weights_license=LICENSE_NOTE.format(data=data), supports_pretrained=True,
        input=ModelInput(channels=1, image_size=size, mean=XRV_RANGE.mean, std=XRV_RANGE.std, name=XRV_RANGE.name),
        head_labels=head,
        notes=f"TorchXRayVision weights {key!r} ({trained} of 18 outputs trained), trained on {data}. Input: "
              f"1 channel, {size} px, pixels mapped to [-1024, 1024] (applied by the core). pretrained: the "
              "weights file from ~/.torchxrayvision/models_data (or params.cache_dir), never downloaded when "
              "offline; train.epochs: 0 scores the pretrained head mapped onto the suite's classes; otherwise "
              "the head is replaced for the suite's classes." + (" dropout: the dense layers' drop rate." if dense
                                                                 else " No dropout."),
        **arch)  # type: ignore[arg-type]


SPECS = [_spec(name) for name in WEIGHTS]


@hookimpl
def register_models() -> list[ModelSpec]:
    return list(SPECS)
