"""The LP over a sub-problem's triangle relaxation, decided by our own bounded simplex.

A sub-problem (an input region, pre-activation bounds and ReLU splits, see
:class:`~reluverify.solver.bounds.alpha_crown.Relaxation`) is relaxed exactly as an LP: every stable or
split ReLU is linear (``h = z`` or ``h = 0``), and every other one, with bounds ``l < 0 < u``,
is replaced by its triangle ``h >= 0, h >= z, h <= u (z - l) / (u - l)``. The LP asks for a point
that also satisfies the disjunct's rows. When it has none, neither has the sub-problem: the
simplex's infeasibility proof refutes it. When it has one, the LP point's input is a candidate
counterexample (exact when no triangle is left, i.e. every ReLU is linear on the sub-problem).

Only what the sub-problem needs enters the tableau: the input variables and one variable per
unstable ReLU are its non-basic columns; every stable ReLU is substituted into the affine maps
(so a network's thousands of stable neurons never become columns); the rows are the two
triangle sides per unstable ReLU, one sign row per split, the disjunct's rows and the input rows.

This LP is at least as tight as the optimised linear bounds of :mod:`~reluverify.solver.bounds.alpha_crown`
for the same bounds (their parameters are its dual variables, reached only approximately by
gradient ascent), which makes it the exact check for sub-problems the bounds cannot close.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from reluverify import linear_ops as lops
from reluverify.network import ReluChain
from reluverify.solver.bound_store import BoundStore
from reluverify.solver.bounds.alpha_crown import Region, Relaxation
from reluverify.solver.bounds.relaxation import chord
from reluverify.solver.tableau import BUDGET, FEASIBLE, INFEASIBLE, OUT_OF_TIME, Tableau

REFUTED, CANDIDATE, UNDECIDED = "refuted", "candidate", "undecided"


@dataclass(frozen=True)
class LpOutcome:
    status: str  # REFUTED, CANDIDATE (with ``inputs``) or UNDECIDED (budget or time)
    inputs: np.ndarray | None = None
    pivots: int = 0
    farkas: tuple[np.ndarray, np.ndarray] | None = None
    """REFUTED: (rows, multipliers >= 0) over the LP's rows ``expr <= 0`` in the order of
    docs/certificates.md ("LP evidence"): the minimum of their combination over the variables'
    bounds is positive. None if the simplex's proof could not be turned into one."""
    exact: bool = False
    """True when every ReLU is linear on the sub-problem: the candidate is the LP's own point of a
    linear region, so it is a counterexample up to round-off."""


def affine_maps(chain: ReluChain, relaxation: Relaxation, index: int, num_v: int):
    """Each layer's pre-activations as affine maps of ``[v; h_U; 1]`` (``h_U``: the unstable ReLUs' outputs).

    Returns (maps, unstable) where ``maps[j]`` is (n_j, num_v + |U| + 1) for hidden layer ``j`` and the
    outputs last, and ``unstable[j]`` are layer ``j``'s unstable, unsplit neuron indices.
    """
    layers = len(chain.weights) - 1
    unstable = []
    for j in range(layers):
        lo, hi, s = relaxation.lower[j][index], relaxation.upper[j][index], relaxation.split[j][index]
        unstable.append(np.flatnonzero((lo < 0) & (hi > 0) & (s == 0)))
    count = sum(u.size for u in unstable)
    width = num_v + count + 1
    n_x = chain.input_size
    h = np.zeros((n_x, width))
    h[np.arange(n_x), np.arange(n_x)] = 1.0
    maps = []
    column = num_v
    for j in range(layers + 1):
        z = lops.forward(chain.weights[j], h.T).T.copy()
        z[:, -1] += chain.biases[j]
        maps.append(z)
        if j == layers:
            break
        lower = relaxation.lower[j][index]
        h = np.where((lower >= 0)[:, None], z, 0.0)  # active: h = z; inactive: 0
        u = unstable[j]
        h[u] = 0.0
        h[u, column + np.arange(u.size)] = 1.0  # unstable: its own column
        column += u.size
    return maps, unstable


