"""The optimised linear bounds (reluverify.solver.bounds.alpha_crown) and the triangle LP (reluverify.solver.triangle_lp).

Soundness by sampling: for random networks, random ReLU splits, random input rows and *random*
parameters (slopes, bound multipliers, row multipliers: the invariant is that every value in range
gives a sound bound), no sampled point of the constrained region lies below the bound. Then the
gradients against finite differences, optimisation never losing ground, the optimised bound
against the LP optimum computed by HiGHS, and the triangle LP (our simplex) against HiGHS.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from random_queries import random_chain
from reluverify.solver.bounds import alpha_crown as crown
from reluverify.solver.bounds.deeppoly import forward_bounds
from reluverify.solver.triangle_lp import CANDIDATE, REFUTED, solve_triangle_lp


def _relaxation(rng, chain, lower, upper, split_fraction=0.3):
    """Forward bounds on the box, and random splits of unstable neurons (bounds clamped)."""
    batch = lower.shape[0]
    bounds = forward_bounds(chain, lower, upper, refine=True)
    relaxation = crown.Relaxation([a.copy() for a in bounds.pre_lower], [a.copy() for a in bounds.pre_upper])
    for j in range(len(relaxation.lower)):
        unstable = (relaxation.lower[j] < 0) & (relaxation.upper[j] > 0)
        pick = unstable & (rng.random(unstable.shape) < split_fraction)
        sign = np.where(rng.random(unstable.shape) < 0.5, 1, -1).astype(np.int8)
        relaxation.split[j][pick] = sign[pick]
        relaxation.lower[j] = np.where(pick & (sign > 0), 0.0, relaxation.lower[j])
        relaxation.upper[j] = np.where(pick & (sign < 0), 0.0, relaxation.upper[j])
    assert relaxation.batch == batch
    return relaxation


def _constrained_samples(rng, chain, lower, upper, relaxation, b, rows=None, rhs=None, count=20000):
    """Sampled inputs of sub-problem ``b`` that satisfy its splits (and the rows), with their values."""
    x = rng.uniform(lower[b], upper[b], size=(count, lower.shape[1]))
    y, pre = chain.forward(x)
    ok = np.ones(count, dtype=bool) if rows is None else np.all(x @ rows.T <= rhs, axis=1)
    for j, z in enumerate(pre):
        s = relaxation.split[j][b]
        ok &= np.all((s == 0) | (s * z >= 0), axis=1)
    return x[ok], y[ok], [z[ok] for z in pre]


@pytest.mark.parametrize("seed", range(12))
def test_bounds_with_random_parameters_are_sound(seed):
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(2, 5))] + [int(rng.integers(3, 9)) for _ in range(int(rng.integers(1, 4)))] + [3]
    chain = random_chain(rng, sizes)
    n, batch, rows_per = sizes[0], 3, 2
    lower = rng.uniform(-1.0, 0.0, (batch, n))
    upper = lower + rng.uniform(0.2, 1.5, (batch, n))
    relaxation = _relaxation(rng, chain, lower, upper)
    a = rng.normal(size=(2, n))
    rhs = a @ (0.5 * (lower[0] + upper[0])) + rng.uniform(0.0, 0.5, 2)
    region = crown.Region(lower, upper, a, rhs)
    hidden = sizes[1:-1]
    mu = rng.normal(size=(batch, rows_per, sizes[-1]))
    const = rng.normal(size=(batch, rows_per))
    alpha = [rng.random((batch, rows_per, h)) for h in hidden]
    beta = [3.0 * rng.random((batch, rows_per, h, 2)) for h in hidden]
    gamma = 2.0 * rng.random((batch, rows_per, 2))
    p = crown.backward(chain, region, relaxation, mu, const, None, None, alpha, beta, gamma)
    for b in range(batch):
        x, y, _ = _constrained_samples(rng, chain, lower, upper, relaxation, b, a, rhs)
        if x.shape[0] == 0:
            continue
        values = y @ mu[b].T + const[b]
        assert np.all(values.min(axis=0) >= p.value[b] - 1e-9), (values.min(axis=0), p.value[b])


@pytest.mark.parametrize("seed", range(6))
def test_intermediate_bounds_are_sound(seed):
    rng = np.random.default_rng(100 + seed)
    chain = random_chain(rng, [3, 8, 8, 8, 2])
    lower = rng.uniform(-1.0, 0.0, (2, 3))
    upper = lower + rng.uniform(0.3, 1.5, (2, 3))
    relaxation = _relaxation(rng, chain, lower, upper, split_fraction=0.2)
    region = crown.Region(lower, upper)
    tightened = crown.tighten_intermediate(chain, region, relaxation, crown.OptimiseSettings(iterations=15), include_split=True)
    for b in range(2):
        _, _, pre = _constrained_samples(rng, chain, lower, upper, relaxation, b)
        for j, z in enumerate(pre):
            if z.shape[0]:
                assert np.all(z >= tightened.lower[j][b] - 1e-9) and np.all(z <= tightened.upper[j][b] + 1e-9)
        # never looser than before
        for j in range(len(pre)):
            assert np.all(tightened.lower[j][b] >= relaxation.lower[j][b] - 1e-12)
            assert np.all(tightened.upper[j][b] <= relaxation.upper[j][b] + 1e-12)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(7)
    chain = random_chain(rng, [3, 6, 6, 2])
    lower = rng.uniform(-1.0, 0.0, (1, 3))
    upper = lower + 1.0
    relaxation = _relaxation(rng, chain, lower, upper)
    a = rng.normal(size=(1, 3))
    region = crown.Region(lower, upper, a, np.array([0.3]))
    mu = rng.normal(size=(1, 1, 2))
    alpha = [rng.uniform(0.1, 0.9, (1, 1, 6)) for _ in range(2)]
    beta = [rng.uniform(0.1, 1.0, (1, 1, 6, 2)) for _ in range(2)]
    gamma = np.full((1, 1, 1), 0.5)
    p = crown.backward(chain, region, relaxation, mu, np.zeros((1, 1)), None, None, alpha, beta, gamma)
    g = crown.gradients(chain, region, relaxation, p)
    eps = 1e-7
    checked = 0
    for j in range(2):
        for i in range(6):
            for which, params, grad in (("alpha", alpha, g.alpha), ("beta", beta, g.beta)):
                shifted = [q.copy() for q in params]
                index = (0, 0, i) if which == "alpha" else (0, 0, i, 1)
                shifted[j][index] += eps
                args = (shifted, beta) if which == "alpha" else (alpha, shifted)
                q = crown.backward(chain, region, relaxation, mu, np.zeros((1, 1)), None, None, *args, gamma)
                numeric = (q.value - p.value)[0, 0] / eps
                if np.sign(q.nu[j]).tolist() != np.sign(p.nu[j]).tolist():
                    continue  # a sign change of a coefficient: the pass is only piecewise linear
                assert numeric == pytest.approx(float(grad[j][index]), rel=1e-4, abs=1e-6)
                checked += 1
    shifted = gamma + eps
    q = crown.backward(chain, region, relaxation, mu, np.zeros((1, 1)), None, None, alpha, beta, shifted)
    assert (q.value - p.value)[0, 0] / eps == pytest.approx(float(g.gamma[0, 0, 0]), rel=1e-4, abs=1e-6)
    assert checked > 10


def test_the_fast_paths_of_a_pass_compute_what_the_plain_ones_do(monkeypatch):
    """Exact selection instead of ``np.where``, products that skip all-zero columns, and gradients
    that stop below the pass's own layer: the same numbers (up to the order of a sum)."""
    from reluverify import linear_ops

    monkeypatch.setattr(linear_ops.dispatch, "SKIP_ZERO_COLUMNS", 0)  # the skipping products on small arrays too
    rng = np.random.default_rng(11)
    mask = rng.random((3, 5, 7)) < 0.5
    a, b = rng.normal(size=(3, 5, 7)).astype(np.float32), rng.normal(size=(3, 1, 7)).astype(np.float32)
    assert np.array_equal(crown._select(mask, a, b), np.where(mask, a, b))
    w = rng.normal(size=(12, 9))
    coef = rng.normal(size=(2, 4, 12))
    coef[:, :, rng.random(12) < 0.6] = 0.0  # most columns zero in every row: the product skips them
    assert linear_ops._used_columns(coef.reshape(8, 12)) is not None  # the skipping path is the one taken
    np.testing.assert_allclose(crown._apply_t(w, coef), coef @ w, rtol=1e-12, atol=1e-12)
    x = np.ascontiguousarray(coef[:, :, :9])  # inputs zero in every row, forward
    assert linear_ops._used_columns(x.reshape(8, 9)) is not None
    np.testing.assert_allclose(crown._apply(w, x), x @ w.T, rtol=1e-12, atol=1e-12)
    chain = random_chain(rng, [3, 6, 6, 2])
    lower = rng.uniform(-1.0, 0.0, (2, 3))
    upper = lower + 1.0
    relaxation = _relaxation(rng, chain, lower, upper)
    region = crown.Region(lower, upper)
    mu = np.zeros((2, 2, 6))
    mu[:, 0, 1], mu[:, 1, 4] = 1.0, -1.0  # rows of intermediate bounds (layer 1)
    beta = [rng.uniform(0.0, 1.0, (2, 2, 6, 2))]
    p = crown.backward(chain, region, relaxation, mu, np.zeros((2, 2)), 1, None, [rng.random((2, 2, 6))], beta)
    full, below = crown.gradients(chain, region, relaxation, p), crown.gradients(chain, region, relaxation, p, top=False)
    assert below.z_hat is None and full.z_hat.shape == (2, 2, 6)
    np.testing.assert_array_equal(full.alpha[0], below.alpha[0])
    np.testing.assert_array_equal(full.beta[0], below.beta[0])
    # the box corner: exact in float64 passes (their bound is returned), up to round-off in float32 ones
    corner = np.where(p.lam > 0, lower[:, None, :], upper[:, None, :])
    np.testing.assert_array_equal(p.vertex, corner)
    fast = crown.backward(chain, region, relaxation, mu, np.zeros((2, 2)), 1, None, [rng.random((2, 2, 6))], beta,
                          terms=crown.layer_terms(relaxation, region, np.float32))
    np.testing.assert_allclose(fast.vertex, np.where(fast.lam > 0, lower[:, None, :], upper[:, None, :]), rtol=1e-6, atol=1e-6)


