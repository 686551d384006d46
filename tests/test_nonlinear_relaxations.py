"""Soundness by sampling of the linear relaxations of sigmoid, tanh, ReLU and products."""

from __future__ import annotations

import numpy as np
import pytest

from reluverify.solver.nonlinear.relaxations import (
    activation_interval,
    activation_relaxation,
    activation_value,
    product_interval,
    product_relaxation,
    s_shaped_plan,
    s_shaped_lines,
)

KINDS = ("sigmoid", "tanh", "relu")


def _intervals(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Intervals of every kind: wide, tiny, width 0, saturated, huge, one-sided and straddling 0."""
    scale = rng.choice([1e-3, 0.1, 1.0, 4.0, 30.0, 800.0, 1e6], size=count)
    centre = rng.normal(0.0, 1.0, count) * scale
    width = np.abs(rng.normal(0.0, 1.0, count)) * scale * rng.choice([0.0, 1e-14, 1e-9, 1e-4, 0.1, 1.0, 3.0], size=count)
    lower = centre - 0.5 * width
    return lower, lower + width


def _points(rng: np.random.Generator, lower: np.ndarray, upper: np.ndarray, per: int) -> np.ndarray:
    """``per`` points in every interval, its two ends included: (per, count)."""
    t = rng.random((per, lower.shape[0]))
    t[0], t[1] = 0.0, 1.0
    t[2] = 0.5
    return np.clip(lower + t * (upper - lower), lower, upper)


@pytest.mark.parametrize("kind", KINDS)
def test_activation_relaxation_contains_the_function(kind):
    rng = np.random.default_rng(11)
    for _ in range(5):
        lower, upper = _intervals(rng, 4000)
        relax = activation_relaxation(kind, lower, upper)
        z = _points(rng, lower, upper, 40)
        f = activation_value(kind, z)
        assert np.all(relax.lower_slope * z + relax.lower_offset <= f)
        assert np.all(relax.upper_slope * z + relax.upper_offset >= f)


@pytest.mark.parametrize("kind", KINDS)
def test_any_tangent_point_is_sound(kind):
    """The search chooses tangent points freely (re-linearisation); every choice must stay sound."""
    rng = np.random.default_rng(12)
    lower, upper = _intervals(rng, 3000)
    points = np.concatenate([lower[None] + (upper - lower)[None] * rng.uniform(-0.5, 1.5, (6, lower.size)),
                             rng.normal(0, 50, (2, lower.size))])
    relax = activation_relaxation(kind, lower[None], upper[None], points, points)
    z = _points(rng, lower, upper, 30)[:, None, :]
    f = activation_value(kind, z)
    assert np.all(relax.lower_slope[None] * z + relax.lower_offset[None] <= f)
    assert np.all(relax.upper_slope[None] * z + relax.upper_offset[None] >= f)


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_s_shaped_special_intervals(kind):
    f = lambda z: activation_value(kind, np.asarray(z, dtype=float))  # noqa: E731
    # width 0 is exact up to the safety margin; saturated and infinite ends stay finite and sound
    lower = np.array([0.3, -2.0, 700.0, -700.0, -np.inf, -np.inf, 5.0, -1e300])
    upper = np.array([0.3, -2.0, 800.0, -600.0, np.inf, 0.0, np.inf, 1e300])
    relax = activation_relaxation(kind, lower, upper)
    assert np.all(np.isfinite(relax.lower_offset)) and np.all(np.isfinite(relax.upper_offset))
    assert abs(relax.lower_offset[0] - f(0.3)) < 1e-10 and abs(relax.upper_offset[0] - f(0.3)) < 1e-10
    for z in (-1e308, -800.0, -650.0, 0.0, 750.0, 1e308):
        inside = (lower <= z) & (z <= upper)
        lo = relax.lower_slope * z + relax.lower_offset
        hi = relax.upper_slope * z + relax.upper_offset
        assert np.all(lo[inside] <= f(z)) and np.all(hi[inside] >= f(z))


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_s_shaped_lines_are_tight_where_they_should_be(kind):
    """Convex/concave intervals: the chord meets f at both ends; the tangent touches where asked."""
    f = lambda z: activation_value(kind, np.asarray(z, dtype=float))  # noqa: E731
    lower, upper = np.array([-3.0, 0.5]), np.array([-1.0, 2.0])
    relax = activation_relaxation(kind, lower, upper, lower_point=np.array([-2.5, 0.0]), upper_point=np.array([0.0, 1.5]))
    # convex interval: chord above, tangent at -2.5 below
    assert np.allclose(relax.upper_slope[0] * lower[0] + relax.upper_offset[0], f(lower[0]), atol=1e-9)
    assert np.allclose(relax.lower_slope[0] * -2.5 + relax.lower_offset[0], f(-2.5), atol=1e-9)
    # concave interval: tangent at 1.5 above, chord below
    assert np.allclose(relax.upper_slope[1] * 1.5 + relax.upper_offset[1], f(1.5), atol=1e-9)
    assert np.allclose(relax.lower_slope[1] * upper[1] + relax.lower_offset[1], f(upper[1]), atol=1e-9)
    # a mixed interval whose chord cuts f: the upper line passes (just) above (l, f(l))
    relax = activation_relaxation(kind, np.array([-1.0]), np.array([6.0]))
    assert 0 <= relax.upper_slope[0] * -1.0 + relax.upper_offset[0] - f(-1.0) < 1e-6


def test_plans_reuse_their_case_analysis():
    rng = np.random.default_rng(13)
    lower, upper = _intervals(rng, 500)
    plan = s_shaped_plan("sigmoid", lower, upper)
    points = rng.normal(0, 3, (4, 500))
    direct = activation_relaxation("sigmoid", lower, upper, points, points)
    via_plan = s_shaped_lines(plan, points, points)
    for a, b in zip(direct, via_plan):
        assert np.array_equal(a, b)


def test_intervals_contain_the_images():
    rng = np.random.default_rng(14)
    lower, upper = _intervals(rng, 3000)
    z = _points(rng, lower, upper, 20)
    for kind in KINDS:
        lo, hi = activation_interval(kind, lower, upper)
        f = activation_value(kind, z)
        assert np.all((lo <= f) & (f <= hi))
    lx, ux = _intervals(rng, 3000)
    ly, uy = _intervals(rng, 3000)
    prod = _points(rng, lx, ux, 20) * _points(rng, ly, uy, 20)
    lo, hi = product_interval(lx, ux, ly, uy)
    assert np.all((lo <= prod) & (prod <= hi))


def test_mccormick_contains_the_product():
    rng = np.random.default_rng(15)
    for _ in range(4):
        lx, ux = _intervals(rng, 3000)
        ly, uy = _intervals(rng, 3000)
        x = _points(rng, lx, ux, 25)
        y = _points(rng, ly, uy, 25)
        corners = rng.integers(0, 2, size=(2,) + x.shape).astype(bool)
        x[:5] = np.where(corners[0, :5], lx, ux)  # box corners, where the planes are exact
        y[:5] = np.where(corners[1, :5], ly, uy)
        for w_lo, w_hi in ((0.5, 0.5), (0.0, 1.0), (1.0, 0.0), (rng.random(3000), rng.random(3000))):
            relax = product_relaxation(lx, ux, ly, uy, w_lo, w_hi)
            assert np.all(relax.lower_x * x + relax.lower_y * y + relax.lower_offset <= x * y)
            assert np.all(relax.upper_x * x + relax.upper_y * y + relax.upper_offset >= x * y)


def test_mccormick_is_exact_on_a_fixed_factor_and_safe_with_infinite_ends():
    relax = product_relaxation(np.array([2.0]), np.array([2.0]), np.array([-1.0]), np.array([3.0]))
    for y in (-1.0, 0.0, 3.0):
        assert abs(relax.lower_x[0] * 2 + relax.lower_y[0] * y + relax.lower_offset[0] - 2 * y) < 1e-9
        assert abs(relax.upper_x[0] * 2 + relax.upper_y[0] * y + relax.upper_offset[0] - 2 * y) < 1e-9
    relax = product_relaxation(np.array([-np.inf]), np.array([1.0]), np.array([0.0]), np.array([1.0]))
    assert relax.lower_offset[0] == -np.inf and relax.upper_offset[0] == np.inf
    assert relax.lower_x[0] == relax.lower_y[0] == relax.upper_x[0] == relax.upper_y[0] == 0.0