def solve_triangle_lp(
    chain: ReluChain,
    region: Region,
    relaxation: Relaxation,
    index: int,
    rows: np.ndarray,
    rhs: np.ndarray,
    feasibility_tolerance: float = 1e-9,
    pivot_tolerance: float = 1e-9,
    start: np.ndarray | None = None,
    max_pivots: int = 20000,
    deadline: float | None = None,
) -> LpOutcome:
    """Is there a point of sub-problem ``index``'s triangle LP that satisfies ``rows @ [v; y] <= rhs``?

    ``region`` holds the box (a batch of one, shared by the sub-problems) and the input rows;
    ``start`` (n_v,) seeds the assignment (the network's values at that input satisfy every
    triangle row).
    """
    num_v = region.lower.shape[1]
    n_x = chain.input_size
    maps, unstable = affine_maps(chain, relaxation, index, num_v)
    width = maps[0].shape[1]  # num_v + |U| + 1
    count = width - num_v - 1
    one = width - 1
    expr, lower, upper = [], [], []
    # the certificate's row order (per layer and unstable ReLU its two triangle rows, then per layer the
    # split rows in index order, the disjunct's rows, the input rows), as positions in ``expr`` order
    triangle_ids, split_ids = [], []
    count_rows = 0
    column = num_v
    for j, u in enumerate(unstable):
        if u.size:
            z = maps[j][u]
            lo, hi = relaxation.lower[j][index, u], relaxation.upper[j][index, u]
            e = np.zeros((u.size, width))
            e[np.arange(u.size), column + np.arange(u.size)] = 1.0
            slope, intercept = chord(lo, hi)
            # h - z >= 0 and slope (z - l) - h >= 0
            expr += [e - z, slope[:, None] * z - e]
            shift = np.zeros((u.size, width))
            shift[:, one] = intercept
            expr[-1] = expr[-1] + shift
            lower += [np.zeros(2 * u.size)]
            upper += [np.full(2 * u.size, np.inf)]
            triangle_ids.append(np.stack([count_rows + np.arange(u.size), count_rows + u.size + np.arange(u.size)], axis=1).reshape(-1))
            count_rows += 2 * u.size
            column += u.size
        split = relaxation.split[j][index]
        on, off = np.flatnonzero(split > 0), np.flatnonzero(split < 0)
        if on.size + off.size:
            both = np.concatenate([on, off])
            expr.append(maps[j][both])
            lower.append(np.concatenate([np.zeros(on.size), np.full(off.size, -np.inf)]))
            upper.append(np.concatenate([np.full(on.size, np.inf), np.zeros(off.size)]))
            split_ids.append(count_rows + np.argsort(both, kind="stable"))
            count_rows += both.size
    # the disjunct's rows over [v; y], y = maps[-1] (an affine map of the columns)
    v_part = np.zeros((rows.shape[0], width))
    v_part[:, :num_v] = rows[:, :num_v]
    expr.append(v_part + rows[:, num_v:] @ maps[-1])
    lower.append(np.full(rows.shape[0], -np.inf))
    upper.append(rhs)
    if region.num_rows:
        a = np.zeros((region.num_rows, width))
        a[:, :num_v] = region.rows
        expr.append(a)
        lower.append(np.full(region.num_rows, -np.inf))
        upper.append(region.rhs)
    t_rows = np.vstack(expr) if expr else np.zeros((0, width))
    m = t_rows.shape[0]
    # variables: the columns (v, h_U, one), then one basic variable per row
    n = width + m
    initial = np.zeros((m, n))
    initial[:, :width] = t_rows
    equations = np.zeros((m, n))
    equations[:, :width] = -t_rows
    equations[np.arange(m), width + np.arange(m)] = 1.0
    basic = width + np.arange(m)
    tableau = Tableau(equations, basic, one, pivot_tolerance, feasibility_tolerance, initial=initial)
    box_lo, box_hi = region.lower[0], region.upper[0]
    var_lo = np.concatenate([box_lo, np.zeros(count), [1.0], np.concatenate(lower) if lower else []])
    h_hi = np.concatenate([np.maximum(relaxation.upper[j][index, u], 0.0) for j, u in enumerate(unstable)]) if count else []
    var_hi = np.concatenate([box_hi, h_hi, [1.0], np.concatenate(upper) if upper else []])
    store = BoundStore(var_lo, var_hi)
    values = np.zeros(n)
    point = 0.5 * (box_lo + box_hi) if start is None else np.clip(start, box_lo, box_hi)
    values[:num_v] = point
    if count:  # the network's own ReLU outputs at the start point satisfy the triangles
        _, pre = chain.forward(point[None, :n_x])
        values[num_v : num_v + count] = np.concatenate(
            [np.clip(np.maximum(p[0, u], 0.0), 0.0, np.maximum(relaxation.upper[j][index, u], 0.0)) for j, (p, u) in enumerate(zip(pre, unstable))]
        )
    tableau.assign(values)
    outcome = tableau.check(store, max_pivots=max_pivots, bland_after=50, refactor_every=100, deadline=deadline)
    if outcome.status == INFEASIBLE:
        order = np.concatenate(triangle_ids + split_ids + [np.arange(count_rows, m)]).astype(np.int64)
        return LpOutcome(REFUTED, pivots=outcome.pivots, farkas=_farkas(tableau, store, width, order))
    if outcome.status in (BUDGET, OUT_OF_TIME):
        return LpOutcome(UNDECIDED, pivots=outcome.pivots)
    inputs = np.clip(tableau.values[:num_v], box_lo, box_hi)
    return LpOutcome(CANDIDATE, inputs, outcome.pivots, exact=count == 0)