def test_optimisation_never_loses_ground_and_beats_the_heuristic():
    rng = np.random.default_rng(3)
    chain = random_chain(rng, [4, 16, 16, 3])
    lower = rng.uniform(-1.0, 0.0, (4, 4))
    upper = lower + 1.0
    relaxation = _relaxation(rng, chain, lower, upper, split_fraction=0.0)
    region = crown.Region(lower, upper)
    objective = crown.Objective(rng.normal(size=(2, 3)), np.zeros((2, 4)), np.zeros(2))
    params = crown.initial_parameters(relaxation, 1, 2, region, with_beta=True)
    params.weights = crown.uniform_weights(4, 1, objective)
    start = crown.bound(chain, region, relaxation, objective, params).value
    value, best, p = crown.optimise(chain, region, relaxation, objective, params, crown.OptimiseSettings(iterations=40, stop_above=None))
    assert np.all(value >= start - 1e-12)
    assert np.mean(value > start + 1e-6) > 0.5
    # the returned parameters reproduce the returned bound
    again = crown.bound(chain, region, relaxation, objective, best).value
    np.testing.assert_allclose(again, value, atol=1e-9)


def _highs_lp(chain, lower, upper, relaxation, b, c_out, rows=None, rhs=None):
    """min c_out @ y over the triangle relaxation with the sub-problem's bounds and splits (None: infeasible)."""
    weights, biases = chain.weights, chain.biases
    n = chain.input_size
    sizes = [n] + [w.shape[0] for w in weights[:-1]]
    z_idx, h_idx, cursor = [], [], n
    for s in sizes[1:]:
        z_idx.append(np.arange(cursor, cursor + s))
        h_idx.append(np.arange(cursor + s, cursor + 2 * s))
        cursor += 2 * s
    total = cursor
    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    var_bounds = [(lower[b, i], upper[b, i]) for i in range(n)] + [(None, None)] * (total - n)
    prev = np.arange(n)
    for j in range(len(sizes) - 1):
        eq = np.zeros((sizes[j + 1], total))
        eq[np.arange(sizes[j + 1]), z_idx[j]] = 1.0
        eq[:, prev] -= weights[j]
        a_eq.append(eq)
        b_eq.append(biases[j])
        lo, hi = relaxation.lower[j][b], relaxation.upper[j][b]
        for i in range(sizes[j + 1]):
            z, h = z_idx[j][i], h_idx[j][i]
            var_bounds[z] = (lo[i], hi[i])
            if lo[i] >= 0:
                row = np.zeros(total)
                row[h], row[z] = 1.0, -1.0
                a_eq.append(row[None])
                b_eq.append([0.0])
            elif hi[i] <= 0:
                var_bounds[h] = (0.0, 0.0)
            else:
                var_bounds[h] = (0.0, None)
                row = np.zeros(total)
                row[z], row[h] = 1.0, -1.0
                a_ub.append(row[None])
                b_ub.append([0.0])
                slope = hi[i] / (hi[i] - lo[i])
                row = np.zeros(total)
                row[h], row[z] = 1.0, -slope
                a_ub.append(row[None])
                b_ub.append([-slope * lo[i]])
        prev = h_idx[j]
    objective = np.zeros(total)
    objective[prev] = c_out @ weights[-1]
    if rows is not None:  # rows over y: rows @ (W h + c) <= rhs
        for r, d in zip(rows, rhs):
            row = np.zeros(total)
            row[prev] = r @ weights[-1]
            a_ub.append(row[None])
            b_ub.append([d - r @ biases[-1]])
    result = linprog(objective, A_ub=np.vstack(a_ub) if a_ub else None, b_ub=np.concatenate(b_ub) if b_ub else None,
                     A_eq=np.vstack(a_eq), b_eq=np.concatenate(b_eq), bounds=var_bounds, method="highs")
    if result.status == 2:
        return None
    assert result.status == 0
    return result.fun + c_out @ biases[-1]


