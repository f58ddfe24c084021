"""Built-in baseline models, registered through the same hook a third-party plugin uses.

Parameter counts follow torchvision's definitions (e.g. MobileNetV2 with 14 classes has
2,241,806 parameters); MobileNet v1 comes from timm (torchvision has none), LeNet-5 and
ShuffleNet v1 are implemented in :mod:`cxrbench.models`.

Registering imports no torch: each builder is a picklable ``partial`` over a function here that
imports :mod:`cxrbench.models.baselines` when a model is built, so ``cxrbench models`` and
``cxrbench validate`` stay fast.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from cxrbench.hookspecs import hookimpl
from cxrbench.models.params import LeNetParams, ShuffleNetV1Params
from cxrbench.specs import BuildRequest, ModelNamespaceSpec, ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn



def _baseline(req: BuildRequest, *, builder: str, **kwargs: Any) -> nn.Module:
    """``cxrbench.models.baselines.<builder>(req, **kwargs)``, imported on call (the module imports torch)."""
    from cxrbench.models import baselines

    return getattr(baselines, builder)(req, **kwargs)


def _lazy(builder: str, **kwargs: Any) -> Any:
    """A picklable builder calling :mod:`cxrbench.models.baselines`' ``builder`` with ``kwargs``."""
    return partial(_baseline, builder=builder, **kwargs)


TV_LICENSE = "BSD-3-Clause (torchvision ImageNet weights)"
TV_NOTE = "torchvision `{arch}`; first conv replaced for in_chans != 3 (pretrained: RGB kernel summed)."
NO_DROPOUT = " The architecture has no dropout: BuildRequest.dropout is ignored."


def _tv(name: str, *, family: str, paper: str, classifier: str, first_conv: str, stages: tuple[str, ...],
        cam_layer: str, dropout_arg: str | None = None, relu_head: str | None = None, notes: str = "",
        arch: str | None = None) -> ModelSpec:
    arch = arch or name
    note = TV_NOTE.format(arch=arch) + (f" dropout -> `{dropout_arg}`." if dropout_arg else NO_DROPOUT)
    return ModelSpec(
        name=name, build=_lazy("build_torchvision", arch=arch, classifier=classifier, first_conv=first_conv,
                                dropout_arg=dropout_arg, relu_head=relu_head),
        family=family, paper=paper, default_input_size=224, classifier=classifier, first_conv=first_conv,
        stages=stages, cam_layer=cam_layer, weights_license=TV_LICENSE, supports_pretrained=True,
        notes=(note + " " + notes).strip(),
    )


def _vgg_stages(cfg: list[int | str]) -> tuple[str, ...]:
    """Paths of the first conv of each VGG block in torchvision's flat ``features`` Sequential."""
    starts, idx, new_block = [], 0, True
    for v in cfg:
        if v == "M":
            idx += 1
            new_block = True
            continue
        if new_block:
            starts.append(f"features.{idx}")
            new_block = False
        idx += 2  # conv + ReLU
    return tuple(starts)


VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
RESNET_STAGES = ("conv1", "layer1", "layer2", "layer3", "layer4")
RESNET_PAPER = "He, Zhang, Ren & Sun. Deep Residual Learning for Image Recognition. CVPR 2016."
SQUEEZE_PAPER = ("Iandola et al. SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and "
                 "<0.5MB model size. arXiv:1602.07360, 2016.")
SQUEEZE_NOTE = ("The final 1x1 conv is followed by a ReLU as in the paper (logits >= 0); it is removed "
                "for multilabel tasks.")
MBV3_PAPER = "Howard et al. Searching for MobileNetV3. ICCV 2019."


