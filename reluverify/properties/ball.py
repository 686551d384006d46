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

Either region is intersected with an optional box domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify.errors import SpecError
from reluverify.query import LinearConstraints

NORMS = ("inf", "1")
NORM_NAMES = {"inf": "L-inf", "1": "L1"}


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
    box_lo, box_hi = center - delta, center + delta
    if lower is not None:
        box_lo = np.maximum(box_lo, lower)
    if upper is not None:
        box_hi = np.minimum(box_hi, upper)
    if norm == "inf":
        return Region(box_lo, box_hi, LinearConstraints.empty(n), 0)
    matrix = np.zeros((2 * n + 1, 2 * n))
    rhs = np.zeros(2 * n + 1)
    names = []
    for i in range(n):
        matrix[2 * i, i], matrix[2 * i, n + i], rhs[2 * i] = 1.0, -1.0, center[i]
        matrix[2 * i + 1, i], matrix[2 * i + 1, n + i], rhs[2 * i + 1] = -1.0, -1.0, -center[i]
        names += [f"t_{i} >= x_{i} - x0_{i}", f"t_{i} >= x0_{i} - x_{i}"]
    matrix[2 * n, n:] = 1.0
    rhs[2 * n] = delta
    names.append("sum t <= delta")
    lo = np.concatenate([box_lo, np.zeros(n)])
    hi = np.concatenate([box_hi, np.full(n, delta)])
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