def test_optimised_bound_never_exceeds_the_lp_and_comes_close():
    """The LP over the triangle relaxation is the best any parameters can reach (weak duality); with
    enough steps the optimiser gets close to it on small networks without splits."""
    rng = np.random.default_rng(11)
    gaps = []
    for _ in range(8):
        chain = random_chain(rng, [3, 10, 10, 2])
        lower = rng.uniform(-1.0, 0.0, (1, 3))
        upper = lower + rng.uniform(0.5, 1.5, (1, 3))
        relaxation = _relaxation(rng, chain, lower, upper, split_fraction=0.0)
        region = crown.Region(lower, upper)
        c_out = rng.normal(size=2)
        objective = crown.Objective(c_out[None, :], np.zeros((1, 3)), np.zeros(1))
        params = crown.initial_parameters(relaxation, 1, 2, region, with_beta=True)
        params.weights = np.ones((1, 1, 1))
        value, _, _ = crown.optimise(chain, region, relaxation, objective, params,
                                     crown.OptimiseSettings(iterations=300, stop_above=None))
        lp = _highs_lp(chain, lower, upper, relaxation, 0, c_out)
        assert value[0, 0] <= lp + 1e-7
        gaps.append(lp - value[0, 0])
    assert np.median(gaps) < 0.05 * (1.0 + abs(lp))


