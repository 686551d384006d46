"""The tableau and the bounded simplex (the general simplex of Dutertre & de Moura, as in Reluplex).

The linear part of a query is a set of equations ``E @ z = 0`` over variables ``z`` (one
of them, ``one``, is fixed to 1 and carries constants). The tableau keeps a basis: ``m``
basic variables, each expressed as a linear function of the non-basic ones,

    z[basic[i]] = T[i] @ z         (T[i, j] == 0 for every basic j)

Invariant: ``values`` satisfies every equation (up to round-off, which
:meth:`Tableau.refactor` removes by recomputing ``T`` from ``E``) and every non-basic
variable lies within its bounds. :meth:`Tableau.check` then moves values and pivots until
the basic variables are within their bounds too (feasible) or a row proves that they
cannot be (infeasible). The basis survives bound changes, so every call is warm-started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from reluverify.solver.bound_store import BoundStore

FEASIBLE, INFEASIBLE, BUDGET, OUT_OF_TIME = "feasible", "infeasible", "budget", "out of time"


def _rank_one_update(matrix: np.ndarray, column: np.ndarray, row: np.ndarray) -> np.ndarray:
    """``matrix += outer(column, row)``, in place when ``matrix`` is row-major float64.

    BLAS ``dger`` updates in place, several times faster than numpy's outer product: a row-major
    matrix is the column-major transpose, updated by ``outer(row, column)``. scipy.linalg is
    imported on the first pivot only (most queries never pivot, and it is slow to import).
    """
    if matrix.flags.c_contiguous and matrix.dtype == np.float64:
        from scipy.linalg.blas import dger

        return dger(1.0, row, column, a=matrix.T, overwrite_a=True).T
    matrix += np.outer(column, row)
    return matrix


@dataclass
class SimplexOutcome:
    status: str
    conflict_row: int = -1  # the basic variable's row that cannot be repaired, when infeasible
    pivots: int = 0


class Tableau:
    def __init__(
        self,
        equations: np.ndarray,
        basic: np.ndarray,
        fixed_one: int,
        pivot_tolerance: float = 1e-9,
        feasibility_tolerance: float = 1e-9,
        initial: np.ndarray | None = None,
    ) -> None:
        """``initial``, when given, is ``T`` for ``basic`` (it must equal ``-solve(E_B, E)``)."""
        self.equations = np.asarray(equations, dtype=np.float64)
        self.m, self.n = self.equations.shape
        self.basic = np.array(basic, dtype=np.int64)
        self.row_of = np.full(self.n, -1, dtype=np.int64)
        self.row_of[self.basic] = np.arange(self.m)
        self.one = fixed_one
        self.pivot_tolerance = pivot_tolerance
        self.feasibility_tolerance = feasibility_tolerance
        self.values = np.zeros(self.n)
        self.values[self.one] = 1.0
        self.T = np.zeros((self.m, self.n))
        self.pivots_since_refactor = 0
        self.total_pivots = 0
        self.refactorisations = 0
        if initial is None:
            self.refactor()
        else:
            self.T = np.ascontiguousarray(initial, dtype=np.float64)
            self.T[:, self.basic] = 0.0
            self.recompute_basic()

    # ---------------------------------------------------------------- basics
    def is_basic(self, var: int) -> bool:
        return self.row_of[var] >= 0

    def refactor(self) -> None:
        """Recompute ``T`` from the original equations for the current basis (removes drift)."""
        basis_matrix = self.equations[:, self.basic]
        try:
            t = -np.linalg.solve(basis_matrix, self.equations)
        except np.linalg.LinAlgError:
            t = -np.linalg.lstsq(basis_matrix, self.equations, rcond=None)[0]
        t[:, self.basic] = 0.0
        t[np.abs(t) < 1e-13] = 0.0
        self.T = np.ascontiguousarray(t)
        self.pivots_since_refactor = 0
        self.refactorisations += 1
        self.recompute_basic()

    def drifted(self, refactor_every: int) -> bool:
        """True when round-off has grown: the assignment misses the original equations by more
        than 1e-10 (relative), or 5 * ``refactor_every`` pivots have passed regardless."""
        if self.pivots_since_refactor >= 5 * refactor_every:
            return True
        residual = np.abs(self.equations @ self.values).max() if self.m else 0.0
        return residual > 1e-10 * (1.0 + np.abs(self.values).max())

    def recompute_basic(self) -> None:
        self.values[self.basic] = self.T @ self.values

    def assign(self, values: np.ndarray) -> None:
        """Load a full assignment that satisfies the equations (e.g. a forward pass of the network)."""
        self.values[:] = values
        self.values[self.one] = 1.0
        self.recompute_basic()

    def set_nonbasic(self, var: int, value: float) -> None:
        """Move a non-basic variable and update every basic value."""
        delta = value - self.values[var]
        if delta != 0.0:
            self.values[var] = value
            column = self.T[:, var]
            self.values[self.basic] += column * delta

    def clip_nonbasic(self, store: BoundStore) -> None:
        """Put every non-basic variable inside its bounds (after bounds changed), then refresh basics."""
        nonbasic = self.row_of < 0
        v = self.values
        clipped = np.clip(v, store.lower, store.upper)
        moved = nonbasic & (clipped != v)
        if np.any(moved):
            v[moved] = clipped[moved]
            self.recompute_basic()

    def pivot(self, row: int, entering: int) -> None:
        """Exchange ``basic[row]`` (leaving) with the non-basic ``entering``."""
        leaving = int(self.basic[row])
        t = self.T
        a = t[row, entering]
        new_row = -t[row] / a
        new_row[entering] = 0.0
        new_row[leaving] = 1.0 / a
        t[row] = new_row
        column = t[:, entering].copy()
        column[row] = 0.0
        if np.any(column):
            # in-place rank-1 update t += column new_row^T (BLAS dger on the row-major tableau)
            self.T = t = _rank_one_update(t, column, new_row)
            t[:, entering] = 0.0
        self.basic[row] = entering
        self.row_of[entering] = row
        self.row_of[leaving] = -1
        self.total_pivots += 1
        self.pivots_since_refactor += 1

    # --------------------------------------------------------------- simplex
    def check(
        self,
        store: BoundStore,
        max_pivots: int,
        bland_after: int,
        refactor_every: int,
        deadline: float | None = None,
    ) -> SimplexOutcome:
        """Drive the basic variables into their bounds, or prove that no assignment can.

        A phase-1 primal simplex on the sum of infeasibilities ``w``: the entering variable
        is a non-basic one whose move decreases ``w`` (largest normalised rate, or the smallest
        index once ``bland_after`` degenerate steps in a row suggest cycling); the step stops
        at the first breakpoint, so no feasible basic variable ever leaves its bounds and ``w``
        never increases. When no non-basic move decreases ``w > 0``, ``w`` is at its minimum
        (the problem is convex), which proves infeasibility.
        """
        tol = self.feasibility_tolerance
        ptol = self.pivot_tolerance
        lower, upper = store.lower, store.upper
        self.clip_nonbasic(store)
        pivots = 0
        degenerate = 0
        steps = 0
        while True:
            basic = self.basic
            v = self.values
            xb = v[basic]
            lb, ub = lower[basic], upper[basic]
            scale = 1.0 + np.abs(xb)
            below = xb < lb - tol * scale
            above = xb > ub + tol * scale
            if not (np.any(below) or np.any(above)):
                return SimplexOutcome(FEASIBLE, pivots=pivots)
            if steps >= max_pivots:
                return SimplexOutcome(BUDGET, pivots=pivots)
            if deadline is not None and steps % 32 == 31 and time.monotonic() > deadline:
                return SimplexOutcome(OUT_OF_TIME, pivots=pivots)
            steps += 1
            sigma = above.astype(np.float64) - below.astype(np.float64)
            active_rows = np.flatnonzero(sigma)
            block = self.T[active_rows]  # the infeasible rows (T is row-major: a cheap gather)
            rate = sigma[active_rows] @ block  # d w / d x_j for every non-basic j
            magnitude = np.abs(block, out=block).sum(axis=0)
            rate_tol = 1e-9 * (1.0 + magnitude)
            nonbasic = self.row_of < 0
            room_up = upper - v
            room_down = v - lower
            # any room counts, however small: a tiny move times a large coefficient can repair a
            # large infeasibility (bound flips land exactly on the bound, so "at bound" is exact)
            can_increase = nonbasic & (rate < -rate_tol) & (room_up > 0)
            can_decrease = nonbasic & (rate > rate_tol) & (room_down > 0)
            candidates = np.flatnonzero(can_increase | can_decrease)
            if candidates.size == 0:
                return SimplexOutcome(INFEASIBLE, conflict_row=int(active_rows[0]), pivots=pivots)
            bland = degenerate >= bland_after
            if bland:
                entering = int(candidates[0])
            else:
                # largest rate per unit of column length, among the 20 largest raw rates
                # (norms of every candidate column would cost O(m * candidates) per step)
                if candidates.size > 20:
                    candidates = candidates[np.argpartition(-np.abs(rate[candidates]), 20)[:20]]
                norms = np.sqrt(1.0 + np.einsum("ij,ij->j", self.T[:, candidates], self.T[:, candidates]))
                entering = int(candidates[np.argmax(np.abs(rate[candidates]) / norms)])
            direction = 1.0 if rate[entering] < 0 else -1.0
            column = self.T[:, entering] * direction  # change of each basic variable per unit step
            own_limit = room_up[entering] if direction > 0 else room_down[entering]
            feasible = ~(below | above)
            rising, falling = column > ptol, column < -ptol
            ratio = np.full(self.m, np.inf)
            with np.errstate(divide="ignore", invalid="ignore"):
                pick = rising & feasible
                ratio[pick] = (ub[pick] - xb[pick]) / column[pick]
                pick = falling & feasible
                ratio[pick] = (lb[pick] - xb[pick]) / column[pick]
                pick = rising & below
                ratio[pick] = (lb[pick] - xb[pick]) / column[pick]
                pick = falling & above
                ratio[pick] = (ub[pick] - xb[pick]) / column[pick]
            ratio = np.maximum(ratio, 0.0)
            best = ratio.min()
            if own_limit <= best:
                # the entering variable reaches its own bound first: a bound flip, no pivot
                self.set_nonbasic(entering, upper[entering] if direction > 0 else lower[entering])
                degenerate = 0 if own_limit > tol else degenerate + 1
                continue
            ties = np.flatnonzero(ratio <= best + 1e-12 * (1.0 + best))
            if bland:
                row = int(ties[np.argmin(basic[ties])])
            else:
                row = int(ties[np.argmax(np.abs(column[ties]))])
            step = ratio[row]
            leaving = int(basic[row])
            # the leaving variable lands on the bound it was heading for
            if below[row]:
                target = lb[row]
            elif above[row]:
                target = ub[row]
            else:
                target = ub[row] if column[row] > 0 else lb[row]
            self.set_nonbasic(entering, v[entering] + direction * step)
            self.values[leaving] = target
            self.pivot(row, entering)
            pivots += 1
            degenerate = 0 if step > tol else degenerate + 1
            since = self.pivots_since_refactor
            if since >= 5 * refactor_every or (since % refactor_every == 0 and self.drifted(refactor_every)):
                self.refactor()

    # ------------------------------------------------------------ tightening
    def row_bounds(self, store: BoundStore, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Interval bounds of basic variables implied by their rows and the non-basic bounds."""
        t = self.T if rows is None else self.T[rows]
        pos, neg = np.maximum(t, 0.0), np.minimum(t, 0.0)
        lo = pos @ store.lower + neg @ store.upper
        hi = pos @ store.upper + neg @ store.lower
        return lo, hi
