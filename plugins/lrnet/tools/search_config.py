"""Search LR-Net layouts for the paper's cost: 268,098 parameters and ~732.2 M MACs (2 classes, 3x224x224).

Counts are closed-form (no torch needed for the search) and mirror ``cxrbench_lrnet.model.LRNet``:

* depthwise-separable conv a->b (3x3 depthwise + 1x1 pointwise), output resolution HW:
  - ``norm=none`` (biases, no BN): params ``10a + ab + b``; MACs ``params * HW``
    (ptflops' aten backend counts the bias add as one MAC per output element)
  - ``norm=bn`` (bias-free convs, BN after each): params ``11a + ab + 2b``; MACs ``(9a + ab) * HW``
* LR-Block of width c = two such convs c->c; stem = one kxk conv in->c0 (+bias or BN);
  head = global average pool + Linear(c_last, 2): ``2c + 2`` params and MACs.

Usage::

    python tools/search_config.py                 # print the best exact-parameter layouts
    python tools/search_config.py --verify        # also build the top layouts and count with ptflops
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass

import numpy as np

TARGET_PARAMS = 268_098
TARGET_MACS = 732.2e6
IN_CHANS, NUM_CLASSES, SIZE = 3, 2, 224


def conv_out(n: int, k: int, s: int) -> int:
    return (n + 2 * (k // 2) - k) // s + 1


def ds_cost(a: int, b: int, norm: str) -> tuple[int, int]:
    """(params, MACs per output pixel) of a depthwise-separable conv a->b."""
    if norm == "none":
        p = 10 * a + a * b + b
        return p, p
    return 11 * a + a * b + 2 * b, 9 * a + a * b


def stem_cost(c0: int, k: int, norm: str) -> tuple[int, int]:
    w = k * k * IN_CHANS * c0
    return (w + c0, w + c0) if norm == "none" else (w + 2 * c0, w)


@dataclass
class Layout:
    norm: str
    stem_channels: int
    stem_kernel: int
    stem_stride: int
    stem_pool: bool
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    strides: tuple[int, ...]
    params: int
    macs: int

    @property
    def mac_err(self) -> float:
        return self.macs / TARGET_MACS - 1

    def regularity(self) -> int:
        """Higher = simpler to describe (used only to break near-ties)."""
        w = (self.stem_channels, *self.widths)
        score = 0
        score += 2 * all(x % 16 == 0 for x in w)
        score += 2 * all(b == 2 * a for a, b in zip(self.widths, self.widths[1:]))
        score += 2 * (len(set(self.depths)) == 1)
        score += self.stem_channels == self.widths[0]
        score += self.stem_kernel == 3
        return score


def cost(norm, c0, k, s, pool, widths, depths, strides) -> tuple[int, int]:
    """Exact (params, aten MACs) of one layout."""
    p, m = stem_cost(c0, k, norm)
    n = conv_out(SIZE, k, s)
    params, macs = p, m * n * n
    if pool:
        n = conv_out(n, 3, 2)
    prev = c0
    for c, d, t in zip(widths, depths, strides):
        if c != prev or t != 1:
            n = conv_out(n, 3, t)
            p, m = ds_cost(prev, c, norm)
            params, macs = params + p, macs + m * n * n
        p, m = ds_cost(c, c, norm)
        params, macs = params + 2 * d * p, macs + 2 * d * m * n * n
        prev = c
    fc = prev * NUM_CLASSES + NUM_CLASSES
    return params + fc, macs + fc


def search(max_depth: int, width_step: int, max_width: int, stages: tuple[int, ...]) -> list[Layout]:
    """Every layout with exactly TARGET_PARAMS parameters (depths vectorised with numpy)."""
    hits: list[Layout] = []
    width_set = range(width_step, max_width + 1, width_step)
    for norm in ("none", "bn"):
        for n_stages in stages:
            depth_grid = np.array(list(itertools.product(range(1, max_depth + 1), repeat=n_stages)))
            for widths in itertools.combinations(width_set, n_stages):
                block_p = np.array([2 * ds_cost(c, c, norm)[0] for c in widths])
                blocks = depth_grid @ block_p
                fc = widths[-1] * NUM_CLASSES + NUM_CLASSES
                for c0 in range(8, 65, 8):
                    for t1 in (1, 2):
                        strides = (t1,) + (2,) * (n_stages - 1)
                        trans, prev = 0, c0
                        for c, t in zip(widths, strides):
                            if c != prev or t != 1:
                                trans += ds_cost(prev, c, norm)[0]
                            prev = c
                        for k in (3, 5, 7):
                            rest = TARGET_PARAMS - stem_cost(c0, k, norm)[0] - fc - trans
                            for i in np.nonzero(blocks == rest)[0]:
                                depths = tuple(int(x) for x in depth_grid[i])
                                for s, pool in itertools.product((1, 2), (False, True)):
                                    p, m = cost(norm, c0, k, s, pool, widths, depths, strides)
                                    assert p == TARGET_PARAMS
                                    hits.append(Layout(norm, c0, k, s, pool, widths, depths, strides, p, m))
    return hits


def verify(layout: Layout) -> tuple[int, int]:
    """Build the layout with the real module and count with ptflops (aten backend)."""
    from ptflops import get_model_complexity_info

    from cxrbench_lrnet.model import LRNet

    model = LRNet(NUM_CLASSES, IN_CHANS, layout.stem_channels, layout.stem_kernel, layout.stem_stride,
                  layout.stem_pool, layout.widths, layout.depths, layout.strides, layout.norm)
    macs, params = get_model_complexity_info(model, (IN_CHANS, SIZE, SIZE), as_strings=False,
                                             print_per_layer_stat=False, backend="aten")
    return int(params), int(macs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-depth", type=int, default=4)
    ap.add_argument("--width-step", type=int, default=8)
    ap.add_argument("--max-width", type=int, default=256)
    ap.add_argument("--stages", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--tol", type=float, default=0.005, help="MAC tolerance for the 'regular' listing")
    ap.add_argument("--verify", action="store_true")
    args = ap.parse_args()

    hits = search(args.max_depth, args.width_step, args.max_width, tuple(args.stages))
    print(f"{len(hits)} layouts with exactly {TARGET_PARAMS:,} parameters")
    by_err = sorted(hits, key=lambda h: abs(h.mac_err))
    near = [h for h in by_err if abs(h.mac_err) <= args.tol]
    print(f"\nclosest MACs (top {args.top}):")
    for h in by_err[: args.top]:
        print(f"  {h.macs / 1e6:9.2f}M ({h.mac_err:+.4%}) reg={h.regularity()} {h}")
    print(f"\nwithin {args.tol:.2%} of the MACs, most regular first:")
    for h in sorted(near, key=lambda h: (-h.regularity(), abs(h.mac_err)))[: args.top]:
        print(f"  {h.macs / 1e6:9.2f}M ({h.mac_err:+.4%}) reg={h.regularity()} {h}")
    if args.verify:
        for h in by_err[:3]:
            print("verified (params, MACs):", verify(h), "expected", (h.params, h.macs))


if __name__ == "__main__":
    main()
