"""A suite's model entry -> the module the engine trains: params validated, weights loaded, freeze applied.

The one builder for every path that turns a suite entry into a model: training jobs, and a finished
run's checkpoint reloaded for the report, the probes and ``profile --run``
(:meth:`cxrbench.results.view.RunView.model`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from cxrbench.models.factory import create_model
from cxrbench.specs import BuildRequest

if TYPE_CHECKING:
    from cxrbench.plugins import Registry
    from cxrbench.suite.schema import ModelEntry, Suite


def build_model(suite: "Suite", entry: "ModelEntry", registry: "Registry") -> tuple[torch.nn.Module, Any]:
    """The entry's model and its :class:`~cxrbench.specs.ModelSpec`, with its params validated, weights
    loaded and freeze policy applied."""
    spec = registry.model(entry.name)
    params = spec.params_schema.model_validate(entry.params)
    request = BuildRequest(num_classes=len(suite.task.classes), in_chans=suite.input.channels,
                           task=suite.task.type, pretrained=entry.pretrained, image_size=suite.input.image_size,
                           dropout=entry.dropout, params=params)
    return create_model(spec, request, weights=entry.weights, freeze=entry.freeze), spec
