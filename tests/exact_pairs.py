"""The exact largest output change over the pairs of a box at distance <= delta: a two-copy MILP (HiGHS).

Independent of the solver's bounds: each copy's ReLUs are encoded with a binary phase and big-M
constants from plain interval arithmetic over the domain, ``|x1 - x2| <= delta`` exactly (L-inf: a
box; L1: ``t >= |x1 - x2|``, ``sum t <= delta``), and ``y2_l - y1_l`` maximised for each output ``l``.

:func:`eps_interval` gives, per output, the MILP's best pair value (a lower bound of ``eps*_l``: a
feasible pair, up to HiGHS's feasibility tolerance) and its dual bound (an upper bound of ``eps*_l``);
they are equal when HiGHS proves optimality within the time limit.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp


def _intervals(weights, biases, lower, upper):
    bounds, lo, hi = [], lower, upper
    for k, (w, b) in enumerate(zip(weights, biases)):
        mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
        z_lo, z_hi = w @ mid + b - np.abs(w) @ rad, w @ mid + b + np.abs(w) @ rad
        bounds.append((z_lo, z_hi))
        lo, hi = np.maximum(z_lo, 0.0), np.maximum(z_hi, 0.0)
    return bounds


def exact_eps(chain, lower: np.ndarray, upper: np.ndarray, delta: float, norm: str = "inf") -> np.ndarray:
    """``max y_l(x2) - y_l(x1)`` over ``x1, x2`` in ``[lower, upper]``, ``||x1 - x2|| <= delta``, per output."""
    low, high = eps_interval(chain, lower, upper, delta, norm, time_limit=60.0)
    if not np.allclose(low, high, rtol=1e-6, atol=1e-9):
        raise RuntimeError("the MILP did not prove optimality within 60 s")
    return low


def eps_interval(chain, lower: np.ndarray, upper: np.ndarray, delta: float, norm: str = "inf",
                 time_limit: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Per output, ``(primal, dual)``: ``primal <= eps*_l <= dual`` (see the module docstring)."""
    weights = [np.asarray(w, dtype=np.float64) for w in chain.weights]
    biases = [np.asarray(b, dtype=np.float64) for b in chain.biases]
    n, m = weights[0].shape[1], weights[-1].shape[0]
    intervals = _intervals(weights, biases, lower, upper)
    # variables: per copy x (n), per hidden layer z, h, a (binary), y (m); then t (n) for L1
    names, lo_b, hi_b, integer = {}, [], [], []

    def add(key, size, lo, hi, is_int=False):
        names[key] = len(lo_b)
        lo_b.extend(np.broadcast_to(lo, size))
        hi_b.extend(np.broadcast_to(hi, size))
        integer.extend([1 if is_int else 0] * size)

    for c in (1, 2):
        add((c, "x"), n, lower, upper)
        for k in range(len(weights) - 1):
            z_lo, z_hi = intervals[k]
            size = z_lo.size
            add((c, "z", k), size, z_lo, z_hi)
            add((c, "h", k), size, 0.0, np.maximum(z_hi, 0.0))
            add((c, "a", k), size, 0.0, 1.0, True)
        add((c, "y"), m, -np.inf, np.inf)
    if norm == "1":
        add("t", n, 0.0, delta)
    total = len(lo_b)
    rows, row_lo, row_hi = [], [], []

    def constraint(coefs: dict, lo, hi):
        row = np.zeros(total)
        for (key, offset), value in coefs.items():
            row[names[key] + offset] += value
        rows.append(row)
        row_lo.append(lo)
        row_hi.append(hi)

    for c in (1, 2):
        previous = (c, "x")
        for k, (w, b) in enumerate(zip(weights, biases)):
            last = k == len(weights) - 1
            target = (c, "y") if last else (c, "z", k)
            for j in range(w.shape[0]):
                coefs = {(target, j): 1.0}
                for i in range(w.shape[1]):
                    if w[j, i]:
                        coefs[(previous, i)] = coefs.get((previous, i), 0.0) - w[j, i]
                constraint(coefs, b[j], b[j])
            if last:
                break
            z_lo, z_hi = intervals[k]
            h, z, a = (c, "h", k), (c, "z", k), (c, "a", k)
            for j in range(w.shape[0]):
                constraint({(h, j): 1.0, (z, j): -1.0}, 0.0, np.inf)  # h >= z
                constraint({(h, j): 1.0, (z, j): -1.0, (a, j): -z_lo[j]}, -np.inf, -z_lo[j])  # h <= z - l (1 - a)
                constraint({(h, j): 1.0, (a, j): -max(z_hi[j], 0.0)}, -np.inf, 0.0)  # h <= u a
            previous = h
    for i in range(n):
        if norm == "inf":
            constraint({((2, "x"), i): 1.0, ((1, "x"), i): -1.0}, -delta, delta)
        else:
            constraint({("t", i): 1.0, ((2, "x"), i): -1.0, ((1, "x"), i): 1.0}, 0.0, np.inf)
            constraint({("t", i): 1.0, ((2, "x"), i): 1.0, ((1, "x"), i): -1.0}, 0.0, np.inf)
    if norm == "1":
        constraint({("t", i): 1.0 for i in range(n)}, -np.inf, delta)
    matrix = np.array(rows)
    best, bound = np.zeros(m), np.zeros(m)
    for l in range(m):
        objective = np.zeros(total)
        objective[names[(2, "y")] + l], objective[names[(1, "y")] + l] = -1.0, 1.0  # minimise y1 - y2
        out = milp(objective, constraints=LinearConstraint(matrix, row_lo, row_hi), integrality=np.array(integer),
                   bounds=Bounds(lo_b, hi_b), options={"mip_rel_gap": 1e-9, "time_limit": time_limit})
        if out.x is None or out.status not in (0, 1):
            raise RuntimeError(f"MILP failed: {out.message}")
        best[l] = -out.fun
        dual = getattr(out, "mip_dual_bound", None)
        bound[l] = max(-out.fun, -dual) if dual is not None and np.isfinite(dual) else np.inf
    return best, bound
