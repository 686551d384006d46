"""Norm balls as query regions: the L-infinity ball is a box, the L1 ball a box plus linear rows.

Both are exact and linear (no extra ReLUs):

* L-infinity, ``||x - c||_inf <= delta``: the box ``[c - delta, c + delta]``.
* L1, ``||x - c||_1 <= delta``: one auxiliary variable ``t_i`` per input with the rows
  ``x_i - t_i <= c_i``, ``-x_i - t_i <= -c_i`` (so ``t_i >= |x_i - c_i|``) and
  ``sum_i t_i <= delta``; ``x`` keeps the L-infinity box (``|x_i - c_i| <= delta`` holds in
  the L1 ball) and ``t_i`` ranges over ``[0, delta]``. A point ``x`` is in the ball iff some ``t``
  satisfies the rows, so projecting the region on ``x`` gives exactly the ball.

The same rows tie two points ``x1``, ``x2`` together (:func:`pair_rows`): ``c`` is then the
variable ``x2`` instead of a constant.

Either region is intersected with an optional box domain. With a domain each ``t_i`` ranges over
``[0, r_i]`` instead, ``r_i`` the farthest input ``i`` reaches from ``c_i`` in the cut box (at most
delta, rounded up), and the sum row reads ``sum_i t_i <= min(delta, sum_i r_i)``: ``t_i = |x_i - c_i|``
still fits for every ``x`` of the cut ball, so the region is the same, and a huge delta leaves no
huge bound.

A ball that reaches beyond :data:`~reluverify.query.LARGEST_INPUT` (float32's range, where no network
input lies) is refused by :func:`check_reach`, naming the radius: give a smaller one or a domain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reluverify.errors import SpecError
from reluverify.query import BEYOND_FLOAT32, LARGEST_INPUT, LinearConstraints

NORMS = ("inf", "1")
NORM_NAMES = {"inf": "L-inf", "1": "L1"}
ROUND_UP = 1e-12
"""The relative margin that rounds the L1 auxiliaries' bounds in a domain up (float rounding of
``box_hi - c`` and of their sum is far below it), so that they never cut the ball."""


def check_norm(norm) -> str:
    text = str(norm).lower().replace("l", "").replace("-", "").replace("_", "")
    if text in ("inf", "infinity", "infty"):
        return "inf"
    if text == "1":
        return "1"
    raise SpecError(f"unknown norm {norm!r}: use 'inf' (L-infinity) or '1' (L1)")


def check_radius(value, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(number) or number < 0:
        raise SpecError(f"{what} must be a finite number >= 0, got {value!r}")
    return number


def ball_box(center: np.ndarray, delta: float, lower: np.ndarray | None = None,
             upper: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The box ``[center - delta, center + delta]`` cut to ``[lower, upper]`` where given."""
    center = np.asarray(center, dtype=np.float64)
    box_lo, box_hi = center - delta, center + delta
    if lower is not None:
        box_lo = np.maximum(box_lo, lower)
    if upper is not None:
        box_hi = np.minimum(box_hi, upper)
    return box_lo, box_hi


def check_reach(center: np.ndarray, delta: float, domain=None, what: str = "delta") -> None:
    """A one-line SpecError naming ``what`` (the radius) when the ball around ``center``, cut to
    ``domain`` (a box with ``lower`` and ``upper``, or None), reaches an input of magnitude beyond
    :data:`~reluverify.query.LARGEST_INPUT`."""
    box_lo, box_hi = ball_box(center, delta, *((None, None) if domain is None else (domain.lower, domain.upper)))
    far = np.maximum(np.abs(box_lo), np.abs(box_hi))
    big = np.flatnonzero(~(far <= LARGEST_INPUT))
    if big.size:
        i = int(big[0])
        raise SpecError(f"{what} {delta:g}: the ball reaches {far[i]:g} at input {i}, {BEYOND_FLOAT32}: give a "
                        f"smaller {what}, or a domain that bounds the ball")


