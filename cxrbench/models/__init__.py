"""Model building: the built-in architectures and the factory that loads weights and freezes layers.

The factory's names are re-exported lazily (on first access), so that importing a light submodule
(``cxrbench.models.params``, ``cxrbench.models.info``) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cxrbench.models.factory import (apply_freeze, apply_frozen_bn_eval, build_model, build_request,
                                         create_model, read_state_dict, validate_params)

__all__ = ["apply_freeze", "apply_frozen_bn_eval", "build_model", "build_request", "create_model", "read_state_dict",
           "validate_params"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cxrbench.models import factory

        return getattr(factory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