def _farkas(tableau: Tableau, store: BoundStore, width: int, order: np.ndarray):
    """Farkas multipliers from the simplex's final basis, over the rows ``expr <= 0`` in ``order``.

    Row ``r`` of the tableau defines ``w_r = expr_r`` (``w_r`` bounded, ``expr_r`` affine in the
    columns). Phase 1 stops at a minimum of the sum of infeasibilities: the combination of the
    infeasible basic rows, ``+1`` above their bound and ``-1`` below (``sigma``), is
    ``y @ (w - expr) = 0`` with ``y`` solving ``B^T y = sigma`` (one infeasible row alone need not
    be infeasible on its own); its sign is chosen so that its minimum over the bounds is positive.
    Each row's multiplier then has the sign its bound allows (``w >= 0``: ``y >= 0`` on
    ``-expr <= 0``; ``w <= c``: ``y <= 0`` on ``expr - c <= 0``), and becomes a non-negative
    multiplier of the row as written in the certificate (``expr' <= 0``). None when the
    multipliers, once round-off of the wrong sign is dropped, do not refute the LP with a clear
    margin (the checker would reject them).
    """
    basic = tableau.basic
    xb = tableau.values[basic]
    scale = 1.0 + np.abs(xb)
    tol = tableau.feasibility_tolerance
    sigma = (xb > store.upper[basic] + tol * scale).astype(np.float64) - (xb < store.lower[basic] - tol * scale)
    if not np.any(sigma):
        return None
    try:
        y = np.linalg.solve(tableau.equations[:, basic].T, sigma)
    except np.linalg.LinAlgError:
        return None
    rows_lo, rows_hi = store.lower[width:], store.upper[width:]
    at_lower = np.isfinite(rows_lo) & ~np.isfinite(rows_hi)  # w >= 0 (triangles, active splits)

    def kept(y):  # the multipliers with the sign each row's bound allows, signed as y
        return np.where(at_lower, np.maximum(y, 0.0), np.minimum(y, 0.0))

    def minimum(y):  # of y @ (w - expr) over the bounds, and its magnitude
        c = y @ tableau.equations
        with np.errstate(invalid="ignore"):  # 0 * inf: a variable the row does not use
            low = np.where(c > 0, c * store.lower, np.where(c < 0, c * store.upper, 0.0))
        return float(np.sum(low)), float(np.sum(np.abs(low)))

    y = max((kept(y), kept(-y)), key=lambda s: minimum(s)[0])
    low, size = minimum(y)
    if not low > 1e-9 * size:  # NaN included
        return None
    values = np.abs(y)[order]
    keep = np.flatnonzero(values > 0)
    return keep, values[keep]
