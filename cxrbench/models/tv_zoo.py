"""``torchvision:<name>``: any torchvision classification model as a :class:`ModelSpec`.

torchvision has no feature_info, so its conventions are read off a copy built on the meta device:
the classifier is the last ``nn.Linear`` (SqueezeNet: the last conv), the first conv the first
``nn.Conv2d``; stages are the top-level blocks (the children of ``features`` / ``layers`` /
``trunk_output`` / ``encoder.layers`` ...) that hold parameters, other than norms and the head;
Grad-CAM looks at the last stage with an NCHW output. Mean/std come from the default weights'
transforms. The builder is :func:`cxrbench.models.baselines.build_torchvision`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cxrbench.errors import UnknownNameError
from cxrbench.models.baselines import torchvision_builder
from cxrbench.specs import ModelInput, ModelSpec

AUX = {"googlenet": {"aux_logits": False, "init_weights": True}, "inception_v3": {"aux_logits": False, "init_weights": True}}
"""Constructor arguments that make a network return plain logits in train mode too."""
EXPAND = ("features", "layers", "trunk_output", "encoder", "blocks", "stages")
NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def _meta(arch: str, **kwargs) -> nn.Module:
    """``arch`` built on the meta device (no memory), or on the CPU when its constructor needs real values."""
    from torchvision.models import get_model

    try:
        with torch.device("meta"):
            return get_model(arch, weights=None, num_classes=2, **AUX.get(arch, {}), **kwargs)
    except (NotImplementedError, RuntimeError):
        return get_model(arch, weights=None, num_classes=2, **AUX.get(arch, {}), **kwargs)


def _blocks(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    out = []
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if name in EXPAND and isinstance(child, (nn.Sequential, nn.ModuleList, nn.Module)) and len(list(child.children())):
            out += _blocks(child, path + ".")
        else:
            out.append((path, child))
    return out


def conventions(model: nn.Module, size: int = 224) -> dict[str, object]:
    """classifier, first_conv, stages and cam_layer of a torchvision classifier (see the module docstring)."""
    named = list(model.named_modules())
    linears = [n for n, m in named if isinstance(m, nn.Linear)]
    convs = [n for n, m in named if isinstance(m, nn.Conv2d)]
    classifier = linears[-1] if linears else convs[-1]
    first_conv = next((n for n, m in named if isinstance(m, nn.Conv2d) and m.groups == 1), None)
    head = classifier.rpartition(".")[0] or classifier
    stages = [p for p, m in _blocks(model)
              if any(True for _ in m.parameters()) and not isinstance(m, NORMS)
              and p != classifier and not classifier.startswith(p + ".") and p != head]
    shapes: dict[str, tuple[int, ...]] = {}
    mods = dict(named)
    hooks = [mods[s].register_forward_hook(lambda _m, _i, out, s=s: shapes.__setitem__(
        s, tuple(out.shape) if isinstance(out, torch.Tensor) else ())) for s in stages]
    try:
        device = next((p.device for p in model.parameters()), torch.device("meta"))
        with torch.no_grad():
            model.eval()(torch.empty(1, 3, size, size, device=device))
    except Exception:  # noqa: BLE001 - no shapes: no Grad-CAM layer
        pass
    finally:
        for h in hooks:
            h.remove()
    swin = "swin" in type(model).__name__.lower()  # NHWC feature maps
    last = stages[-1] if stages else None
    cam = last if last is not None and len(shapes.get(last, ())) == 4 and not swin else None
    return {"classifier": classifier, "first_conv": first_conv, "stages": tuple(stages), "cam_layer": cam}


def _accepts_dropout(arch: str) -> bool:
    try:
        _meta(arch, dropout=0.1)
    except TypeError:
        return False
    return True


def torchvision_spec(arch: str) -> ModelSpec:
    """The :class:`ModelSpec` ``torchvision:<arch>``."""
    import torchvision.models as tvm

    known = tvm.list_models(module=tvm)
    if arch not in known:
        import difflib

        close = difflib.get_close_matches(arch, known, n=3)
        hint = f"; did you mean {', '.join('torchvision:' + c for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown torchvision classification model {arch!r}{hint} "
                               f"(`cxrbench models --namespace torchvision` lists {len(known)})")
    conv = conventions(_meta(arch))
    weights = list(tvm.get_model_weights(arch))
    own_input = None
    if weights:
        t = weights[0].transforms()
        own_input = ModelInput(mean=tuple(float(v) for v in t.mean), std=tuple(float(v) for v in t.std),
                               required=False)
    dropout_arg = "dropout" if _accepts_dropout(arch) else None
    relu_head = "classifier.2" if arch.startswith("squeezenet") else None
    fixed = 224 if arch.startswith(("vit_", "maxvit")) else None  # ViTs check the size; MaxViT's partitions fit 224
    notes = (f"torchvision `{arch}` with conventions read off the network (classifier {conv['classifier']!r}, "
             f"first conv {conv['first_conv']!r}); first conv replaced for in_chans != 3.")
    notes += f" dropout -> `{dropout_arg}`." if dropout_arg else " No dropout argument: BuildRequest.dropout is ignored."
    if fixed:
        notes += f" Takes only {fixed} px input."
    if conv["cam_layer"] is None:
        notes += " Grad-CAM: no NCHW feature map, so none is drawn."
    return ModelSpec(
        name=f"torchvision:{arch}",
        build=torchvision_builder(arch, str(conv["classifier"]), str(conv["first_conv"]), dropout_arg, relu_head,
                                  AUX.get(arch)),
        family=type(_meta(arch)).__name__, paper="(see torchvision's documentation)", default_input_size=224,
        classifier=str(conv["classifier"]), first_conv=conv["first_conv"], stages=conv["stages"],  # type: ignore[arg-type]
        cam_layer=conv["cam_layer"], weights_license="BSD-3-Clause (torchvision weights)" if weights else
        "none (random init)", supports_pretrained=bool(weights), notes=notes, fixed_input_size=fixed,
        input=own_input,
    )
