"""Model metadata as ``cxrbench models`` shows it."""

from __future__ import annotations

from typing import Any

from cxrbench.specs import ModelSpec


def model_info(spec: ModelSpec, with_params: bool = False) -> dict[str, Any]:
    """Every metadata field of a spec; with ``with_params`` the parameter count at the default size
    (2 classes, 3 channels) is computed by building the model."""
    info: dict[str, Any] = {
        "name": spec.name, "alias_of": spec.alias_of, "family": spec.family, "paper": spec.paper, "plugin": spec.plugin,
        "default_input_size": spec.default_input_size, "supports_pretrained": spec.supports_pretrained,
        "weights_license": spec.weights_license, "classifier": spec.classifier, "first_conv": spec.first_conv,
        "stages": list(spec.stages), "cam_layer": spec.cam_layer, "notes": spec.notes,
        "params_schema": spec.params_schema.model_json_schema(),
    }
    if with_params:
        from cxrbench.models.cost import count_params
        from cxrbench.models.factory import build_model

        model = build_model(spec, num_classes=2, in_chans=3)
        info["params"] = count_params(model)[0]
    return info
