"""cxrbench plugin: LR-Net (Lu & Zheng), a lightweight residual network for pneumonia detection."""

from cxrbench_lrnet.model import LRBlock, LRNet
from cxrbench_lrnet.params import LRNetParams

__all__ = ["LRBlock", "LRNet", "LRNetParams"]
