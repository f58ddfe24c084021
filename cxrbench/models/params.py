"""The params schemas of the built-in hand-written models, apart from the networks so that the
registry (``cxrbench models``, ``validate``) can declare them without importing torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class LeNetParams(BaseModel):
    """``head``: how the 16-channel feature map reaches the 120-unit layer.

    ``flatten`` (default) flattens the whole map, so ``fc1`` grows with the input size (this is
    the LR-Net paper's LeNet: 5,612,046 parameters and 56.2 M MACs at 224 px, 3 channels, 2
    classes); ``adaptive`` average-pools it to the classic 5x5 first (61,326 parameters).
    """

    model_config = ConfigDict(extra="forbid")
    head: Literal["flatten", "adaptive"] = "flatten"


class ShuffleNetV1Params(BaseModel):
    """``groups``: number of groups of the 1x1 convolutions (the paper's g; 3 by default)."""

    model_config = ConfigDict(extra="forbid")
    groups: Literal[1, 2, 3, 4, 8] = 3