@pytest.mark.parametrize("seed", range(10))
def test_triangle_lp_agrees_with_highs(seed):
    rng = np.random.default_rng(200 + seed)
    chain = random_chain(rng, [3, 10, 10, 2])
    lower = rng.uniform(-1.0, 0.0, (1, 3))
    upper = lower + rng.uniform(0.5, 1.5, (1, 3))
    relaxation = _relaxation(rng, chain, lower, upper, split_fraction=0.25)
    region = crown.Region(lower, upper)
    c_out = rng.normal(size=2)
    optimum = _highs_lp(chain, lower, upper, relaxation, 0, c_out)
    for shift in (-0.05, 0.05):
        if optimum is None:
            threshold = 0.0
        else:
            threshold = optimum + shift * (1.0 + abs(optimum))
        rows = np.concatenate([np.zeros((1, 3)), c_out[None, :]], axis=1)  # c_out @ y <= threshold
        outcome = solve_triangle_lp(chain, region, relaxation, 0, rows, np.array([threshold]))
        feasible = optimum is not None and threshold >= optimum
        assert outcome.status == (CANDIDATE if feasible else REFUTED), (optimum, threshold, outcome.status)
        if outcome.status == CANDIDATE:
            assert np.all(outcome.inputs >= lower[0]) and np.all(outcome.inputs <= upper[0])


