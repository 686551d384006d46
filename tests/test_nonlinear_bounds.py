"""Bounds over general DAGs contain every sampled value: nodes, rows, clamped domains; gradients; merging."""

from __future__ import annotations

import numpy as np
import pytest
from test_nonlinear_networks import random_dag, tiny_sru

from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.solver.nonlinear.bounds import Layout, linearised_row_bounds, node_bounds, row_bounds
from reluverify.solver.nonlinear.gradient import input_gradient
from reluverify.solver.nonlinear.problem import build_problem, merge


def _boxes(rng: np.random.Generator, count: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes mixing wide, tiny and degenerate (width 0) dimensions."""
    centre = rng.normal(0, 1.0, (count, n))
    width = rng.choice([0.0, 1e-9, 1e-3, 0.1, 1.0, 4.0], size=(count, n))
    return centre - 0.5 * width, centre + 0.5 * width


def _samples(rng: np.random.Generator, lower: np.ndarray, upper: np.ndarray, per: int) -> np.ndarray:
    """(B, per, n): uniform points and random vertices of every box."""
    t = rng.random((lower.shape[0], per, lower.shape[1]))
    t[:, : per // 4] = rng.integers(0, 2, size=(lower.shape[0], per // 4, lower.shape[1]))
    return np.clip(lower[:, None, :] + t * (upper - lower)[:, None, :], lower[:, None, :], upper[:, None, :])


def _check_network(rng, net, boxes=12, per=300, rounds=0):
    lower, upper = _boxes(rng, boxes, net.input_size)
    bounds = node_bounds(net, lower, upper, rounds=rounds)
    assert not bounds.empty.any()
    x = _samples(rng, lower, upper, per)
    values = net.evaluate_all(x.reshape(-1, net.input_size))
    for k, value in enumerate(values):
        v = value.reshape(boxes, per, -1)
        assert np.all(bounds.lower[k][:, None, :] <= v), f"node {k} below its lower bound"
        assert np.all(v <= bounds.upper[k][:, None, :]), f"node {k} above its upper bound"
    width = net.input_size + net.output_size
    rows = rng.normal(0, 1, (5, width))
    rhs = rng.normal(0, 1, 5)
    full = np.concatenate([x, values[-1].reshape(boxes, per, -1)], axis=2)
    actual = full @ rows.T - rhs  # (B, per, R)
    for rb in (row_bounds(net, bounds, lower, upper, rows, rhs),
               linearised_row_bounds(net, bounds, lower, upper, rows, rhs, rounds=2)):
        assert np.all(rb.lower[:, None, :] <= actual)
        linear = np.einsum("brn,bpn->bpr", rb.coef, x) + rb.const[:, None, :]
        assert np.all(linear <= actual + 1e-9 * (1 + np.abs(actual)))  # the linear bound holds pointwise
    return bounds


@pytest.mark.parametrize("seed", range(12))
def test_bounds_contain_sampled_values_on_random_dags(seed):
    rng = np.random.default_rng(seed)
    net = random_dag(rng, inputs=int(rng.integers(1, 5)), width=int(rng.integers(2, 5)), layers=int(rng.integers(2, 7)))
    _check_network(rng, net, rounds=seed % 2)


@pytest.mark.parametrize("scale", [6.0, 25.0])
def test_bounds_with_saturated_sigmoids(scale):
    rng = np.random.default_rng(int(scale))
    net = random_dag(rng, inputs=3, width=3, layers=5, scale=scale, kinds=("sigmoid", "tanh"))
    _check_network(rng, net, rounds=1)


def test_bounds_on_a_tiny_sru_and_their_tightness():
    rng = np.random.default_rng(5)
    net = tiny_sru(rng, steps=3, features=1, hidden=2)
    bounds = _check_network(rng, net, rounds=1)
    # on a point box (width 0) every bound is the value itself, up to the safety margins
    x = rng.random((1, net.input_size))
    point = node_bounds(net, x, x)
    for k, value in enumerate(net.evaluate_all(x)):
        assert np.allclose(point.lower[k], value, atol=1e-8) and np.allclose(point.upper[k], value, atol=1e-8)
    assert bounds.relaxations  # sigmoids and products were relaxed


def test_symbolic_bounds_are_at_least_as_tight_as_intervals():
    rng = np.random.default_rng(6)
    net = tiny_sru(rng, steps=4, features=2, hidden=3)
    lower = rng.random((4, net.input_size)) * 0.5
    upper = lower + 0.2
    interval = node_bounds(net, lower, upper, symbolic=False)
    symbolic = node_bounds(net, lower, upper, rounds=1)
    for k in range(len(net.nodes)):
        assert np.all(symbolic.lower[k] >= interval.lower[k] - 1e-9)
        assert np.all(symbolic.upper[k] <= interval.upper[k] + 1e-9)
    assert sum(float((interval.upper[k] - interval.lower[k]).sum() - (symbolic.upper[k] - symbolic.lower[k]).sum())
               for k in range(len(net.nodes))) > 0.1


def test_clamped_domains_contain_the_points_that_respect_the_clamps():
    rng = np.random.default_rng(7)
    net = tiny_sru(rng, steps=2, features=1, hidden=2)
    layout = Layout(net)
    lower, upper = np.zeros((6, 2)), np.ones((6, 2))
    free = node_bounds(net, lower, upper, layout)
    flat_lo, flat_hi = free.flat(layout)
    # clamp every relaxed value to a random sub-interval of its bounds
    cut = flat_lo + rng.random(flat_lo.shape) * (flat_hi - flat_lo)
    known_lo = np.where(rng.random(flat_lo.shape) < 0.3, cut, -np.inf)
    known_hi = np.where(rng.random(flat_lo.shape) < 0.3, np.maximum(cut, known_lo) + 0.2, np.inf)
    clamped = node_bounds(net, lower, upper, layout, known_lo, known_hi, rounds=1)
    x = rng.random((6, 4000, 2))
    values = net.evaluate_all(x.reshape(-1, 2))
    relaxed = np.concatenate([values[k] for k in layout.nodes], axis=1).reshape(6, 4000, -1)
    respects = np.all((relaxed >= known_lo[:, None, :]) & (relaxed <= known_hi[:, None, :]), axis=2)
    for b in range(6):
        if clamped.empty[b]:
            assert not respects[b].any(), "an empty domain holds a point"
            continue
        for k, value in enumerate(values):
            v = value.reshape(6, 4000, -1)[b][respects[b]]
            assert np.all(clamped.lower[k][b] <= v) and np.all(v <= clamped.upper[k][b])


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(8)
    for _ in range(5):
        net = random_dag(rng, inputs=3, width=3, layers=5, kinds=("sigmoid", "tanh"))
        x = rng.normal(0, 1, (4, 3))
        cot = rng.normal(0, 1, (4, net.output_size))
        grad = input_gradient(net, net.evaluate_all(x), cot)
        eps = 1e-6
        for j in range(3):
            step = np.zeros(3)
            step[j] = eps
            numeric = ((net.evaluate(x + step) - net.evaluate(x - step)) * cot).sum(axis=1) / (2 * eps)
            assert np.allclose(grad[:, j], numeric, atol=1e-5)


def test_merge_puts_copies_side_by_side_and_ignores_auxiliaries():
    rng = np.random.default_rng(9)
    a, b = tiny_sru(rng), random_dag(rng, inputs=2, outputs=2)
    n = a.input_size + b.input_size + 1  # one auxiliary variable
    width = n + a.output_size + b.output_size
    disjunct = Disjunct(np.zeros(n), np.ones(n), LinearConstraints(np.zeros((1, width)), np.zeros(1)))
    query = Query((a, b), np.zeros(n), np.ones(n), (disjunct,), num_auxiliary=1)
    merged = merge(query)
    v = rng.random((7, n))
    assert np.allclose(merged.evaluate(v), query.outputs(v))
    assert build_problem(query).num_inputs == n
    lower, upper = np.zeros((1, n)), np.ones((1, n))
    bounds = node_bounds(merged, lower, upper)
    assert np.all(bounds.lower[-1] <= query.outputs(v)) and np.all(query.outputs(v) <= bounds.upper[-1])
    single = Query((a,), np.zeros(2), np.ones(2), (Disjunct(np.zeros(2), np.ones(2), LinearConstraints(np.zeros((1, 4)), np.zeros(1))),))
    assert merge(single) is a
