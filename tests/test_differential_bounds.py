"""Sampling tests of the differential bounds: every bound contains the true differences it bounds.

* :func:`~reluverify.solver.bounds.relaxation.difference_lines`: for random boxes of ``z1``, ``z2`` and
  ``dz`` (every phase case, boxes at the ends of the range, zero-width boxes), the two lines hold at
  sampled ``(z1, dz)`` with ``z2 = z1 + dz`` in its box, and at the boxes' corners;
* :func:`~reluverify.solver.bounds.differential.difference_bounds`: for random ReLU chains and random
  sub-boxes of a domain, every sampled pair of the region (``x1`` in the box, ``x2`` within delta of it
  in the domain, L-inf and L1) has its per-layer and output differences inside the bounds;
* the bound shrinks with delta: at delta 0 the output difference bound is 0, and it grows at most
  linearly in delta on a fixed box.
"""

from __future__ import annotations

import numpy as np
import pytest

from random_queries import random_chain
from reluverify.solver.bounds.differential import difference_bounds, pair_region
from reluverify.solver.bounds.relaxation import difference_lines

SLACK = 1e-9


def _random_case(rng: np.random.Generator, size: int):
    """Boxes for one ReLU per entry: ``z1`` in [l1, u1], ``dz`` in [dl, du], ``z2`` in [l2, u2] (some
    cases fix a phase of either copy, some are thin)."""
    centre = rng.normal(0.0, 1.0, size) * rng.choice([0.1, 1.0, 3.0], size)
    half = np.abs(rng.normal(0.0, 1.0, size)) * rng.choice([0.0, 0.01, 0.5, 2.0], size)
    l1, u1 = centre - half, centre + half
    d_half = np.abs(rng.normal(0.0, 1.0, size)) * rng.choice([0.0, 0.01, 0.3, 1.0], size)
    d_mid = rng.normal(0.0, 0.2, size) * d_half
    dl, du = d_mid - d_half, d_mid + d_half
    l2, u2 = l1 + dl, u1 + du  # z2's box as interval arithmetic gives it, sometimes cut further
    cut = rng.random(size) < 0.3
    l2 = np.where(cut, l2 + 0.3 * (u2 - l2), l2)
    return l1, u1, l2, u2, dl, du


@pytest.mark.parametrize("seed", range(20))
def test_difference_lines_hold_at_sampled_points(seed):
    rng = np.random.default_rng(seed)
    size = 400
    l1, u1, l2, u2, dl, du = _random_case(rng, size)
    a_lo, c_lo, a_up, c_up = difference_lines(l1, u1, l2, u2, dl, du)
    t = rng.random((200, size))
    t = np.concatenate([t, np.zeros((1, size)), np.ones((1, size))])  # the corners too
    s = rng.random((t.shape[0], size))
    s = np.concatenate([s[:-2], np.zeros((1, size)), np.ones((1, size))])
    z1 = l1 + t * (u1 - l1)
    dz = dl + s * (du - dl)
    z2 = z1 + dz
    inside = (z2 >= l2 - 1e-12) & (z2 <= u2 + 1e-12)
    dh = np.maximum(z2, 0.0) - np.maximum(z1, 0.0)
    scale = 1.0 + np.abs(z1) + np.abs(dz)
    below = a_lo * dz + c_lo - dh
    above = dh - (a_up * dz + c_up)
    assert np.all(below[inside] <= SLACK * scale[inside]), below[inside].max()
    assert np.all(above[inside] <= SLACK * scale[inside]), above[inside].max()


def test_difference_lines_are_exact_where_both_phases_are_fixed():
    l1, u1 = np.array([1.0, -3.0]), np.array([2.0, -1.0])
    dl, du = np.array([-0.1, -0.1]), np.array([0.1, 0.1])
    a_lo, c_lo, a_up, c_up = difference_lines(l1, u1, l1 + dl, u1 + du, dl, du)
    assert np.allclose(a_lo, [1.0, 0.0]) and np.allclose(a_up, [1.0, 0.0])
    assert np.allclose(c_lo, 0.0) and np.allclose(c_up, 0.0)


def _sample_pairs(rng, lower, upper, domain_lower, domain_upper, delta, norm, count):
    n = lower.shape[0]
    x1 = rng.uniform(lower, upper, size=(count, n))
    if norm == "inf":
        d = rng.choice([-1.0, 1.0, 0.0], size=(count, n)) * delta * rng.random((count, 1)) ** 0.25
    else:
        d = rng.normal(size=(count, n))
        d *= delta * rng.random((count, 1)) / np.abs(d).sum(axis=1, keepdims=True)
    x2 = np.clip(x1 + d, domain_lower, domain_upper)
    return x1, x2


@pytest.mark.parametrize("norm", ["inf", "1"])
@pytest.mark.parametrize("seed", range(12))
def test_difference_bounds_contain_sampled_pairs(seed, norm):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 6))
    sizes = [n] + [int(rng.integers(3, 11)) for _ in range(int(rng.integers(1, 4)))] + [int(rng.integers(1, 4))]
    chain = random_chain(rng, sizes)
    domain_lower = rng.uniform(-1.0, 0.0, n)
    domain_upper = domain_lower + rng.uniform(0.2, 1.5, n)
    delta = float(rng.choice([0.001, 0.05, 0.3]))
    boxes = 6
    t0, t1 = np.sort(rng.random((2, boxes, n)), axis=0)
    lower = domain_lower + t0 * (domain_upper - domain_lower)
    upper = domain_lower + t1 * (domain_upper - domain_lower)
    region = pair_region(lower, upper, domain_lower, domain_upper, delta, norm)
    bounds = difference_bounds(chain, region)
    for b in range(boxes):
        x1, x2 = _sample_pairs(rng, lower[b], upper[b], domain_lower, domain_upper, delta, norm, 3000)
        y1, pre1 = chain.forward(x1)
        y2, pre2 = chain.forward(x2)
        diff = y2 - y1
        scale = 1e-9 * (1.0 + np.abs(y1) + np.abs(y2))
        assert np.all(diff >= bounds.lower[b] - scale) and np.all(diff <= bounds.upper[b] + scale)
        for k, (dl, du) in enumerate(bounds.layers):
            dz = pre2[k] - pre1[k]
            slack = 1e-9 * (1.0 + np.abs(pre1[k]) + np.abs(pre2[k]))
            assert np.all(dz >= dl[b] - slack) and np.all(dz <= du[b] + slack), k


def test_difference_bounds_vanish_with_delta():
    rng = np.random.default_rng(7)
    chain = random_chain(rng, [3, 8, 8, 2])
    lower, upper = np.zeros((1, 3)), np.ones((1, 3))
    zero = difference_bounds(chain, pair_region(lower, upper, lower[0], upper[0], 0.0))
    assert np.allclose(zero.lower, 0.0) and np.allclose(zero.upper, 0.0)
    small = difference_bounds(chain, pair_region(lower, upper, lower[0], upper[0], 1e-3)).upper
    large = difference_bounds(chain, pair_region(lower, upper, lower[0], upper[0], 1e-2)).upper
    assert np.all(small <= large + 1e-12)
    assert np.all(large <= 10.0 * small + 1e-9)  # linear in delta on a fixed box
