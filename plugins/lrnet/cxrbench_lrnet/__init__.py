"""cxrbench plugin: LR-Net (Lu & Zheng), a lightweight residual network for pneumonia detection.

The network classes are imported on first access, so the entry point (``cxrbench_lrnet.plugin``)
loads without torch.
"""

from typing import Any

from cxrbench_lrnet.params import LRNetParams

__all__ = ["LRBlock", "LRNet", "LRNetParams"]


def __getattr__(name: str) -> Any:
    if name in ("LRBlock", "LRNet"):
        from cxrbench_lrnet import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