def test_triangle_lp_point_of_a_linear_region_is_exact():
    """With every ReLU split the LP is the sub-problem itself: its point satisfies the splits and rows."""
    rng = np.random.default_rng(5)
    chain = random_chain(rng, [2, 6, 6, 1])
    lower, upper = np.full((1, 2), -0.2), np.full((1, 2), 0.2)
    x0 = np.zeros(2)
    y0, pre = chain.forward(x0[None])
    bounds = forward_bounds(chain, lower, upper, refine=True)
    relaxation = crown.Relaxation([a.copy() for a in bounds.pre_lower], [a.copy() for a in bounds.pre_upper])
    for j, z in enumerate(pre):  # split every unstable neuron to x0's own phase
        unstable = (relaxation.lower[j] < 0) & (relaxation.upper[j] > 0)
        sign = np.where(z >= 0, 1, -1).astype(np.int8)
        relaxation.split[j][unstable] = sign[unstable]
        relaxation.lower[j] = np.where(unstable & (sign > 0), 0.0, relaxation.lower[j])
        relaxation.upper[j] = np.where(unstable & (sign < 0), 0.0, relaxation.upper[j])
    rows = np.array([[0.0, 0.0, 1.0]])
    outcome = solve_triangle_lp(chain, crown.Region(lower, upper), relaxation, 0, rows, np.array([y0[0, 0] + 1e-3]))
    assert outcome.status == CANDIDATE and outcome.exact
    y, z = chain.forward(outcome.inputs[None])
    assert y[0, 0] <= y0[0, 0] + 1e-3 + 1e-9
    for j, zz in enumerate(z):
        s = relaxation.split[j][0]
        assert np.all((s == 0) | (s * zz[0] >= -1e-9))


def _unsplit_subproblems(rng, batch: int):
    """A random 3-hidden-layer chain, a box, and ``batch`` copies of its DeepPoly bounds as sub-problems."""
    from reluverify.solver.bounds.deeppoly import deeppoly_bounds

    chain = random_chain(rng, [3, 10, 10, 10, 2])
    lower = rng.uniform(-1.0, 0.0, (1, 3))
    upper = lower + rng.uniform(0.5, 2.0, (1, 3))
    first = deeppoly_bounds(chain, lower, upper)
    return chain, lower, upper, crown.Relaxation([np.repeat(a, batch, axis=0) for a in first.pre_lower],
                                                 [np.repeat(a, batch, axis=0) for a in first.pre_upper])


def _split_at_random(rng, relaxation: crown.Relaxation, top: np.ndarray) -> None:
    """Split up to 3 unstable ReLUs of each layer ``0..top[b]`` of sub-problem ``b`` to random phases (in place)."""
    for b in range(relaxation.batch):
        for j in range(int(top[b]) + 1):
            unstable = np.flatnonzero((relaxation.lower[j][b] < 0) & (relaxation.upper[j][b] > 0))
            for i in rng.choice(unstable, min(unstable.size, 3), replace=False):
                sign = 1 if rng.random() < 0.5 else -1
                relaxation.split[j][b, i] = sign
                if sign > 0:
                    relaxation.lower[j][b, i] = 0.0
                else:
                    relaxation.upper[j][b, i] = 0.0


