"""Linear relaxations of the nonlinear IR operations on intervals: pure, vectorised functions.

:data:`BOUNDS` has one entry per activation kind of :data:`reluverify.elementwise.FUNCTIONS`: its image
of an interval, its lines there and where a relaxation split cuts the interval. ReLU, sigmoid and tanh
are relaxed here; the functions that are convex or concave on an interval (exp, log, sqrt, reciprocal,
square) in :mod:`.curvature`, sin and cos in :mod:`.periodic`, sign and floor in :mod:`.steps`, with the
shared line type and floating-point margins of :mod:`.lines`. A new kind is one entry here and one
relaxation module function, with a sampling test.

For a scalar activation ``f`` on ``z in [l, u]`` a :class:`Relaxation` gives two lines with

    lower_slope * z + lower_offset  <=  f(z)  <=  upper_slope * z + upper_offset   for all z in [l, u];

for the product ``x * y`` on ``[lx, ux] x [ly, uy]`` a :class:`ProductRelaxation` gives two planes
``a x + b y + c`` below and above it (McCormick). Every argument is an array and all of them
broadcast together; every result has their broadcast shape.

**Sigmoid and tanh** are increasing, convex on ``z <= 0``, concave on ``z >= 0`` and point-symmetric
about ``(0, f(0))``. The upper line is

* concave interval (``l >= 0``): the tangent at the midpoint;
* otherwise, when the chord from ``(l, f(l))`` to ``(u, f(u))`` lies above ``f`` on ``[l, u]`` --
  exactly when ``f'(u) >= chord slope`` (always on a convex interval) -- the chord;
* otherwise (a mixed interval whose chord cuts ``f``): the tangent at the point ``d in [0, u]``
  whose tangent passes through ``(l, f(l))`` (CROWN / DeepPoly), found by bisection and rounded
  towards ``u``, where the tangent passes *above* ``(l, f(l))`` and is still sound.

The lower line is the upper line of the reflected function on ``[-u, -l]``
(``f(z) = 2 f(0) - f(-z)``), so the two cases mirror each other exactly.

**Soundness in floating point.** Each line is moved away from the function by a margin of
``SAFETY * (1 + |offset| + |slope| * max(|l|, |u|) + width * max f')``, far above the float64
round-off of computing it (about 1e-16 relative) and far below anything a proof needs.
Intervals narrower than ``1e-10 * (1 + |l| + |u|)`` (width 0 included) and intervals with an
infinite end get constant bounds ``f(l)``, ``f(u)`` (``f`` is increasing), which are exact in
the limit and need no division. Saturated inputs (``|z|`` in the hundreds) need no special
case: the overflow-free sigmoid gives exact 0 and 1 there, with derivative 0.

**Products** use McCormick's envelope: the lower planes ``ly x + lx y - lx ly`` and
``uy x + ux y - ux uy``, the upper planes ``uy x + lx y - lx uy`` and ``ly x + ux y - ux ly``.
Any convex combination of the two lower (upper) planes is again a lower (upper) bound;
``weight = 0.5`` (the default) halves the largest gap of either plane alone. With an infinite
end the relaxation is the constant ``-inf`` / ``+inf`` (slopes 0): sound and never used to prune.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import numpy as np

from reluverify.elementwise import FUNCTIONS
from reluverify.solver.bounds.relaxation import chord, lower_slope
from reluverify.solver.nonlinear import curvature, periodic, steps
from reluverify.solver.nonlinear.lines import NARROW, SAFETY, Relaxation, margin as _margin

__all__ = ["NARROW", "SAFETY", "Relaxation"]

BISECTION_STEPS = 40


class ProductRelaxation(NamedTuple):
    """``lx_*x + ly_*y + c_`` below (``lower_*``) and above (``upper_*``) ``x * y`` on the box."""

    lower_x: np.ndarray
    lower_y: np.ndarray
    lower_offset: np.ndarray
    upper_x: np.ndarray
    upper_y: np.ndarray
    upper_offset: np.ndarray


# ------------------------------------------------------------------ the functions
def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, overflow-free (the IR's own formula)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def sigmoid_slope(z: np.ndarray) -> np.ndarray:
    s = sigmoid(z)
    return s * (1.0 - s)


def tanh_slope(z: np.ndarray) -> np.ndarray:
    t = np.tanh(np.asarray(z, dtype=np.float64))
    return 1.0 - t * t


class _SShaped(NamedTuple):
    f: Callable[[np.ndarray], np.ndarray]
    slope: Callable[[np.ndarray], np.ndarray]
    centre: float  # f(0)
    max_slope: float  # f'(0)


_S_SHAPED = {
    "sigmoid": _SShaped(sigmoid, sigmoid_slope, 0.5, 0.25),
    "tanh": _SShaped(np.tanh, tanh_slope, 0.0, 1.0),
}
S_SHAPED = tuple(_S_SHAPED)
"""The S-shaped kinds, whose tangent case analysis can be planned once per interval (:func:`s_shaped_plan`)."""


def activation_value(kind: str, z: np.ndarray) -> np.ndarray:
    return FUNCTIONS[kind].value(np.asarray(z, dtype=np.float64))


# ------------------------------------------------------------------ intervals
def activation_interval(kind: str, l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image of ``[l, u]`` under ``kind`` (exact, or wider where it leaves the function's domain)."""
    return BOUNDS[kind].interval(l, u)


