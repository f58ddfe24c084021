"""Model building: the built-in architectures and the factory that loads weights and freezes layers."""

from cxrbench.models.factory import (
    apply_freeze,
    apply_frozen_bn_eval,
    build_model,
    build_request,
    create_model,
    read_state_dict,
    validate_params,
)

__all__ = ["apply_freeze", "apply_frozen_bn_eval", "build_model", "build_request", "create_model", "read_state_dict", "validate_params"]
