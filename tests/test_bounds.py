"""Bound propagation is sound: every sampled true value lies inside the computed bounds."""

from __future__ import annotations

import numpy as np
import pytest

from reluverify.network import ReluChain
from reluverify.solver.bounds.deeppoly import BOX_BLOCK, deeppoly_bounds, forward_bounds, interval_bounds
from reluverify.solver.bounds.rows import gradient_magnitude, row_lower_bounds


def _chain(rng, sizes, scale=1.0):
    ws = tuple(rng.normal(0, scale / np.sqrt(a), (b, a)) for a, b in zip(sizes, sizes[1:]))
    bs = tuple(rng.normal(0, 0.3, b) for b in sizes[1:])
    return ReluChain(ws, bs)


def _boxes(rng, n, count):
    centre = rng.uniform(-1, 1, (count, n))
    width = rng.uniform(0, 0.8, (count, n)) * (rng.random((count, n)) > 0.1)  # some zero widths
    return centre - width, centre + width


def _samples(rng, lo, hi, count):
    """``count`` points of the box ``[lo, hi]``, the first 8 random corners."""
    u = rng.random((count,) + lo.shape)
    pts = lo + u * (hi - lo)
    pts[:8] = np.where(rng.random((8,) + lo.shape) < 0.5, lo, hi)  # corners
    return pts


def assert_gradients_bound_differences(rng, chain, grad, lower, upper, rows_out, rows_in, delta):
    """The gradient magnitudes ``grad`` (boxes, rows, n) of ``rows_out @ N(x) + rows_in @ x`` bound the finite
    differences (step ``delta``) along every input dimension, at 50 points of every box wide enough."""
    boxes, n = lower.shape
    for box in range(boxes):
        for dim in range(n):
            if upper[box, dim] - lower[box, dim] < 1e-3:
                continue
            a = _samples(rng, lower[box], upper[box], 50)
            b = a.copy()
            b[:, dim] = np.clip(a[:, dim] + delta, lower[box, dim], upper[box, dim])
            step = b[:, dim] - a[:, dim]
            ok = step > 0
            fa = chain.evaluate(a) @ rows_out.T + a @ rows_in.T
            fb = chain.evaluate(b) @ rows_out.T + b @ rows_in.T
            slope = np.abs(fb - fa)[ok] / step[ok, None]
            assert np.all(slope <= grad[box, :, dim][None] * (1 + 1e-6) + 1e-6)