def baseline_specs() -> list[ModelSpec]:
    """The built-in baselines."""
    return [
        ModelSpec(
            name="lenet", build=_lazy("build_lenet"), family="LeNet",
            paper="LeCun, Bottou, Bengio & Haffner. Gradient-based learning applied to document "
                  "recognition. Proc. IEEE 86(11), 1998.",
            default_input_size=224, params_schema=LeNetParams, classifier="fc3", first_conv="conv1",
            stages=("conv1", "conv2"), cam_layer="conv2", supports_pretrained=False,
            notes="LeNet-5 with ReLU and max pooling, conv1 padded by 2. params.head='flatten' (default) "
                  "sizes fc1 from BuildRequest.image_size (224 px, 3 ch, 2 classes: 5,612,046 params, as the "
                  "LR-Net paper's LeNet); 'adaptive' pools to 5x5 (61,326)." + NO_DROPOUT,
        ),
        _tv("alexnet", family="AlexNet",
            paper="Krizhevsky, Sutskever & Hinton. ImageNet Classification with Deep Convolutional Neural "
                  "Networks. NeurIPS 2012 (torchvision follows the one-GPU variant of arXiv:1404.5997).",
            classifier="classifier.6", first_conv="features.0",
            stages=("features.0", "features.3", "features.6", "features.8", "features.10"),
            cam_layer="features.12", dropout_arg="dropout", notes="Needs inputs of at least 63 px."),
        _tv("vgg11", family="VGG",
            paper="Simonyan & Zisserman. Very Deep Convolutional Networks for Large-Scale Image "
                  "Recognition. ICLR 2015 (configuration A).",
            classifier="classifier.6", first_conv="features.0", stages=_vgg_stages(VGG11),
            cam_layer="features.20", dropout_arg="dropout"),
        _tv("vgg16", family="VGG",
            paper="Simonyan & Zisserman. Very Deep Convolutional Networks for Large-Scale Image "
                  "Recognition. ICLR 2015 (configuration D).",
            classifier="classifier.6", first_conv="features.0", stages=_vgg_stages(VGG16),
            cam_layer="features.30", dropout_arg="dropout",
            notes="2 classes, 3 channels: 134,268,738 parameters."),
        _tv("resnet18", family="ResNet", paper=RESNET_PAPER, classifier="fc", first_conv="conv1",
            stages=RESNET_STAGES, cam_layer="layer4", notes="2 classes: 11,177,538 parameters."),
        _tv("resnet50", family="ResNet", paper=RESNET_PAPER, classifier="fc", first_conv="conv1",
            stages=RESNET_STAGES, cam_layer="layer4",
            notes="torchvision puts the stride on the 3x3 conv (ResNet v1.5). 14 classes: 23,536,718 parameters."),
        _tv("densenet121", family="DenseNet",
            paper="Huang, Liu, van der Maaten & Weinberger. Densely Connected Convolutional Networks. CVPR 2017.",
            classifier="classifier", first_conv="features.conv0",
            stages=("features.conv0", "features.denseblock1", "features.denseblock2", "features.denseblock3",
                    "features.denseblock4"),
            cam_layer="features.norm5", dropout_arg="drop_rate",
            notes="dropout is the paper's per-layer drop rate inside the dense blocks (0 by default). "
                  "14 classes: 6,968,206 parameters."),
        _tv("squeezenet1_0", family="SqueezeNet", paper=SQUEEZE_PAPER, classifier="classifier.1",
            first_conv="features.0", stages=("features.0", "features.3", "features.7", "features.12"),
            cam_layer="features.12", dropout_arg="dropout", relu_head="classifier.2", notes=SQUEEZE_NOTE),
        _tv("squeezenet1_1", family="SqueezeNet", paper=SQUEEZE_PAPER + " (v1.1 from the authors' repository)",
            classifier="classifier.1", first_conv="features.0",
            stages=("features.0", "features.3", "features.6", "features.9"),
            cam_layer="features.12", dropout_arg="dropout", relu_head="classifier.2", notes=SQUEEZE_NOTE),
        ModelSpec(
            name="mobilenet_v1", build=_lazy("build_timm", arch="mobilenetv1_100"), family="MobileNet",
            paper="Howard et al. MobileNets: Efficient Convolutional Neural Networks for Mobile Vision "
                  "Applications. arXiv:1704.04861, 2017.",
            default_input_size=224, classifier="classifier", first_conv="conv_stem",
            stages=("conv_stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4"),
            cam_layer="blocks.4", weights_license="Apache-2.0 (timm mobilenetv1_100.ra4_e3600_r224_in1k)",
            supports_pretrained=True,
            notes="timm `mobilenetv1_100` (torchvision has no MobileNet v1): 13 depthwise-separable blocks, "
                  "ReLU6; timm adapts the first conv and the head. dropout -> timm drop_rate.",
        ),
        _tv("mobilenet_v2", family="MobileNet",
            paper="Sandler et al. MobileNetV2: Inverted Residuals and Linear Bottlenecks. CVPR 2018.",
            classifier="classifier.1", first_conv="features.0.0",
            stages=("features.0", "features.1", "features.2", "features.4", "features.7", "features.11",
                    "features.14", "features.17", "features.18"),
            cam_layer="features.18", dropout_arg="dropout",
            notes="Stages are the stem, the paper's seven bottleneck rows and the last 1x1 conv. "
                  "14 classes: 2,241,806 parameters."),
        _tv("mobilenet_v3_large", family="MobileNet", paper=MBV3_PAPER, classifier="classifier.3",
            first_conv="features.0.0",
            stages=("features.0", "features.1", "features.2", "features.4", "features.7", "features.13",
                    "features.16"),
            cam_layer="features.16", dropout_arg="dropout", notes="Stages split at each stride-2 block."),
        _tv("mobilenet_v3_small", family="MobileNet", paper=MBV3_PAPER, classifier="classifier.3",
            first_conv="features.0.0",
            stages=("features.0", "features.1", "features.2", "features.4", "features.9", "features.12"),
            cam_layer="features.12", dropout_arg="dropout", notes="Stages split at each stride-2 block."),
        ModelSpec(
            name="shufflenet_v1", build=_lazy("build_shufflenet_v1"), family="ShuffleNet",
            paper="Zhang, Zhou, Lin & Sun. ShuffleNet: An Extremely Efficient Convolutional Neural Network "
                  "for Mobile Devices. CVPR 2018.",
            default_input_size=224, params_schema=ShuffleNetV1Params, classifier="fc", first_conv="conv1.0",
            stages=("conv1", "stage2", "stage3", "stage4"), cam_layer="stage4", supports_pretrained=False,
            notes="Implemented in cxrbench (no library ships it): 1x width, g=3 by default (240/480/960 "
                  "channels; 1,865,728 parameters and 137.5 M MACs at 224 px with 1000 classes, paper: 137 M). "
                  "Kaiming init; no pretrained weights." + NO_DROPOUT,
        ),
        _tv("shufflenet_v2_x1_0", family="ShuffleNet",
            paper="Ma, Zhang, Zheng & Sun. ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture "
                  "Design. ECCV 2018.",
            classifier="fc", first_conv="conv1.0", stages=("conv1", "stage2", "stage3", "stage4", "conv5"),
            cam_layer="conv5"),
    ]


