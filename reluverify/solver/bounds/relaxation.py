"""The ReLU relaxation: the lines that bound ``relu(z)`` for ``l <= z <= u``, the one definition that
DeepPoly (:mod:`~reluverify.solver.bounds.deeppoly`), the row bounds
(:mod:`~reluverify.solver.bounds.rows`), the optimised bounds (:mod:`~reluverify.solver.bounds.alpha_crown`),
the triangle LP (:mod:`~reluverify.solver.triangle_lp`), branching's scores and the nonlinear engine's
ReLU (:mod:`~reluverify.solver.nonlinear.relaxations`) use.

A neuron is *active* when ``l >= 0`` (``relu(z) = z``), *inactive* when ``u <= 0`` (``relu(z) = 0``) and
*unstable* otherwise; on an unstable neuron the convex hull of ``relu`` over ``[l, u]`` is the
*triangle* ``h >= 0``, ``h >= z``, ``h <= u (z - l) / (u - l)``:

* below, any line ``alpha z`` with ``0 <= alpha <= 1`` (DeepPoly and CROWN start from the one of the
  smaller triangle's area: ``alpha = 1`` where ``u > -l``, else 0);
* above, the *chord* ``slope z + intercept`` with ``slope = u / (u - l)`` and ``intercept = -slope l``.

Stable neurons take their exact line (slope 1 or 0, intercept 0). The functions work element-wise on
arrays of any shape. The independent certificate checker (:mod:`reluverify.proof_check`) keeps its own
copy of these lines on purpose: it must not share code with the solver it checks.
"""

from __future__ import annotations

import numpy as np