def _check_rebounded(rng, chain, lower, upper, before: crown.Relaxation, after: crown.Relaxation, empty) -> int:
    """Every sampled input of the box that meets sub-problem ``b``'s splits lies inside its new bounds,
    the new bounds are never looser, and ``empty[b]`` only when no sample meets the splits. Returns how
    many bounds got tighter."""
    batch = before.batch
    region_lower, region_upper = np.repeat(lower, batch, axis=0), np.repeat(upper, batch, axis=0)
    tighter = 0
    for b in range(batch):
        _, _, pre = _constrained_samples(rng, chain, region_lower, region_upper, before, b, count=40000)
        assert not (empty[b] and pre[0].shape[0] > 0)
        for j, z in enumerate(pre):
            assert np.all(after.lower[j][b] >= before.lower[j][b]) and np.all(after.upper[j][b] <= before.upper[j][b])
            tighter += int(np.sum(after.upper[j][b] - after.lower[j][b] < before.upper[j][b] - before.lower[j][b] - 1e-9))
            if z.shape[0]:
                assert np.all(z >= after.lower[j][b] - 1e-9) and np.all(z <= after.upper[j][b] + 1e-9)
    return tighter


@pytest.mark.parametrize("top", [0, 1])
@pytest.mark.parametrize("seed", range(8))
def test_reoptimised_intermediate_bounds_hold_on_their_constrained_region(seed, top):
    """Sub-problems' intermediate bounds optimised again with their splits' multipliers
    (relu_bab.optimise_intermediate): every sampled input that meets a sub-problem's splits lies inside
    its new bounds, the bounds are never looser, they tighten something, and a sub-problem is called
    empty only when no sample meets its splits. With splits in the first layer only (``top`` 0), the
    second layer has no multipliers in the third layer's ascent (its beta is None)."""
    from reluverify.solver.relu_bab.children import optimise_intermediate

    rng = np.random.default_rng(900 + seed)
    chain, lower, upper, subs = _unsplit_subproblems(rng, batch=6)
    _split_at_random(rng, subs, np.full(subs.batch, top, dtype=np.int64))  # random phases in layers 0..top
    region = crown.Region(np.repeat(lower, subs.batch, axis=0), np.repeat(upper, subs.batch, axis=0))
    tightened, empty = optimise_intermediate(chain, region, subs, 10)
    assert _check_rebounded(rng, chain, lower, upper, subs, tightened, empty) > 0


@pytest.mark.parametrize("seed", range(8))
def test_tightened_children_bounds_hold_on_their_constrained_region(seed):
    """Children re-bounded above their split layer (relu_bab.tighten_children): every sampled input that
    meets a child's splits lies inside its new bounds, the bounds are never looser, and a child is called
    empty only when no sample meets its splits."""
    from reluverify.solver.relu_bab.children import tighten_children

    rng = np.random.default_rng(300 + seed)
    chain, lower, upper, children = _unsplit_subproblems(rng, batch=6)
    split_layer = rng.integers(0, 2, children.batch)
    _split_at_random(rng, children, split_layer)  # a random phase set in and below the child's split layer
    tightened, empty = tighten_children(chain, crown.Region(lower, upper), children, split_layer)
    assert _check_rebounded(rng, chain, lower, upper, children, tightened, empty) > 0  # the splits did tighten something above them