@pytest.mark.parametrize("refine", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_layer_bounds_contain_sampled_values(seed, refine):
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(1, 6))] + [int(rng.integers(2, 12)) for _ in range(int(rng.integers(1, 4)))] + [3]
    chain = _chain(rng, sizes, scale=float(rng.choice([0.5, 1.0, 3.0])))
    lo, hi = _boxes(rng, sizes[0], 16)
    bounds = forward_bounds(chain, lo, hi, refine=refine)
    plain = interval_bounds(chain, lo, hi)
    pts = _samples(rng, lo, hi, 400)  # (S, B, n)
    y, pre = chain.forward(pts.reshape(-1, sizes[0]))
    y = y.reshape(400, 16, -1)
    for layer, values in enumerate(pre):
        values = values.reshape(400, 16, -1)
        slack = 1e-9 * (1 + np.abs(values))
        assert np.all(values >= bounds.pre_lower[layer][None] - slack)
        assert np.all(values <= bounds.pre_upper[layer][None] + slack)
        assert np.all(values >= plain.pre_lower[layer][None] - slack)
        assert np.all(values <= plain.pre_upper[layer][None] + slack)
    assert np.all(y >= bounds.out_lower[None] - 1e-9 * (1 + np.abs(y)))
    assert np.all(y <= bounds.out_upper[None] + 1e-9 * (1 + np.abs(y)))
    # symbolic bounds are never looser than interval arithmetic by more than round-off
    assert np.all(bounds.out_upper - bounds.out_lower <= plain.out_upper - plain.out_lower + 1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_back_substitution_in_blocks_of_boxes_is_sound_and_the_same_as_one_box_at_a_time(seed):
    """More boxes than one block of back-substitution (and a partial last block): the bounds hold on
    samples, and with or without known bounds each box gets what it gets alone."""
    rng = np.random.default_rng(100 + seed)
    sizes = [4, 12, 12, 10, 3]
    chain = _chain(rng, sizes, scale=2.0)
    count = 2 * BOX_BLOCK + 7
    lo, hi = _boxes(rng, 4, count)
    pts = _samples(rng, lo, hi, 200)
    _, pre = chain.forward(pts.reshape(-1, 4))
    for bounds in (deeppoly_bounds(chain, lo, hi), forward_bounds(chain, lo, hi, refine=True)):
        for layer, values in enumerate(pre):
            values = values.reshape(200, count, -1)
            slack = 1e-9 * (1 + np.abs(values))
            assert np.all(values >= bounds.pre_lower[layer][None] - slack)
            assert np.all(values <= bounds.pre_upper[layer][None] + slack)
    loose = deeppoly_bounds(chain, lo, hi)
    tighter = [lo_ + 0.2 * (hi_ - lo_) for lo_, hi_ in zip(loose.pre_lower, loose.pre_upper)]  # only compared, not sampled
    for known in (None, tighter):
        together = deeppoly_bounds(chain, lo, hi, known)
        for b in range(count):
            alone = deeppoly_bounds(chain, lo[b : b + 1], hi[b : b + 1], None if known is None else [k[b : b + 1] for k in known])
            for layer in range(len(sizes) - 2):
                np.testing.assert_allclose(together.pre_lower[layer][b], alone.pre_lower[layer][0], rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(together.pre_upper[layer][b], alone.pre_upper[layer][0], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(together.out_lower[b], alone.out_lower[0], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(together.out_upper[b], alone.out_upper[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_row_lower_bounds_and_gradients_are_sound(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 5))
    chain = _chain(rng, [n, 8, 8, 4])
    lo, hi = _boxes(rng, n, 12)
    rows_out = rng.normal(size=(5, 4))
    rows_in = rng.normal(size=(5, n)) * (rng.random((5, 1)) < 0.5)
    rhs = rng.normal(size=5)
    layer_bounds = forward_bounds(chain, lo, hi, refine=True)
    rb = row_lower_bounds(chain, lo, hi, layer_bounds, rows_out, rows_in, rhs)
    pts = _samples(rng, lo, hi, 500)
    flat = pts.reshape(-1, n)
    y = chain.evaluate(flat)
    values = (y @ rows_out.T + flat @ rows_in.T - rhs).reshape(500, 12, 5)
    assert np.all(values >= rb.lower[None] - 1e-9 * (1 + np.abs(values)))
    # the linear lower bound itself holds pointwise
    linear = np.einsum("brn,sbn->sbr", rb.coef, pts) + rb.const[None]
    assert np.all(values >= linear - 1e-9 * (1 + np.abs(values)))
    # gradient magnitudes bound finite differences inside the box
    grad = gradient_magnitude(chain, layer_bounds, np.broadcast_to(rows_out, (12, 5, 4)), np.broadcast_to(rows_in, (12, 5, n)))
    assert_gradients_bound_differences(rng, chain, grad, lo, hi, rows_out, rows_in, 1e-4)


def test_known_bounds_can_prove_a_box_empty():
    rng = np.random.default_rng(7)
    chain = _chain(rng, [2, 4, 1])
    lo, hi = np.array([[-1.0, -1.0]]), np.array([[1.0, 1.0]])
    free = forward_bounds(chain, lo, hi)
    # demand a pre-activation above its proven upper bound: no input can do that
    known_lower = [free.pre_upper[0] + 1.0]
    bounds = forward_bounds(chain, lo, hi, known_lower=known_lower, known_upper=[None])
    assert bounds.infeasible[0]


def test_dual_lower_bound_is_sound_and_uses_the_rows():
    from reluverify.solver.bounds.rows import dual_lower_bound

    rng = np.random.default_rng(3)
    n, m, batch, rows_out = 4, 3, 8, 5
    lo = rng.uniform(-1, 0, (batch, n))
    hi = lo + rng.uniform(0.1, 2, (batch, n))
    coef = rng.normal(size=(batch, rows_out, n))
    const = rng.normal(size=(batch, rows_out))
    a = rng.normal(size=(m, n))
    b = rng.normal(size=m) + 0.5
    bound = dual_lower_bound(coef, const, lo, hi, a, b)
    box_only = np.einsum("brn,brn->br", coef, np.where(coef > 0, lo[:, None], hi[:, None])) + const
    assert np.all(bound >= box_only - 1e-12)  # never worse than the box
    pts = rng.uniform(lo[:, None], hi[:, None], (batch, 20000, n))
    feasible = np.all(pts @ a.T <= b, axis=2)
    values = np.einsum("brn,bsn->bsr", coef, pts) + const[:, None]
    for k in range(batch):
        if feasible[k].any():
            assert np.all(values[k][feasible[k]] >= bound[k] - 1e-9)


def test_dual_lower_bound_recovers_the_pair_coupling():
    from reluverify.solver.bounds.rows import dual_lower_bound

    # min x1 - x2 over [0,1]^2 with |x1 - x2| <= 0.1 is -0.1 (the box alone says -1)
    coef = np.array([[[1.0, -1.0]]])
    rows = np.array([[1.0, -1.0], [-1.0, 1.0]])
    bound = dual_lower_bound(coef, np.zeros((1, 1)), np.zeros((1, 2)), np.ones((1, 2)), rows, np.array([0.1, 0.1]))
    assert -0.11 <= bound[0, 0] <= -0.1 + 1e-12  # a dual bound never exceeds the true minimum


@pytest.mark.parametrize("seed", range(8))
def test_conjunction_lower_bound_is_sound_and_beats_single_rows(seed):
    """The bound of a conjunction never exceeds the true max over its rows anywhere in the box."""
    from reluverify.solver.bounds.rows import conjunction_lower_bound

    rng = np.random.default_rng(300 + seed)
    n = int(rng.integers(1, 5))
    chain = _chain(rng, [n, 8, 8, 4])
    lo, hi = _boxes(rng, n, 16)
    rows_out = rng.normal(size=(6, 4))
    rhs = rng.normal(size=6) * 0.3
    owner = np.zeros((3, 6), dtype=bool)  # disjuncts of 3, 2 and 1 rows
    owner[0, :3] = owner[1, 3:5] = owner[2, 5] = True
    layer_bounds = forward_bounds(chain, lo, hi, refine=True)
    rb = row_lower_bounds(chain, lo, hi, layer_bounds, rows_out, None, rhs)
    bound = conjunction_lower_bound(rb.coef, rb.const, lo, hi, owner)
    pts = _samples(rng, lo, hi, 2000)
    values = (chain.evaluate(pts.reshape(-1, n)) @ rows_out.T - rhs).reshape(2000, 16, 6)
    worst = np.where(owner[None, None], values[:, :, None, :], -np.inf).max(axis=3).min(axis=0)  # (B, D)
    assert np.all(bound <= worst + 1e-9 * (1 + np.abs(worst)))
    # never weaker than the best single row's linear bound
    mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
    single = np.einsum("brn,bn->br", rb.coef, mid) - np.einsum("brn,bn->br", np.abs(rb.coef), rad) + rb.const
    best_single = np.where(owner[None], single[:, None, :], -np.inf).max(axis=2)
    assert np.all(bound >= best_single - 1e-12)


def test_conjunction_lower_bound_refutes_rows_jointly():
    """x <= 0.4 and -x <= -0.6 on [0, 1]: neither row alone is refuted, together they are."""
    from reluverify.solver.bounds.rows import conjunction_lower_bound

    coef = np.array([[[1.0], [-1.0]]])
    const = np.array([[-0.4, 0.6]])
    bound = conjunction_lower_bound(coef, const, np.zeros((1, 1)), np.ones((1, 1)), np.ones((1, 2), dtype=bool))
    assert bound[0, 0] > 0.09  # the exact value is 0.1 (at x = 0.5)


def test_back_substitution_under_a_small_memory_budget_gives_the_same_bounds(monkeypatch):
    """Fewer boxes per block and fewer neurons per pass (the budget of wide layers) change nothing."""
    import reluverify.solver.bounds.deeppoly as bounds_module

    rng = np.random.default_rng(7)
    chain = _chain(rng, [6, 40, 40, 30, 3], scale=2.0)
    lo, hi = _boxes(rng, 6, 20)
    wide = deeppoly_bounds(chain, lo, hi)
    monkeypatch.setattr(bounds_module, "BLOCK_BYTES", 4 * 8 * 40 * 2 * 5)  # 5 neurons of one box per block
    narrow = deeppoly_bounds(chain, lo, hi)
    for a, b in zip(wide.pre_lower + wide.pre_upper, narrow.pre_lower + narrow.pre_upper):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wide.out_lower, narrow.out_lower, rtol=1e-12, atol=1e-12)
