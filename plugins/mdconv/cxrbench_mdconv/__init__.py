"""cxrbench plugin: MD-Conv (multi-kernel depthwise conv) and MobileNets built with it (Hu et al. 2020)."""

from cxrbench_mdconv.mdconv import MDConv, replace_depthwise, split_channels

__all__ = ["MDConv", "replace_depthwise", "split_channels"]
