"""Relaxations of sin and cos on intervals.

**Interval.** On ``[l, u]`` the image is ``[-1, 1]`` when the interval is ``2 pi`` or wider;
otherwise its ends are the function at ``l`` and ``u``, replaced by ``1`` (``-1``) when a maximum
(minimum) of the function lies in the interval. A maximum or minimum closer to the interval than
``1e-9 (1 + |l| + |u|)`` counts as inside (rounding of ``2 pi k`` can only widen the interval).

**Lines.** ``f'' = -f`` for both functions, so ``f`` is concave where it is non-negative and
convex where it is non-positive:

* ``f >= 0`` on the interval (its lower end is ``>= 0``): the chord below, the tangent at the
  given point (the middle by default) above;
* ``f <= 0``: the tangent below, the chord above;
* otherwise (``f`` changes sign): with ``M = max |f|`` on the interval, Taylor's theorem gives
  ``|f(z) - chord(z)| <= M (z - l)(u - z) / 2 <= M w^2 / 8``, so the chord moved down and up by
  ``M w^2 / 8``; where the constant lines (the interval) are closer together, those instead.

Intervals with an infinite end, narrow intervals and intervals of ``2 pi`` or more get the
constant lines of their interval. Margins as in :mod:`~reluverify.solver.nonlinear.lines`, with
``extra = 1 + width`` (``|f| <= 1`` and ``|f'| <= 1``).
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
    narrow_or_open,
    reach_of,
    widened,
)

TWO_PI = 2.0 * np.pi
TOLERANCE = 1e-9

_PEAKS = {"sin": (0.5 * np.pi, -0.5 * np.pi), "cos": (0.0, np.pi)}  # (maximum, minimum) at these + 2 pi k


def _reaches(phase: float, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """True where ``phase + 2 pi k`` is in ``[l, u]`` (within the tolerance) for some integer ``k``."""
    with np.errstate(over="ignore", invalid="ignore"):
        slack = TOLERANCE * (1.0 + np.abs(l) + np.abs(u))
        k = np.ceil((l - slack - phase) / TWO_PI)
        return phase + TWO_PI * k <= u + slack


def interval(kind: str, l, u) -> tuple[np.ndarray, np.ndarray]:
    """The image of ``[l, u]`` (see the module docstring)."""
    l, u = as_intervals(l, u)
    f = FUNCTIONS[kind].value
    whole = ~(np.isfinite(l) & np.isfinite(u)) | (u - l >= TWO_PI)
    sl, su = np.where(whole, 0.0, l), np.where(whole, 0.0, u)
    fl, fu = f(sl), f(su)
    top, bottom = _PEAKS[kind]
    hi = np.where(whole | _reaches(top, sl, su), 1.0, np.maximum(fl, fu))
    lo = np.where(whole | _reaches(bottom, sl, su), -1.0, np.minimum(fl, fu))
    return lo, hi


def relaxation(kind: str, l, u, lower_point=None, upper_point=None) -> Relaxation:
    """Chord, tangent or Taylor lines of ``kind`` on ``[l, u]`` (see the module docstring)."""
    l, u = as_intervals(l, u)
    lo, hi = interval(kind, l, u)
    curved = ~narrow_or_open(l, u) & (u - l < TWO_PI)
    sl, su = np.where(curved, l, 0.0), np.where(curved, u, 1.0)
    width = su - sl
    (chord_slope, chord_offset), (lt_s, lt_o), (ht_s, ht_o), _ = chord_and_tangents(
        FUNCTIONS[kind].value, FUNCTIONS[kind].derivative, sl, su, lower_point, upper_point)
    concave, convex = lo >= 0, hi <= 0
    bend = np.maximum(np.abs(lo), np.abs(hi)) * width * width / 8.0
    lines = Relaxation(
        np.where(convex, lt_s, chord_slope),
        np.where(convex, lt_o, np.where(concave, chord_offset, chord_offset - bend)),
        np.where(concave, ht_s, chord_slope),
        np.where(concave, ht_o, np.where(convex, chord_offset, chord_offset + bend)),
    )
    # a sign change whose Taylor band is wider than the interval itself: the constant lines instead
    taylor_wider = ~concave & ~convex & (2.0 * bend >= hi - lo)
    lines = widened(lines, reach_of(sl, su), 1.0 + width)
    flat = widened(constant(lo, hi), 0.0, 1.0)
    return choose(curved & ~taylor_wider, lines, flat)


KINDS = ("sin", "cos")
"""The kinds this module relaxes."""
