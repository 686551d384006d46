"""Soundness by sampling of the relaxations of every activation kind beyond ReLU, sigmoid and tanh.

For each kind of :data:`reluverify.elementwise.FUNCTIONS` the interval and the lines of
:mod:`reluverify.solver.nonlinear.relaxations` must contain the function's value at every sampled
point of random intervals: wide and tiny ones, width 0, huge ends, ends at the edges of the
function's domain (0 for log, sqrt, reciprocal, sign; integers for floor; the peaks of sin and cos),
intervals that leave the domain, and with tangent points anywhere (inside, outside, NaN).
"""

from __future__ import annotations

import numpy as np
import pytest

from reluverify.elementwise import FUNCTIONS
from reluverify.solver.nonlinear.relaxations import (
    BOUNDS,
    activation_interval,
    activation_relaxation,
    split_point,
)

NEW_KINDS = ("sin", "cos", "exp", "log", "sqrt", "reciprocal", "square", "sign", "floor")
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 2.0, 0.5 * np.pi, -0.5 * np.pi, np.pi, 2 * np.pi, 1e-300, -1e-300, 3.0, -7.0])


def _intervals(rng, count):
    scale = rng.choice([1e-6, 1e-2, 0.3, 1.0, 3.0, 10.0, 100.0, 700.0, 1e5], size=count)
    centre = rng.normal(0.0, 1.0, count) * scale
    width = np.abs(rng.normal(0.0, 1.0, count)) * scale * rng.choice([0.0, 1e-13, 1e-8, 1e-3, 0.2, 1.0, 4.0], size=count)
    lower = centre - 0.5 * width
    upper = lower + width
    # ends exactly at special points: 0, integers, the peaks of sin/cos
    pick = rng.random(count) < 0.3
    lower = np.where(pick, rng.choice(SPECIAL, size=count), lower)
    upper = np.where(pick, np.maximum(lower, lower + np.abs(rng.normal(0, 2, count))), upper)
    pick = rng.random(count) < 0.15
    upper = np.where(pick, rng.choice(SPECIAL, size=count), upper)
    lower = np.where(pick, np.minimum(upper, upper - np.abs(rng.normal(0, 2, count))), lower)
    return lower, upper


def _points(rng, lower, upper, per):
    t = rng.random((per, lower.shape[0]))
    t[0], t[1], t[2] = 0.0, 1.0, 0.5
    points = np.clip(lower + t * (upper - lower), lower, upper)
    # the special points that fall inside each interval
    for s in SPECIAL:
        inside = (lower <= s) & (s <= upper)
        points = np.concatenate([points, np.where(inside, s, lower)[None]])
    points = np.concatenate([points, np.clip(np.round(points[3:8]), lower, upper)])  # integers inside
    return points