def _increasing(kind: str, l, u):
    return activation_value(kind, l), activation_value(kind, u)


def product_interval(lx, ux, ly, uy) -> tuple[np.ndarray, np.ndarray]:
    """Exact range of ``x * y`` on the box (the extreme of four corners); inf * 0 counts as 0."""
    corners = np.stack([_times(lx, ly), _times(lx, uy), _times(ux, ly), _times(ux, uy)])
    return corners.min(axis=0), corners.max(axis=0)


def _times(a, b):
    with np.errstate(invalid="ignore"):
        out = np.multiply(a, b)
    return np.where(np.isnan(out), 0.0, out)


# ------------------------------------------------------------------ S-shaped functions
class _UpperPlan(NamedTuple):
    """Which upper line each interval gets: the chord, or a tangent touching in ``[low, high]``."""

    use_chord: np.ndarray
    chord_slope: np.ndarray
    chord_offset: np.ndarray
    low: np.ndarray
    high: np.ndarray
    default: np.ndarray


def _upper_plan(fn: _SShaped, l: np.ndarray, u: np.ndarray) -> _UpperPlan:
    """The upper-line case of every interval (finite, ``l < u``); see the module docstring."""
    fl, fu = fn.f(l), fn.f(u)
    chord = (fu - fl) / (u - l)
    concave = l >= 0
    cut = (l < 0) & (u > 0) & (fn.slope(u) < chord)  # the chord crosses f: tangent through (l, f(l))
    low = np.where(concave, l, u)
    if np.any(cut):
        lc, uc, flc = l[cut], u[cut], fl[cut]
        lo, hi = np.zeros_like(uc), uc.copy()  # phi(lo) <= 0 <= phi(hi); phi increases on [0, u]
        for _ in range(BISECTION_STEPS):
            d = 0.5 * (lo + hi)
            above = fn.f(d) + fn.slope(d) * (lc - d) >= flc
            hi = np.where(above, d, hi)
            lo = np.where(above, lo, d)
        low[cut] = hi  # every tangent point in [d, u] is sound
    default = np.where(concave, 0.5 * (l + u), low)
    return _UpperPlan(~concave & ~cut, chord, fl - chord * l, low, u, default)


