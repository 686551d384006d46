"""Relaxations of the step functions sign and floor on intervals.

**sign** (ONNX: ``-1`` below 0, ``0`` at 0, ``1`` above) is non-decreasing, so its interval is
``[sign l, sign u]``; its lines:

* ``l > 0`` or ``u < 0``: the constant, exact;
* ``l = 0 < u`` (values 0 and 1): below, the line through ``(0, 0)`` and ``(u, 1)``; above, 1;
* ``l < 0 = u`` (values -1 and 0): below, -1; above, the line through ``(l, -1)`` and ``(0, 0)``;
* ``l < 0 < u``: below, ``-1 + s z`` with ``s`` = ``2 / u`` or 0, above ``1 + t z`` with ``t`` =
  ``2 / (-l)`` or 0 -- the only sound lines through the corners ``(0-, -1)`` and ``(0+, 1)``. The
  sloped line is taken where it encloses less area (``|l| < u`` below, ``u < |l|`` above), or,
  given a point, where the point lies on the side that the sloped line is exact at.

A relaxation split of a sign input cuts at 0 (:func:`split_point`), after which its children's
lines are exact at every point but 0.

**floor** is non-decreasing, interval ``[floor l, floor u]``: constant (exact) when both ends
are in the same unit cell, else the lines ``z - 1 <= floor z <= z``. A split cuts at an integer
inside the interval, the one nearest its middle.

The step functions are discontinuous: at a jump, the file's float32 computation and the real
function the solver reasons about can disagree (as they can anywhere by rounding). Counterexamples
are still confirmed by onnxruntime on the file.
"""

from __future__ import annotations

import numpy as np

from reluverify.solver.nonlinear.lines import Relaxation, as_intervals, reach_of, widened


def interval(kind: str, l, u) -> tuple[np.ndarray, np.ndarray]:
    """The exact image of ``[l, u]`` (both functions are non-decreasing)."""
    l, u = as_intervals(l, u)
    f = np.sign if kind == "sign" else np.floor
    return f(l), f(u)


def relaxation(kind: str, l, u, lower_point=None, upper_point=None) -> Relaxation:
    """The lines of the module docstring."""
    l, u = as_intervals(l, u)
    lo, hi = interval(kind, l, u)
    if kind == "sign":
        return _sign(l, u, lo, hi, lower_point, upper_point)
    finite = np.isfinite(l) & np.isfinite(u)
    sloped = finite & (lo < hi)
    zero = np.zeros_like(l)
    lines = Relaxation(np.where(sloped, 1.0, 0.0), np.where(sloped, -1.0, lo), np.where(sloped, 1.0, 0.0),
                       np.where(sloped, 0.0, hi))
    return widened(lines, reach_of(l, u), np.where(finite, np.maximum(np.abs(lo), np.abs(hi)), zero))


def _sign(l, u, lo, hi, lower_point, upper_point) -> Relaxation:
    with np.errstate(divide="ignore", invalid="ignore"):
        rise_up = np.where(u > 0, 2.0 / u, 0.0)  # slope of -1 + s z reaching 1 at u
        rise_down = np.where(l < 0, 2.0 / -l, 0.0)  # slope of 1 + t z reaching -1 at l
        half_up = np.where(u > 0, 1.0 / u, 0.0)
        half_down = np.where(l < 0, 1.0 / -l, 0.0)
    straddle = (l < 0) & (u > 0)
    from_zero = (l == 0) & (u > 0)
    to_zero = (l < 0) & (u == 0)
    finite = np.isfinite(l) & np.isfinite(u)
    low_slope = lower_point > 0 if lower_point is not None else -l < u
    high_slope = upper_point < 0 if upper_point is not None else u < -l
    lower = np.where(straddle & finite & low_slope, rise_up, np.where(from_zero & finite, half_up, 0.0))
    lower_offset = np.where(straddle & finite & low_slope, -1.0, np.where(from_zero & finite, 0.0, lo))
    upper = np.where(straddle & finite & high_slope, rise_down, np.where(to_zero & finite, half_down, 0.0))
    upper_offset = np.where(straddle & finite & high_slope, 1.0, np.where(to_zero & finite, 0.0, hi))
    lines = Relaxation(*np.broadcast_arrays(lower, lower_offset, upper, upper_offset))
    return widened(lines, reach_of(l, u), 1.0)


def split_point(kind: str, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Where a relaxation split cuts ``[l, u]``: 0 (sign) or the integer nearest the middle (floor)
    when one lies strictly inside, else the middle."""
    middle = 0.5 * (l + u)
    if kind == "sign":
        return np.where((l < 0) & (u > 0), 0.0, middle)
    cut = np.round(middle)
    cut = np.where(cut <= l, cut + 1.0, np.where(cut > u, cut - 1.0, cut))
    return np.where((cut > l) & (cut < u), cut, middle)


KINDS = ("sign", "floor")
"""The kinds this module relaxes."""
