"""A suite's model entry -> the module the engine trains: params validated, weights loaded, freeze applied.

The one builder for every path that turns a suite entry into a model: training jobs, and a finished
run's checkpoint reloaded for the report, the probes and ``profile --run``
(:meth:`cxrbench.results.view.RunView.model`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from cxrbench.models.factory import build_model as build_from_spec

if TYPE_CHECKING:
    from cxrbench.plugins import Registry
    from cxrbench.suite.schema import ModelEntry, Suite


def build_model(suite: "Suite", entry: "ModelEntry", registry: "Registry") -> tuple[torch.nn.Module, Any]:
    """The entry's model under the suite and its :class:`~cxrbench.specs.ModelSpec` (params validated by
    :func:`cxrbench.models.factory.build_request`, weights loaded, freeze applied)."""
    spec = registry.model(entry.name)
    return build_from_spec(spec, **suite.model_build_args(entry)), spec
