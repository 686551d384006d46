"""Relaxations of functions that are convex or concave on the interval: exp, log, sqrt, reciprocal, square.

On an interval where ``f`` is **convex** the chord from ``(l, f(l))`` to ``(u, f(u))`` lies above
``f`` and every tangent below it; where ``f`` is **concave** the other way round. So each
interval gets the chord on one side and a tangent on the other, touching ``f`` at a given point
(clipped into ``[l, u]``; the middle by default). Both are exact at their touching points and
every choice is sound.

=============  ==================  ======================================  ============================
kind           domain              shape                                   interval
=============  ==================  ======================================  ============================
exp            all z               convex, increasing                      ``[exp l, exp u]``
log            z > 0               concave, increasing                     ``[log l, log u]``
sqrt           z >= 0              concave, increasing                     ``[sqrt l, sqrt u]``
reciprocal     z != 0              convex on z > 0, concave on z < 0,      ``[1/u, 1/l]``
                                   decreasing on each side
square         all z               convex                                  ``[0 or min(l^2, u^2), max]``
=============  ==================  ======================================  ============================

**Outside the domain.** Where an interval reaches outside the function's domain (``l <= 0`` for
log, ``l < 0`` for sqrt, ``0`` in the interval for reciprocal), the file computes infinities or
NaN at some of its points. The bounds then give up on the side that is lost (log and sqrt: lower
``-inf``; reciprocal: both sides infinite): no finite bound is claimed there, so nothing is pruned
on the strength of a value the function does not have, and a NaN that a later operator turns
back into a number is still inside the bounds that follow (they are infinite on that side).

The floating-point margin of :mod:`~reluverify.solver.nonlinear.lines` uses ``extra = max |f| +
width * (the largest slope of the lines)``: ``|f|`` of these functions is largest at an end of a
convex or concave interval, and each line is evaluated at most a width away from where it was
computed.
"""

from __future__ import annotations

import numpy as np

from reluverify.elementwise import FUNCTIONS
from reluverify.solver.nonlinear.lines import (
    Relaxation,
    as_intervals,
    choose,
    chord_and_tangents,
    constant,
    finite_or_constant,
    narrow_or_open,
    reach_of,
    widened,
)


def _quiet(fn):
    def wrapped(*args):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return fn(*args)
    return wrapped


# ------------------------------------------------------------------ intervals
@_quiet
def _interval(kind: str, l: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if kind == "exp":  # exp(l) overflowing: the true value is above the largest float
        return np.minimum(np.exp(l), np.finfo(np.float64).max), np.exp(u)
    if kind == "log":
        inside = l > 0
        return np.where(inside, np.log(np.where(inside, l, 1.0)), -np.inf), np.where(u > 0, np.log(np.maximum(u, 1e-300)), np.inf)
    if kind == "sqrt":
        inside = l >= 0
        return np.where(inside, np.sqrt(np.maximum(l, 0.0)), -np.inf), np.where(u >= 0, np.sqrt(np.maximum(u, 0.0)), np.inf)
    if kind == "reciprocal":
        inside = (l > 0) | (u < 0)
        return np.where(inside, 1.0 / np.where(inside, u, 1.0), -np.inf), np.where(inside, 1.0 / np.where(inside, l, 1.0), np.inf)
    if kind == "square":
        fl, fu = np.square(l), np.square(u)
        return np.where((l < 0) & (u > 0), 0.0, np.minimum(fl, fu)), np.maximum(fl, fu)
    raise KeyError(kind)


def interval(kind: str, l, u) -> tuple[np.ndarray, np.ndarray]:
    """The exact image of ``[l, u]`` under ``kind`` (infinite where it leaves the domain)."""
    l, u = as_intervals(l, u)
    return _interval(kind, l, u)


# ------------------------------------------------------------------ lines
def _defined(kind: str, l, u):
    """Where the interval lies inside the domain, and the function is convex there (else concave)."""
    if kind in ("exp", "square"):
        return np.ones_like(l, dtype=bool), np.ones_like(l, dtype=bool)
    if kind == "log":
        return l > 0, np.zeros_like(l, dtype=bool)
    if kind == "sqrt":
        return l >= 0, np.zeros_like(l, dtype=bool)
    if kind == "reciprocal":
        return (l > 0) | (u < 0), l > 0
    raise KeyError(kind)


@_quiet
def relaxation(kind: str, l, u, lower_point=None, upper_point=None) -> Relaxation:
    """Chord and tangent lines of ``kind`` on ``[l, u]`` (see the module docstring)."""
    l, u = as_intervals(l, u)
    value = FUNCTIONS[kind].value
    lo_value, hi_value = _interval(kind, l, u)
    defined, convex = _defined(kind, l, u)
    curved = defined & ~narrow_or_open(l, u)
    sl, su = np.where(curved, l, 1.0), np.where(curved, u, 2.0)  # placeholders where the lines are constant
    (chord_slope, chord_offset), lo_tangent, hi_tangent, (fl, fu) = chord_and_tangents(
        value, FUNCTIONS[kind].derivative, sl, su, lower_point, upper_point)
    lines = Relaxation(
        np.where(convex, lo_tangent[0], chord_slope), np.where(convex, lo_tangent[1], chord_offset),
        np.where(convex, chord_slope, hi_tangent[0]), np.where(convex, chord_offset, hi_tangent[1]),
    )
    lines = finite_or_constant(lines, lo_value, hi_value)
    steepest = np.maximum(np.abs(chord_slope), np.maximum(np.abs(lo_tangent[0]), np.abs(hi_tangent[0])))
    extra = np.maximum(np.abs(fl), np.abs(fu)) + (su - sl) * steepest
    lines = widened(lines, reach_of(sl, su), np.where(np.isfinite(extra), extra, 0.0))
    flat = widened(constant(lo_value, hi_value), 0.0, np.where(np.isfinite(lo_value) & np.isfinite(hi_value),
                                                                np.maximum(np.abs(lo_value), np.abs(hi_value)), 0.0))
    return choose(curved & np.isfinite(extra), lines, flat)


KINDS = ("exp", "log", "sqrt", "reciprocal", "square")
"""The kinds this module relaxes."""
