"""Builders of the built-in baseline models (torchvision, timm and the two hand-written nets).

Every builder takes a :class:`~cxrbench.specs.BuildRequest` and returns a module producing logits
``(B, num_classes)``. Builders are ``functools.partial`` objects over module-level functions so a
:class:`~cxrbench.specs.ModelSpec` stays picklable (for worker processes).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch.nn as nn

from cxrbench.models.adapt import load_adapted, replace_first_conv
from cxrbench.models.hub import timm_pretrained, torchvision_state_dict
from cxrbench.models.lenet import LeNet5
from cxrbench.models.shufflenet_v1 import ShuffleNetV1
from cxrbench.specs import BuildRequest

Builder = Callable[[BuildRequest], nn.Module]


def build_torchvision(req: BuildRequest, *, arch: str, classifier: str, first_conv: str,
                      dropout_arg: str | None = None, relu_head: str | None = None,
                      init_kwargs: dict | None = None) -> nn.Module:
    """A torchvision ``arch`` with a ``num_classes`` head and an ``in_chans`` first conv.

    ``dropout_arg`` names the constructor argument ``req.dropout`` goes to (None: the net has no
    dropout and it is ignored). ``relu_head`` is the path of a ReLU applied to the logits
    (SqueezeNet): it is removed for multilabel tasks, where non-negative logits would make every
    sigmoid >= 0.5. Pretrained ImageNet weights are adapted like a local weights file. ``init_kwargs``
    go to the constructor as they are (e.g. ``aux_logits=False``: logits only, in train mode too).
    """
    from torchvision.models import get_model

    kwargs = {"num_classes": req.num_classes, **(init_kwargs or {})}
    if dropout_arg is not None and req.dropout is not None:
        kwargs[dropout_arg] = req.dropout
    model = get_model(arch, weights=None, **kwargs)
    if req.in_chans != 3:
        replace_first_conv(model, first_conv, req.in_chans)
    if relu_head is not None and req.task == "multilabel":
        model.set_submodule(relu_head, nn.Identity())
    if req.pretrained:
        load_adapted(model, torchvision_state_dict(arch), classifier=classifier, first_conv=first_conv,
                     source=f"torchvision {arch} ImageNet weights")
    return model


def build_timm(req: BuildRequest, *, arch: str) -> nn.Module:
    """A timm ``arch`` (timm adapts the head and the first conv itself)."""
    import timm

    kwargs = {"num_classes": req.num_classes, "in_chans": req.in_chans}
    if req.dropout is not None:
        kwargs["drop_rate"] = req.dropout
    if req.pretrained:
        return timm_pretrained(arch, **kwargs)
    return timm.create_model(arch, pretrained=False, **kwargs)


def _no_pretrained(req: BuildRequest, name: str) -> None:
    if req.pretrained:
        from cxrbench.errors import WeightsError

        raise WeightsError(f"{name} has no upstream pretrained weights; give a local file with `weights:` "
                           "or set `pretrained: false`")


def build_lenet(req: BuildRequest) -> nn.Module:
    """LeNet-5 sized for ``req.image_size`` (see :class:`~cxrbench.models.lenet.LeNetParams`)."""
    _no_pretrained(req, "lenet")
    head = req.params.head
    return LeNet5(req.num_classes, req.in_chans, req.image_size, head)


def build_shufflenet_v1(req: BuildRequest) -> nn.Module:
    """ShuffleNet v1 1x (``groups`` from the params, 3 by default)."""
    _no_pretrained(req, "shufflenet_v1")
    return ShuffleNetV1(req.num_classes, req.in_chans, req.params.groups)


def torchvision_builder(arch: str, classifier: str, first_conv: str, dropout_arg: str | None = None,
                        relu_head: str | None = None, init_kwargs: dict | None = None) -> Builder:
    """A picklable builder for one torchvision architecture."""
    return partial(build_torchvision, arch=arch, classifier=classifier, first_conv=first_conv,
                   dropout_arg=dropout_arg, relu_head=relu_head, init_kwargs=init_kwargs)