def area_slope(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The lower line's slope an unstable neuron starts from: 1 where ``u > -l`` (the smaller triangle),
    else 0 (float64, for every neuron; stable ones take their exact line elsewhere)."""
    return (upper > -lower).astype(np.float64)


def lower_slope(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Slope ``alpha`` of the lower line ``relu(z) >= alpha z``: 1 if active, 0 if inactive, else
    :func:`area_slope` (DeepPoly's choice)."""
    return np.where(lower >= 0, 1.0, np.where(upper <= 0, 0.0, (upper > -lower).astype(np.float64)))


def chord(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept of the upper line ``relu(z) <= slope z + intercept`` on ``[lower, upper]``: the
    chord where unstable, ``z`` where active, 0 where inactive."""
    unstable = (lower < 0) & (upper > 0)
    width = np.where(unstable, upper - lower, 1.0)
    slope = np.where(lower >= 0, 1.0, np.where(unstable, upper / width, 0.0))
    intercept = np.where(unstable, -slope * lower, 0.0)
    return slope, intercept


def lines(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(alpha, slope, intercept)``: the lower line ``alpha z`` (:func:`lower_slope`) and the upper line
    (:func:`chord`), computed once per layer and bound pass and shared by every row."""
    slope, intercept = chord(lower, upper)
    return lower_slope(lower, upper), slope, intercept


def triangle_height(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The triangle's height ``u (-l) / (u - l)`` (the chord's value at ``z = 0``: the largest gap between
    the relaxation and ``relu``) on unstable neurons, 0 elsewhere."""
    free = (lower < 0) & (upper > 0)
    return np.where(free, upper * -lower / np.where(free, upper - lower, 1.0), 0.0)


# ------------------------------------------------------------------ differences of two ReLUs
def _line_through(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept of the line through ``(x0, y0)`` and ``(x1, y1)`` (the constant ``y0`` where
    the two abscissae are (nearly) equal)."""
    width = x1 - x0
    ok = width > 1e-12 * (1.0 + np.abs(x0) + np.abs(x1))
    slope = np.where(ok, (y1 - y0) / np.where(ok, width, 1.0), 0.0)
    return slope, y0 - slope * x0


def difference_lines(l1, u1, l2, u2, dl, du) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lines ``a_lo dz + c_lo <= relu(z1 + dz) - relu(z1) <= a_up dz + c_up``, for every ``z1`` in
    ``[l1, u1]`` and ``dz`` in ``[dl, du]`` with ``z2 = z1 + dz`` in ``[l2, u2]``: the relaxation of the
    difference of one ReLU at two inputs, as a function of the difference ``dz`` of its pre-activations.

    ``dh = relu(z1 + dz) - relu(z1)`` always lies between ``min(dz, 0)`` and ``max(dz, 0)`` (a ReLU is
    monotone and 1-Lipschitz); the phases the bounds fix make it exact or one-sided:

    * both copies active: ``dh = dz``; both inactive: ``dh = 0``;
    * ``z1`` active: ``dh = max(dz, -z1)``: at least ``dz``, at most the chord of ``max(dz, -l1)``;
    * ``z1`` inactive: ``dh = relu(z1 + dz)``: at most the chord of ``relu(u1 + dz)``, at least a
      supporting line of ``relu(l1 + dz)``;
    * ``z2`` active: ``dh = min(dz, z2)``: at most ``dz``, at least the chord of ``min(dz, l2)``;
    * ``z2`` inactive: ``dh = -relu(z2 - dz)``: at least the chord of ``-relu(u2 - dz)``, at most a
      supporting line of ``min(0, dz - l2)``;
    * neither phase known: the chords of ``max(dz, 0)`` above and ``min(dz, 0)`` below.

    A chord of a convex function lies above it on the interval, of a concave one below; a supporting
    line (0 or the function's own slope-1 piece, whichever bounds the larger area) lies on the other
    side. Every line is sound for every point of the boxes, so the case order only picks the tighter.
    """
    shape = np.broadcast(l1, u1, l2, u2, dl, du).shape
    act1, act2, ina1, ina2 = l1 >= 0, l2 >= 0, u1 <= 0, u2 <= 0
    a_up, c_up = _line_through(dl, np.maximum(dl, 0.0), du, np.maximum(du, 0.0))
    a_lo, c_lo = _line_through(dl, np.minimum(dl, 0.0), du, np.minimum(du, 0.0))
    a_up, c_up, a_lo, c_lo = (np.broadcast_to(x, shape).copy() for x in (a_up, c_up, a_lo, c_lo))

    def put(mask, lo=None, up=None):
        if lo is not None:
            a_lo[mask], c_lo[mask] = np.broadcast_to(lo[0], shape)[mask], np.broadcast_to(lo[1], shape)[mask]
        if up is not None:
            a_up[mask], c_up[mask] = np.broadcast_to(up[0], shape)[mask], np.broadcast_to(up[1], shape)[mask]

    zero, one = np.zeros(shape), np.ones(shape)
    # z2 inactive: dh = min(0, dz - z2)
    below = (du - l2) < 0  # dz - l2 < 0 throughout: that piece is the minimum
    put(ina2 & ~ina1, lo=_line_through(dl, np.minimum(0.0, dl - u2), du, np.minimum(0.0, du - u2)),
        up=(np.where(below, 1.0, 0.0), np.where(below, -l2, 0.0)))
    # z2 active: dh = min(dz, z2)
    put(act2 & ~act1, lo=_line_through(dl, np.minimum(dl, l2), du, np.minimum(du, l2)), up=(one, zero))
    # z1 inactive: dh = relu(z1 + dz)
    steep = (du + l1) > -(dl + l1)  # relu(l1 + dz)'s supporting line: l1 + dz where it bounds more area
    put(ina1 & ~ina2, lo=(np.where(steep, 1.0, 0.0), np.where(steep, l1, 0.0)),
        up=_line_through(dl, np.maximum(0.0, u1 + dl), du, np.maximum(0.0, u1 + du)))
    # z1 active: dh = max(dz, -z1)
    put(act1 & ~act2, lo=(one, zero), up=_line_through(dl, np.maximum(dl, -l1), du, np.maximum(du, -l1)))
    put(act1 & act2, lo=(one, zero), up=(one, zero))
    put(ina1 & ina2, lo=(zero, zero), up=(zero, zero))
    return a_lo, c_lo, a_up, c_up
