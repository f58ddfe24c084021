"""cxrbench plugin: MD-Conv (multi-kernel depthwise conv) and MobileNets built with it (Hu et al. 2020).

The operator is imported on first access, so the entry point (``cxrbench_mdconv.plugin``) loads
without torch.
"""

from typing import Any

__all__ = ["MDConv", "replace_depthwise", "split_channels"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cxrbench_mdconv import mdconv

        return getattr(mdconv, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