def _check(kind, lower, upper, relax, points):
    values = FUNCTIONS[kind].value(points)
    defined = np.isfinite(values)
    lo, hi = activation_interval(kind, lower, upper)
    with np.errstate(invalid="ignore", over="ignore"):
        below = relax.lower_slope * points + relax.lower_offset
        above = relax.upper_slope * points + relax.upper_offset
    for name, ok in (("interval low", lo <= values), ("interval high", values <= hi),
                     ("lower line", np.where(np.isnan(below), relax.lower_offset == -np.inf, below <= values)),
                     ("upper line", np.where(np.isnan(above), relax.upper_offset == np.inf, values <= above))):
        bad = defined & ~ok
        if np.any(bad):
            p, i = np.argwhere(bad)[0]
            raise AssertionError(f"{kind} {name}: z={points[p, i]!r} in [{lower[i]!r}, {upper[i]!r}] "
                                 f"f={values[p, i]!r} interval=[{lo[i]!r}, {hi[i]!r}] "
                                 f"lines {relax.lower_slope[i]!r} z + {relax.lower_offset[i]!r} .. "
                                 f"{relax.upper_slope[i]!r} z + {relax.upper_offset[i]!r}")
    assert not np.any(np.isnan(np.stack(relax))), f"{kind}: NaN in a relaxation"


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_relaxation_contains_the_function(kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    for _ in range(20):
        lower, upper = _intervals(rng, 400)
        points = _points(rng, lower, upper, 12)
        _check(kind, lower, upper, activation_relaxation(kind, lower, upper), points)


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_every_tangent_point_is_sound(kind):
    rng = np.random.default_rng(7 + sum(map(ord, kind)))
    for _ in range(10):
        lower, upper = _intervals(rng, 300)
        points = _points(rng, lower, upper, 8)
        for touch in (lower, upper, 0.5 * (lower + upper), lower - 5.0, upper + 5.0,
                      lower + rng.random(300) * (upper - lower), np.full(300, np.nan)):
            relax = activation_relaxation(kind, lower, upper, touch, touch[::-1].copy())
            _check(kind, lower, upper, relax, points)


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_open_and_infinite_intervals(kind):
    lower = np.array([-np.inf, -np.inf, 0.0, -5.0, 3.0, 1e308, -1e308])
    upper = np.array([np.inf, 0.0, np.inf, 1e308, np.inf, 1e308, -1e308])
    relax = activation_relaxation(kind, lower, upper)
    assert not np.any(np.isnan(np.stack(relax)))
    finite = np.isfinite(lower) & np.isfinite(upper)
    points = np.where(finite, lower, np.where(np.isfinite(lower), lower + 1.0, np.where(np.isfinite(upper), upper - 1.0, 0.0)))
    _check(kind, lower, upper, relax, points[None])


def test_lines_are_tight_where_the_function_is_tame():
    """Not only sound: on a short interval inside the domain the lines are close to the function."""
    lower, upper = np.array([0.2, 0.5, 1.0, 1.0, 2.3]), np.array([0.3, 0.6, 1.1, 1.1, 2.4])
    for kind in ("sin", "cos", "exp", "log", "sqrt", "reciprocal", "square"):
        relax = activation_relaxation(kind, lower, upper)
        middle = 0.5 * (lower + upper)
        gap = (relax.upper_slope - relax.lower_slope) * middle + relax.upper_offset - relax.lower_offset
        f = FUNCTIONS[kind].value
        z = np.linspace(lower, upper, 201)
        h = 1e-4
        curvature = np.abs((f(z + h) - 2 * f(z) + f(z - h)) / h**2).max(axis=0)
        assert np.all(gap <= 1.05 * curvature * (upper - lower) ** 2 / 4 + 1e-9), (kind, gap)


def test_step_functions_are_exact_after_a_split():
    lower, upper = np.array([-2.0, 0.3]), np.array([3.0, 4.7])
    assert split_point("sign", lower, upper).tolist() == [0.0, 2.5]
    cut = split_point("floor", np.array([0.3, 1.5, 2.2]), np.array([4.7, 1.9, 3.0]))
    assert cut[0] == 2.0 or cut[0] == 3.0
    assert cut[1] == pytest.approx(1.7)
    assert cut[2] == pytest.approx(2.6)  # the integer 3 is an end, not inside: the middle
    relax = activation_relaxation("sign", np.array([0.5, -3.0]), np.array([2.0, -1.0]))
    assert relax.lower_slope.tolist() == [0.0, 0.0] and relax.upper_slope.tolist() == [0.0, 0.0]
    assert relax.lower_offset[0] == pytest.approx(1.0) and relax.upper_offset[1] == pytest.approx(-1.0)


def test_every_kind_has_bounds_and_a_derivative():
    assert set(BOUNDS) == set(FUNCTIONS)
    z = np.linspace(0.1, 3.0, 7)
    for kind, f in FUNCTIONS.items():
        slope = f.derivative(z, f.value(z))
        assert slope.shape == z.shape
        if kind not in ("sign", "floor"):  # the step functions give a surrogate (see reluverify.elementwise)
            numeric = (f.value(z + 1e-6) - f.value(z - 1e-6)) / 2e-6
            assert np.allclose(slope, numeric, rtol=1e-4, atol=1e-6), kind
