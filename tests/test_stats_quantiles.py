"""Order-statistic quantile intervals and the paired latency ratio, against binomial sums and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from cxrbench.metrics.quantiles import abba_order, order_statistic_ranks, paired_ratio_ci, quantile_ci


def _cdfs(n: int, q: float) -> list[float]:
    """[P(K <= k) for k = 0..n], K ~ Binomial(n, q), summed term by term (exact integers for comb)."""
    out, total = [], 0.0
    for i in range(n + 1):
        total += math.comb(n, i) * q**i * (1 - q) ** (n - i)
        out.append(total)
    return out


def _textbook(n: int, q: float, conf: float):
    """Equal-tailed ranks by direct search over binomial sums."""
    a, cdf = (1 - conf) / 2, _cdfs(n, q)
    f = lambda k: 0.0 if k < 0 else cdf[k]  # noqa: E731
    lows = [r for r in range(1, n + 1) if f(r - 1) <= a + 1e-12]
    ups = [r for r in range(1, n + 1) if f(r - 1) >= 1 - a - 1e-12]
    low, up = (lows[-1] if lows else None), (ups[0] if ups else None)
    return low, up, (1.0 if up is None else f(up - 1)) - (0.0 if low is None else f(low - 1))


@pytest.mark.parametrize("n, q, conf", [(100, 0.5, 0.95), (30, 0.5, 0.95), (200, 0.9, 0.95), (57, 0.9, 0.9),
                                        (1000, 0.99, 0.95), (20, 0.9, 0.95), (5, 0.5, 0.95), (11, 0.5, 0.99)])
def test_ranks_equal_binomial_sums(n, q, conf):
    low, up, cov = order_statistic_ranks(n, q, conf)
    ref = _textbook(n, q, conf)
    assert (low, up) == ref[:2]
    assert cov == pytest.approx(ref[2], abs=1e-9)
    if low is not None and up is not None:
        assert cov >= conf


def test_classic_table_value():
    # n = 100, median, 95%: ranks 40 and 61, coverage 0.9648 (e.g. Conover's table A3 approximation).
    low, up, cov = order_statistic_ranks(100, 0.5)
    assert (low, up) == (40, 61) and cov == pytest.approx(0.9648, abs=1e-4)
    # Too few samples for a side: p90 of 20 samples has no upper bound at 95%.
    assert order_statistic_ranks(20, 0.9)[1] is None and order_statistic_ranks(5, 0.5) == (None, None, 1.0)


@pytest.mark.parametrize("n, q", [(40, 0.5), (120, 0.9)])
def test_coverage_by_simulation(n, q):
    rng = np.random.default_rng(n)
    truth = math.exp(0.5 * norm.ppf(q))  # lognormal(0, 0.5) quantile
    x = np.sort(rng.lognormal(0.0, 0.5, size=(20000, n)), axis=1)
    low, up, cov = order_statistic_ranks(n, q)
    hit = (x[:, low - 1] <= truth) & (truth <= x[:, up - 1])
    assert hit.mean() == pytest.approx(cov, abs=4 * math.sqrt(cov * (1 - cov) / 20000))
    one = quantile_ci(x[0][::-1], q)  # unsorted input is fine
    assert (one.low, one.high) == (x[0, low - 1], x[0, up - 1])
    assert one.estimate == pytest.approx(np.percentile(x[0], 100 * q)) and one.n == n


def test_nan_sides_and_errors():
    ci = quantile_ci(np.arange(1.0, 21.0), 0.9)
    assert ci.low == float(ci.rank_low) and math.isnan(ci.high) and ci.rank_high is None
    with pytest.raises(ValueError):
        quantile_ci([1.0], 1.0)
    assert math.isnan(quantile_ci([], 0.5).estimate)


def test_abba_order():
    assert abba_order(3) == [0, 1, 1, 0, 0, 1]


def test_paired_ratio_cancels_drift():
    rng = np.random.default_rng(0)
    n_pairs, per = 40, 25
    drift = np.linspace(1.0, 2.0, 2 * n_pairs)  # the machine slows down 2x over the run
    slots = abba_order(n_pairs)
    chunks = {0: [], 1: []}
    for t, m in enumerate(slots):
        base = 10.0 * (1.2 if m == 0 else 1.0) * drift[t]
        chunks[m].append(base * rng.lognormal(0, 0.05, per))
    res = paired_ratio_ci(chunks[0], chunks[1])
    assert res.low < 1.2 < res.high and res.high - res.low < 0.1 and res.n_pairs == n_pairs
    ratios = np.log([np.median(a) / np.median(b) for a, b in zip(chunks[0], chunks[1])])
    ref = quantile_ci(ratios, 0.5)
    expected = tuple(math.exp(v) for v in (ref.estimate, ref.low, ref.high))
    assert (res.ratio, res.low, res.high) == pytest.approx(expected)
    # The unpaired way on the same machine (all of A first, then all of B) is fooled by the drift.
    a_first = np.median(12.0 * drift[:n_pairs] * rng.lognormal(0, 0.05, (per, n_pairs)))
    b_then = np.median(10.0 * drift[n_pairs:] * rng.lognormal(0, 0.05, (per, n_pairs)))
    assert not res.low < a_first / b_then < res.high
    with pytest.raises(ValueError):
        paired_ratio_ci([[1.0]], [])