@pytest.mark.parametrize("seed", range(6))
def test_a_restricted_ascent_is_a_sound_bound_of_the_whole_chain_and_its_parameters_reproduce_it(seed):
    """``OptimiseSettings.restrict``: neurons inactive in every sub-problem of the batch (and not
    split) are left out. The values it returns are the whole chain's bound at the parameters it
    returns (removed multipliers zero), they hold on every sampled point of the constrained region,
    split neurons inactive by their split are kept (their multipliers carry the split), and with the
    removed multipliers at zero a restricted pass is the whole pass."""
    rng = np.random.default_rng(700 + seed)
    chain = random_chain(rng, [4, 12, 12, 12, 3])
    batch = 3
    lower = rng.uniform(-1.0, 0.0, (batch, 4))
    upper = lower + rng.uniform(0.1, 0.6, (batch, 4))  # narrow boxes: many neurons inactive
    relaxation = _relaxation(rng, chain, lower, upper, split_fraction=0.3)
    keep = crown.live_neurons(relaxation, 3)
    for j, k in enumerate(keep):
        dead = np.setdiff1d(np.arange(12), k)
        assert np.all(relaxation.upper[j][:, dead] <= 0) and np.all(relaxation.split[j][:, dead] == 0)
        assert np.all(np.isin(np.flatnonzero(np.any(relaxation.split[j] != 0, axis=0)), k))
    assert sum(k.size for k in keep) < 36  # the case is exercised
    region = crown.Region(lower, upper)
    objective = crown.Objective(rng.normal(size=(2, 3)), np.zeros((2, 4)), np.zeros(2))
    params = crown.initial_parameters(relaxation, 1, 3, region, with_beta=True)
    params.weights = crown.uniform_weights(batch, 1, objective)
    settings = crown.OptimiseSettings(iterations=25, stop_above=None, restrict=True)
    value, best, p = crown.optimise(chain, region, relaxation, objective, params, settings)
    assert p.nu == [] and p.vertex.shape == (batch, 1, 4)
    for j, k in enumerate(keep):  # removed neurons' multipliers are zero
        dead = np.setdiff1d(np.arange(12), k)
        assert np.all(best.beta[j][:, :, dead] == 0)
    again = crown.bound(chain, region, relaxation, objective, best).value
    np.testing.assert_allclose(again, value, rtol=1e-9, atol=1e-9)
    start = crown.bound(chain, region, relaxation, objective, params).value
    assert np.all(value >= start - 1e-9)  # never below where it started
    for b in range(batch):
        x, y, _ = _constrained_samples(rng, chain, lower, upper, relaxation, b)
        if x.shape[0]:
            values = y @ objective.out_rows.T
            assert np.all(values @ best.weights[b, 0] >= value[b, 0] - 1e-9)  # the rows combined by the weights returned
    # a restricted pass with random parameters is the whole pass with the removed multipliers zeroed
    part_chain, part = crown.restricted(chain, relaxation, keep, 3)
    alpha = [rng.random((batch, 2, 12)) for _ in range(3)]
    beta = [rng.random((batch, 2, 12, 2)) for _ in range(3)]
    for j, k in enumerate(keep):
        beta[j][:, :, np.setdiff1d(np.arange(12), k)] = 0.0
    mu, const = rng.normal(size=(batch, 2, 3)), rng.normal(size=(batch, 2))
    whole = crown.backward(chain, region, relaxation, mu, const, None, None, alpha, beta)
    restricted = crown.backward(part_chain, region, part, mu, const, None, None,
                                [a[:, :, k] for a, k in zip(alpha, keep)], [b[:, :, k] for b, k in zip(beta, keep)])
    np.testing.assert_allclose(restricted.value, whole.value, rtol=1e-12, atol=1e-12)


def test_a_restricted_ascent_through_a_layer_with_no_neuron_left():
    """A hidden layer inactive in every sub-problem leaves a chain with a layer of width zero: the
    network is constant there, and the restricted ascent gives the whole one's bound."""
    from reluverify.network import ReluChain

    rng = np.random.default_rng(1)
    chain = random_chain(rng, [4, 8, 8, 8, 3])
    chain = ReluChain(chain.weights, (chain.biases[0], chain.biases[1] - 100.0, chain.biases[2], chain.biases[3]))
    lower = rng.uniform(-1.0, 0.0, (2, 4))
    upper = lower + 0.5
    relaxation = _relaxation(rng, chain, lower, upper, split_fraction=0.0)
    assert crown.live_neurons(relaxation, 3)[1].size == 0
    region = crown.Region(lower, upper)
    objective = crown.Objective(rng.normal(size=(2, 3)), np.zeros((2, 4)), np.zeros(2))
    params = crown.initial_parameters(relaxation, 1, 3, region, with_beta=True)
    params.weights = crown.uniform_weights(2, 1, objective)
    restricted, best, _ = crown.optimise(chain, region, relaxation, objective, params,
                                         crown.OptimiseSettings(iterations=5, restrict=True))
    whole, _, _ = crown.optimise(chain, region, relaxation, objective, params, crown.OptimiseSettings(iterations=5))
    np.testing.assert_allclose(restricted, whole, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(crown.bound(chain, region, relaxation, objective, best).value, restricted, rtol=1e-9, atol=1e-9)
    y = chain.evaluate(rng.uniform(lower[0], upper[0], (100, 4)))
    assert np.allclose(y, y[0])  # constant: the bound is the value itself