@hookimpl
def register_models() -> list[ModelSpec]:
    return baseline_specs()


def _index_rows(namespace: str) -> list[dict[str, Any]]:
    from cxrbench.data.cache import default_cache_dir
    from cxrbench.models.zoo_index import rows

    return rows(namespace, default_cache_dir() / "model-index")


def _hub_rows() -> list[dict[str, Any]]:
    """timm repos in the local Hugging Face cache (what ``hf-hub:`` can build offline)."""
    try:
        from huggingface_hub import scan_cache_dir

        repos = scan_cache_dir().repos
    except Exception:  # noqa: BLE001 - no cache, no rows
        return []
    return [{"name": r.repo_id, "pretrained": ["cached"], "input_size": None, "fixed_input_size": None}
            for r in sorted(repos, key=lambda r: r.repo_id) if r.repo_type == "model"]


def _resolve_timm(name: str) -> ModelSpec:
    from cxrbench.models.timm_zoo import timm_spec

    return timm_spec(name)


def _resolve_hub(name: str) -> ModelSpec:
    from cxrbench.models.timm_zoo import hub_spec

    return hub_spec(name)


def _resolve_torchvision(name: str) -> ModelSpec:
    from cxrbench.models.tv_zoo import torchvision_spec

    return torchvision_spec(name)


@hookimpl
def register_model_namespaces() -> list[ModelNamespaceSpec]:
    return [
        ModelNamespaceSpec("timm", _resolve_timm, partial(_index_rows, "timm"),
                           "every timm.list_models() architecture (timm:<name> or timm:<name>.<tag>)"),
        ModelNamespaceSpec("torchvision", _resolve_torchvision, partial(_index_rows, "torchvision"),
                           "every torchvision classification model (torchvision:<name>)"),
        ModelNamespaceSpec("hf-hub", _resolve_hub, _hub_rows,
                           "timm models on the Hugging Face hub, from the local cache (hf-hub:<org>/<repo>)"),
    ]
