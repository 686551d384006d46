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