def distance(a: np.ndarray, b: np.ndarray, norm: str) -> float:
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    if diff.size == 0:
        return 0.0
    return float(diff.max() if norm == "inf" else diff.sum())


@dataclass(frozen=True, eq=False)
class Region:
    """Bounds on all input variables (network inputs, then ``num_auxiliary`` auxiliaries) and rows."""

    lower: np.ndarray
    upper: np.ndarray
    constraints: LinearConstraints
    num_auxiliary: int

    @property
    def empty(self) -> bool:
        return bool(np.any(self.lower > self.upper))


def ball_region(center: np.ndarray, delta: float, norm: str, lower: np.ndarray | None = None,
                upper: np.ndarray | None = None) -> Region:
    """The ball around the constant ``center`` intersected with the box ``[lower, upper]``."""
    center = np.asarray(center, dtype=np.float64)
    n = center.size
    box_lo, box_hi = ball_box(center, delta, lower, upper)
    if norm == "inf":
        return Region(box_lo, box_hi, LinearConstraints.empty(n), 0)
    matrix = np.zeros((2 * n + 1, 2 * n))
    rhs = np.zeros(2 * n + 1)
    names = []
    for i in range(n):
        matrix[2 * i, i], matrix[2 * i, n + i], rhs[2 * i] = 1.0, -1.0, center[i]
        matrix[2 * i + 1, i], matrix[2 * i + 1, n + i], rhs[2 * i + 1] = -1.0, -1.0, -center[i]
        names += [f"t_{i} >= x_{i} - x0_{i}", f"t_{i} >= x0_{i} - x_{i}"]
    reach = np.full(n, float(delta))
    total = float(delta)
    if lower is not None or upper is not None:  # rounded up, so every |x_i - c_i| of the cut box fits
        reach = np.minimum(reach, np.maximum(box_hi - center, center - box_lo) * (1.0 + ROUND_UP))
        total = min(total, math.fsum(reach) * (1.0 + ROUND_UP))
    matrix[2 * n, n:] = 1.0
    rhs[2 * n] = total
    names.append("sum t <= delta")
    lo = np.concatenate([box_lo, np.zeros(n)])
    hi = np.concatenate([box_hi, reach])
    return Region(lo, hi, LinearConstraints(matrix, rhs, tuple(names)), n)


def pair_rows(n: int, delta: float, norm: str) -> tuple[LinearConstraints, int]:
    """Rows over ``[x1 (n), x2 (n), t (n if L1)]`` meaning ``||x1 - x2|| <= delta``; and the auxiliary count."""
    if norm == "inf":
        matrix = np.zeros((2 * n, 2 * n))
        names = []
        for i in range(n):
            matrix[2 * i, i], matrix[2 * i, n + i] = 1.0, -1.0
            matrix[2 * i + 1, i], matrix[2 * i + 1, n + i] = -1.0, 1.0
            names += [f"x1_{i} - x2_{i} <= delta", f"x2_{i} - x1_{i} <= delta"]
        return LinearConstraints(matrix, np.full(2 * n, float(delta)), tuple(names)), 0
    matrix = np.zeros((2 * n + 1, 3 * n))
    rhs = np.zeros(2 * n + 1)
    names = []
    for i in range(n):
        matrix[2 * i, i], matrix[2 * i, n + i], matrix[2 * i, 2 * n + i] = 1.0, -1.0, -1.0
        matrix[2 * i + 1, i], matrix[2 * i + 1, n + i], matrix[2 * i + 1, 2 * n + i] = -1.0, 1.0, -1.0
        names += [f"t_{i} >= x1_{i} - x2_{i}", f"t_{i} >= x2_{i} - x1_{i}"]
    matrix[2 * n, 2 * n:] = 1.0
    rhs[2 * n] = delta
    names.append("sum t <= delta")
    return LinearConstraints(matrix, rhs, tuple(names)), n
