"""The query's input rows (``input_constraints``, e.g. an L1 ball through auxiliary variables).

The search works on boxes; the input rows ``A v <= b`` cut a polytope out of each box. They are
used soundly in three places:

* :meth:`Region.tighten` -- interval bound propagation of the rows shrinks a box to a box that
  still holds every point of the polytope in it (or shows it holds none);
* :meth:`Region.lower_bound` -- a linear lower bound ``c @ v + d`` of a disjunct row, valid on
  the box, is minimised over box ∩ polytope by weak duality: for any ``y >= 0``,
  ``min_box (c + y A) @ v + d - y b`` is a lower bound there; ``y`` comes from an LP (HiGHS),
  but the bound itself is evaluated exactly over the box, so LP tolerances cannot make it unsound;
* :meth:`Region.repair` -- a candidate point from a box is moved into the polytope (the nearest
  point in the network-input coordinates by LP, then pulled towards an interior point until every
  row holds in float64), so that onnxruntime confirms only points of the query's region.
"""

from __future__ import annotations

import numpy as np

from reluverify.query import LinearConstraints

SLACK = 1e-12


class Region:
    def __init__(self, rows: LinearConstraints, lower: np.ndarray, upper: np.ndarray, num_network_inputs: int) -> None:
        self.matrix = rows.matrix
        self.rhs = rows.rhs
        self.lower = lower
        self.upper = upper
        self.num_network_inputs = num_network_inputs
        self._interior: np.ndarray | None | bool = False  # False: not computed yet

    @property
    def active(self) -> bool:
        return self.rhs.shape[0] > 0

    # ------------------------------------------------------------ boxes
    def tighten(self, lo: np.ndarray, hi: np.ndarray, passes: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shrink boxes (B, n) by the rows; returns (lo, hi, empty) -- empty boxes hold no point of the region."""
        lo, hi = lo.copy(), hi.copy()
        empty = np.zeros(lo.shape[0], dtype=bool)
        if not self.active:
            return lo, hi, empty
        a = self.matrix  # (R, n)
        pos, neg = np.maximum(a, 0.0), np.minimum(a, 0.0)
        for _ in range(passes):
            contrib = lo[:, None, :] * pos[None] + hi[:, None, :] * neg[None]  # (B, R, n): min of a_j v_j
            total = contrib.sum(axis=2)
            scale = np.abs(contrib).sum(axis=2) + np.abs(self.rhs)[None] + 1.0
            room = self.rhs[None] - total + SLACK * scale  # (B, R) >= 0 when the row can hold
            empty |= (room < 0).any(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                limit = (room[:, :, None] + contrib) / a[None]  # bound on v_j from row r
            upper_from = np.where(a[None] > 0, limit, np.inf).min(axis=1)
            lower_from = np.where(a[None] < 0, limit, -np.inf).max(axis=1)
            hi = np.minimum(hi, upper_from)
            lo = np.maximum(lo, lower_from)
            empty |= (lo > hi).any(axis=1)
            hi = np.maximum(hi, lo)
        return lo, hi, empty

    def lower_bound(self, coef: np.ndarray, const: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
        """A sound lower bound of ``coef @ v + const`` over ``[lo, hi]`` ∩ region (one box, one row)."""
        from scipy.optimize import linprog

        box = list(zip(lo, hi))
        multipliers = np.zeros(self.rhs.shape[0])
        try:
            res = linprog(coef, A_ub=self.matrix, b_ub=self.rhs, bounds=box, method="highs")
            if res.status == 0:
                multipliers = np.maximum(-res.ineqlin.marginals, 0.0)
        except (ValueError, AttributeError):
            pass
        c = coef + multipliers @ self.matrix
        mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
        return float(c @ mid - np.abs(c) @ rad + const - multipliers @ self.rhs)

    # ------------------------------------------------------------ points
    def contains(self, v: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
        v = np.atleast_2d(v)
        inside = np.all((v >= self.lower - tolerance) & (v <= self.upper + tolerance), axis=1)
        if self.active:
            inside &= np.all(v @ self.matrix.T - self.rhs <= tolerance, axis=1)
        return inside

    def repair(self, v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
        """A point of ``[lo, hi]`` ∩ region near ``v`` (network inputs kept where they can be), or None."""
        if not self.active:
            return np.clip(v, lo, hi)
        if self.contains(v)[0] and np.all(v >= lo) and np.all(v <= hi):
            return v
        from scipy.optimize import linprog

        n, k = v.shape[0], self.num_network_inputs
        # variables [w (n), s (k)]: minimise sum s, s >= |w_x - v_x|
        eye = np.eye(n)[:k]
        a_ub = np.block([
            [self.matrix, np.zeros((self.rhs.shape[0], k))],
            [eye, -np.eye(k)],
            [-eye, -np.eye(k)],
        ])
        b_ub = np.concatenate([self.rhs, v[:k], -v[:k]])
        cost = np.concatenate([np.zeros(n), np.ones(k)])
        bounds = list(zip(lo, hi)) + [(0, None)] * k
        try:
            res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
        except ValueError:
            return None
        if res.status != 0:
            return None
        return self._pull_inside(np.clip(res.x[:n], lo, hi), lo, hi)

    def _pull_inside(self, w: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
        """``w`` if it satisfies every row in float64, else the point towards an interior point where it does."""
        if self.contains(w)[0]:
            return w
        centre = self.interior()
        if centre is None:
            return None
        centre = np.clip(centre, lo, hi)
        step = w - centre
        push = self.matrix @ step
        room = self.rhs - self.matrix @ centre
        if np.any(room <= 0):
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(push > 0, room / push, np.inf)
        theta = min(1.0, float(ratios.min())) * (1.0 - 1e-9)
        point = centre + theta * step
        return point if self.contains(point)[0] else None

    def interior(self) -> np.ndarray | None:
        """A point strictly inside the region (Chebyshev-like centre), or None when it has no interior."""
        if self._interior is not False:
            return self._interior
        from scipy.optimize import linprog

        n = self.lower.shape[0]
        norms = np.linalg.norm(self.matrix, axis=1)
        # maximise r: A v + r |a| <= b, lower + r <= v <= upper - r, r <= 1
        a_ub = np.block([
            [self.matrix, norms[:, None]],
            [-np.eye(n), np.ones((n, 1))],
            [np.eye(n), np.ones((n, 1))],
        ])
        b_ub = np.concatenate([self.rhs, -self.lower, self.upper])
        cost = np.zeros(n + 1)
        cost[-1] = -1.0
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * n + [(None, 1.0)], method="highs")
        self._interior = res.x[:n] if res.status == 0 and res.x[-1] > 0 else None
        return self._interior
