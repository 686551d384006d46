"""The shape every relaxation of an elementwise function has, and its floating-point safety.

A :class:`Relaxation` gives, for ``z`` in an interval ``[l, u]`` (arrays that broadcast together),

    lower_slope * z + lower_offset  <=  f(z)  <=  upper_slope * z + upper_offset.

**Soundness in floating point.** Lines are computed from float64 values of ``f`` and ``f'``,
each about 1e-16 relative off. :func:`widened` moves a line away from ``f`` by
``SAFETY * (1 + |offset| + |slope| * max(|l|, |u|) + extra)``, where ``extra`` is what the caller
knows of the function's size on the interval (its largest value and its largest slope times the
width), far above that round-off and far below anything a proof needs. Intervals narrower than
``NARROW * (1 + |l| + |u|)`` and intervals with an infinite end get constant lines, the ends of
the function's interval there (:func:`constant`). A line whose slope or offset is not finite
(an overflow) is replaced by the constant line of that side (:func:`finite_or_constant`), which
is sound whenever the interval it comes from is.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SAFETY = 1e-12
"""Relative margin added to every relaxation line (see the module docstring)."""

NARROW = 1e-10
"""Intervals narrower than ``NARROW * (1 + |l| + |u|)`` get constant bounds."""


class Relaxation(NamedTuple):
    """``lower_slope * z + lower_offset <= f(z) <= upper_slope * z + upper_offset`` on the interval."""

    lower_slope: np.ndarray
    lower_offset: np.ndarray
    upper_slope: np.ndarray
    upper_offset: np.ndarray


def margin(slope, offset, reach, extra=0.0):
    """The safety margin of a line (see the module docstring)."""
    return SAFETY * (1.0 + np.abs(offset) + np.abs(slope) * reach + extra)


def as_intervals(l, u) -> tuple[np.ndarray, np.ndarray]:
    """``l`` and ``u`` as float64 arrays of their broadcast shape."""
    return np.broadcast_arrays(np.asarray(l, dtype=np.float64), np.asarray(u, dtype=np.float64))


def narrow_or_open(l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """True where the interval gets constant lines: too narrow for a slope, or with an infinite end."""
    finite = np.isfinite(l) & np.isfinite(u)
    with np.errstate(invalid="ignore", over="ignore"):
        return ~finite | (u - l <= NARROW * (1.0 + np.abs(l) + np.abs(u)))


def reach_of(l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``max(|l|, |u|)`` where both ends are finite, else 0 (the lines there are constant)."""
    finite = np.isfinite(l) & np.isfinite(u)
    return np.where(finite, np.maximum(np.abs(l), np.abs(u)), 0.0)


def widened(relax: Relaxation, reach, extra=0.0) -> Relaxation:
    """The lines moved apart by their safety margins (infinite offsets stay infinite)."""
    lo_s, lo_o, hi_s, hi_o = relax
    with np.errstate(invalid="ignore", over="ignore"):
        lower = np.where(np.isfinite(lo_o), lo_o - margin(lo_s, lo_o, reach, extra), lo_o)
        upper = np.where(np.isfinite(hi_o), hi_o + margin(hi_s, hi_o, reach, extra), hi_o)
    return Relaxation(lo_s, lower, hi_s, upper)


def constant(lower_value, upper_value) -> Relaxation:
    """The lines ``lower_value <= f <= upper_value`` (slopes 0; infinite values allowed)."""
    lower_value, upper_value = np.broadcast_arrays(np.asarray(lower_value, dtype=np.float64),
                                                   np.asarray(upper_value, dtype=np.float64))
    zero = np.zeros_like(lower_value)
    return Relaxation(zero, lower_value, zero.copy(), upper_value)


def choose(mask, when: Relaxation, otherwise: Relaxation) -> Relaxation:
    """Elementwise ``when`` where ``mask``, else ``otherwise``."""
    return Relaxation(*(np.where(mask, a, b) for a, b in zip(when, otherwise)))


def finite_or_constant(relax: Relaxation, lower_value, upper_value) -> Relaxation:
    """Each side whose slope or offset is not finite replaced by its constant line."""
    lo_s, lo_o, hi_s, hi_o = relax
    bad_lo = ~(np.isfinite(lo_s) & np.isfinite(lo_o))
    bad_hi = ~(np.isfinite(hi_s) & np.isfinite(hi_o))
    return Relaxation(np.where(bad_lo, 0.0, lo_s), np.where(bad_lo, lower_value, lo_o),
                      np.where(bad_hi, 0.0, hi_s), np.where(bad_hi, upper_value, hi_o))


def chord_and_tangents(value, slope, lower: np.ndarray, upper: np.ndarray, lower_point, upper_point):
    """The chord of ``value`` from ``lower`` to ``upper`` (finite, ``lower < upper``) and its tangents at the
    two points (each clipped into the interval; the middle where it is None or NaN), as
    ``((chord slope, offset), (tangent slope, offset) at lower_point, ... at upper_point, (f(lower), f(upper)))``.
    ``slope(z, f(z))`` is the derivative."""
    fl, fu = value(lower), value(upper)
    chord_slope = (fu - fl) / (upper - lower)
    middle = 0.5 * (lower + upper)

    def tangent(point):
        p = middle if point is None else np.clip(np.asarray(point, dtype=np.float64), lower, upper)
        p = np.where(np.isnan(p), middle, p)  # no point given there
        fp = value(p)
        s = slope(p, fp)
        return s, fp - s * p

    return (chord_slope, fl - chord_slope * lower), tangent(lower_point), tangent(upper_point), (fl, fu)