def _upper_apply(fn: _SShaped, plan: _UpperPlan, point: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Slope and offset of the planned upper lines; tangents touch at ``point`` moved into their range."""
    touch = plan.default if point is None else np.clip(point, plan.low, plan.high)
    value = fn.f(touch)
    slope = fn.slope(touch)
    offset = value - slope * touch
    return np.where(plan.use_chord, plan.chord_slope, slope), np.where(plan.use_chord, plan.chord_offset, offset)


class SShapedPlan(NamedTuple):
    """The case analysis of :func:`s_shaped_relaxation` for fixed intervals, reusable for many points."""

    kind: str
    lower_end: np.ndarray
    upper_end: np.ndarray
    narrow: np.ndarray
    upper: _UpperPlan
    reflected: _UpperPlan  # the upper plan of the reflected function on [-u, -l]


def s_shaped_plan(kind: str, l: np.ndarray, u: np.ndarray) -> SShapedPlan:
    fn = _S_SHAPED[kind]
    l, u = np.broadcast_arrays(np.asarray(l, dtype=np.float64), np.asarray(u, dtype=np.float64))
    finite = np.isfinite(l) & np.isfinite(u)
    with np.errstate(invalid="ignore"):
        narrow = ~finite | (u - l <= NARROW * (1.0 + np.abs(l) + np.abs(u)))
    safe_l, safe_u = np.where(narrow, -1.0, l), np.where(narrow, 1.0, u)  # placeholders, overwritten later
    return SShapedPlan(kind, l, u, narrow, _upper_plan(fn, safe_l, safe_u), _upper_plan(fn, -safe_u, -safe_l))


def s_shaped_lines(plan: SShapedPlan, lower_point: np.ndarray | None = None, upper_point: np.ndarray | None = None) -> Relaxation:
    """The relaxation lines of a plan, tangents touching at the given points (broadcast with the plan)."""
    fn = _S_SHAPED[plan.kind]
    l, u, narrow = plan.lower_end, plan.upper_end, plan.narrow
    hi_slope, hi_off = _upper_apply(fn, plan.upper, upper_point)
    mirrored = None if lower_point is None else -np.asarray(lower_point, dtype=np.float64)
    reflected_slope, reflected_off = _upper_apply(fn, plan.reflected, mirrored)
    lo_slope, lo_off = reflected_slope, 2.0 * fn.centre - reflected_off
    # narrow or unbounded intervals: constant bounds (f is increasing)
    lo_slope, hi_slope = np.where(narrow, 0.0, lo_slope), np.where(narrow, 0.0, hi_slope)
    lo_off, hi_off = np.where(narrow, fn.f(l), lo_off), np.where(narrow, fn.f(u), hi_off)
    finite = ~narrow | (np.isfinite(l) & np.isfinite(u))
    reach = np.where(finite, np.maximum(np.abs(l), np.abs(u)), 0.0)
    width = np.where(finite, u - l, 0.0) * fn.max_slope
    lo_off = lo_off - _margin(lo_slope, lo_off, reach, width)
    hi_off = hi_off + _margin(hi_slope, hi_off, reach, width)
    return Relaxation(lo_slope, lo_off, hi_slope, hi_off)


def s_shaped_relaxation(
    kind: str, l: np.ndarray, u: np.ndarray, lower_point: np.ndarray | None = None, upper_point: np.ndarray | None = None
) -> Relaxation:
    """Tangent/chord relaxation of ``sigmoid`` or ``tanh`` on ``[l, u]`` (see the module docstring).

    ``lower_point`` / ``upper_point`` (optional, broadcast with ``l``) choose where the lower /
    upper line touches ``f`` when it is a tangent; every choice is sound. The case analysis
    (and its bisection) runs on the shape of ``l`` and ``u`` only (:func:`s_shaped_plan`), the
    points are applied after (:func:`s_shaped_lines`).
    """
    return s_shaped_lines(s_shaped_plan(kind, l, u), lower_point, upper_point)


# ------------------------------------------------------------------ ReLU
def relu_relaxation(l: np.ndarray, u: np.ndarray, lower_point: np.ndarray | None = None) -> Relaxation:
    """The triangle relaxation (the lines of :mod:`reluverify.solver.bounds.relaxation`): the chord above;
    below ``alpha z``, ``alpha`` in {0, 1}; open intervals and the safety margin handled here.

    ``alpha = 1`` where ``lower_point > 0`` when it is given, else where ``u > -l`` (the smaller area).
    """
    l, u = np.broadcast_arrays(np.asarray(l, dtype=np.float64), np.asarray(u, dtype=np.float64))
    if lower_point is not None:
        l, u, lower_point = np.broadcast_arrays(l, u, np.asarray(lower_point, dtype=np.float64))
    active, inactive = l >= 0, u <= 0
    unstable = ~active & ~inactive
    with np.errstate(invalid="ignore", divide="ignore"):  # the chord of an open interval is replaced below
        hi_slope, hi_off = chord(l, u)
    if lower_point is None:
        lo_slope = lower_slope(l, u)
    else:
        lo_slope = np.where(active, 1.0, np.where(unstable & (lower_point > 0), 1.0, 0.0))
    lo_off = np.zeros_like(l)
    # an infinite end: relu(z) <= z - l (l finite) or <= max(u, 0) (u finite) or no finite line
    open_end = unstable & ~(np.isfinite(l) & np.isfinite(u))
    if np.any(open_end):
        hi_slope = np.where(open_end & np.isfinite(l), 1.0, np.where(open_end, 0.0, hi_slope))
        fallback = np.where(np.isfinite(l), -l, np.where(np.isfinite(u), np.maximum(u, 0.0), np.inf))
        hi_off = np.where(open_end, fallback, hi_off)
        lo_slope = np.where(open_end, 0.0, lo_slope)
    reach = np.where(np.isfinite(l) & np.isfinite(u), np.maximum(np.abs(l), np.abs(u)), 0.0)
    hi_off = hi_off + np.where(unstable, _margin(hi_slope, hi_off, reach), 0.0)
    return Relaxation(lo_slope, lo_off, hi_slope, hi_off)


def activation_relaxation(kind: str, l, u, lower_point=None, upper_point=None) -> Relaxation:
    """The relaxation of ``kind`` on ``[l, u]``; the points (optional) steer the choice among sound lines."""
    return BOUNDS[kind].relaxation(l, u, lower_point, upper_point)


def split_point(kind: str, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Where a relaxation split cuts the input interval ``[l, u]`` of a ``kind`` activation."""
    return BOUNDS[kind].split(l, u)


def _middle(l, u):
    return 0.5 * (l + u)


def _at_zero(l, u):
    return np.where((l < 0) & (u > 0), 0.0, 0.5 * (l + u))


class ActivationBounds(NamedTuple):
    """What the bounds need of an activation kind: its image of an interval, its lines there, and
    where a relaxation split cuts the interval."""

    interval: Callable
    relaxation: Callable
    split: Callable


BOUNDS: dict[str, ActivationBounds] = {
    "relu": ActivationBounds(partial(_increasing, "relu"), lambda l, u, lp=None, up=None: relu_relaxation(l, u, lp), _at_zero),
    **{kind: ActivationBounds(partial(_increasing, kind), partial(s_shaped_relaxation, kind), _middle) for kind in _S_SHAPED},
    **{kind: ActivationBounds(partial(curvature.interval, kind), partial(curvature.relaxation, kind), _middle)
       for kind in curvature.KINDS},
    **{kind: ActivationBounds(partial(periodic.interval, kind), partial(periodic.relaxation, kind), _middle)
       for kind in periodic.KINDS},
    **{kind: ActivationBounds(partial(steps.interval, kind), partial(steps.relaxation, kind), partial(steps.split_point, kind))
       for kind in steps.KINDS},
}
"""The bounds of every activation kind of :data:`reluverify.elementwise.FUNCTIONS`, one entry each."""


# ------------------------------------------------------------------ products
def product_relaxation(lx, ux, ly, uy, lower_weight=0.5, upper_weight=0.5) -> ProductRelaxation:
    """McCormick planes for ``x * y`` on ``[lx, ux] x [ly, uy]``.

    ``lower_weight`` (in [0, 1], broadcast) is the share of the plane ``ly x + lx y - lx ly`` in the
    lower plane (the rest is ``uy x + ux y - ux uy``); ``upper_weight`` the share of
    ``uy x + lx y - lx uy`` in the upper one (the rest ``ly x + ux y - ux ly``).
    """
    lx, ux, ly, uy, w, w_up = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (lx, ux, ly, uy, lower_weight, upper_weight))
    )
    w, v = np.clip(w, 0.0, 1.0), 1.0 - np.clip(w, 0.0, 1.0)
    w_up = np.clip(w_up, 0.0, 1.0)
    finite = np.isfinite(lx) & np.isfinite(ux) & np.isfinite(ly) & np.isfinite(uy)
    fx = np.where(finite, lx, 0.0), np.where(finite, ux, 0.0)
    fy = np.where(finite, ly, 0.0), np.where(finite, uy, 0.0)
    (a, b), (c, d) = fx, fy  # x in [a, b], y in [c, d]
    lower_x = w * c + v * d
    lower_y = w * a + v * b
    lower_off = -(w * a * c + v * b * d)
    upper_x = w_up * d + (1.0 - w_up) * c
    upper_y = w_up * a + (1.0 - w_up) * b
    upper_off = -(w_up * a * d + (1.0 - w_up) * b * c)
    reach_x = np.maximum(np.abs(a), np.abs(b))
    reach_y = np.maximum(np.abs(c), np.abs(d))

    def margin(ax, ay, off):
        return SAFETY * (1.0 + np.abs(off) + np.abs(ax) * reach_x + np.abs(ay) * reach_y)

    lower_off = np.where(finite, lower_off - margin(lower_x, lower_y, lower_off), -np.inf)
    upper_off = np.where(finite, upper_off + margin(upper_x, upper_y, upper_off), np.inf)
    zero = np.zeros_like(lx)
    return ProductRelaxation(
        np.where(finite, lower_x, zero),
        np.where(finite, lower_y, zero),
        lower_off,
        np.where(finite, upper_x, zero),
        np.where(finite, upper_y, zero),
        upper_off,
    )
