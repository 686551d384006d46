"""The bounded simplex alone (``Tableau`` + ``BoundStore``) against scipy's HiGHS on random bounded LPs.

Problems: ``E @ z = 0`` with ``z[one] == 1`` carrying the constants, and ``lo <= z <= hi`` with
finite bounds, some of them fixed (``lo == hi``) and some of tiny width (1e-9 .. 1e-6).

Ground truth comes from HiGHS with tightened tolerances (1e-10) and from an *elastic* LP, the
smallest uniform widening ``t`` of every bound that makes the problem feasible:

* ``t == 0`` (to 1e-12): feasible, within both solvers' tolerances;
* ``t >= 1e-6``: infeasible by a margin far above both tolerances (the simplex's 1e-9 relative);
* in between: too close to call with tolerances, the case is not compared (counted, and the
  coverage test checks such cases are rare).

Problems that are feasible by construction hold a planted point ``z*`` inside every bound.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy.optimize import linprog

from reluverify.solver.bound_store import BoundStore
from reluverify.solver.tableau import BUDGET, FEASIBLE, INFEASIBLE, Tableau

HIGHS_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
FEASIBLE_T = 1e-12  # elastic distance at or below which a problem counts as feasible
INFEASIBLE_T = 1e-6  # elastic distance at or above which it counts as clearly infeasible
ASSIGNMENT_TOLERANCE = 1e-7
MAX_PIVOTS = 20_000

# Regression (found by these tests, fixed in 70936a7): the phase-1 step must move a non-basic variable
# whose room is below ``feasibility_tolerance * (1 + |v|)`` when a large tableau coefficient turns that
# move into a change of a basic variable far above the tolerance (random seed 183 and the minimal case).


# ------------------------------------------------------------------ problems
class LP:
    """A random feasibility problem; ``planted`` is a point satisfying the equations (None if unknown)."""

    def __init__(self, equations, basic, one, lower, upper, planted):
        self.equations = equations
        self.basic = basic
        self.one = one
        self.lower = lower
        self.upper = upper
        self.planted = planted

    @property
    def n(self) -> int:
        return self.equations.shape[1]

    def tableau(self, **kwargs) -> Tableau:
        return Tableau(self.equations.copy(), self.basic.copy(), self.one, **kwargs)

    def store(self) -> BoundStore:
        return BoundStore(self.lower, self.upper)


def _log_uniform(rng, lo: float, hi: float) -> float:
    return float(10.0 ** rng.uniform(np.log10(lo), np.log10(hi)))


def random_lp(rng: np.random.Generator, planted_feasible: bool) -> LP:
    """``s = A x + c`` in slack form, optionally mixed by a random invertible matrix and re-based.

    Bounds per variable: a box around the planted value (any width, tiny ones included), fixed at
    it, or (when not ``planted_feasible``) a random box or a random fixed value.
    """
    n_x = int(rng.integers(1, 10))
    m = int(rng.integers(1, 8))
    a = rng.normal(size=(m, n_x))
    a[rng.random(a.shape) < 0.3] = 0.0
    c = rng.normal(size=m)
    n = n_x + m + 1
    one = n - 1
    e = np.zeros((m, n))
    e[:, :n_x] = -a
    e[:, n_x : n_x + m] = np.eye(m)
    e[:, one] = -c
    x_star = rng.uniform(-2.0, 2.0, n_x)
    z_star = np.concatenate([x_star, a @ x_star + c, [1.0]])
    basic = np.arange(n_x, n_x + m)
    if rng.random() < 0.5:  # an equivalent system with dense rows
        while True:
            mix = rng.normal(size=(m, m))
            if np.linalg.cond(mix) < 1e3:
                break
        e = mix @ e
    if rng.random() < 0.5:  # a random starting basis among well-conditioned ones
        for _ in range(20):
            cols = np.sort(rng.choice(n - 1, size=m, replace=False))
            if np.linalg.cond(e[:, cols]) < 1e4:
                basic = cols
                break
    lower = np.empty(n)
    upper = np.empty(n)
    kinds = ["around", "around", "fixed", "tiny"] + ([] if planted_feasible else ["random", "random", "fixed_random"])
    for j in range(n - 1):
        kind = kinds[int(rng.integers(len(kinds)))]
        centre = z_star[j]
        if kind == "around":
            lower[j] = centre - _log_uniform(rng, 1e-9, 3.0) * (rng.random() < 0.9)
            upper[j] = centre + _log_uniform(rng, 1e-9, 3.0) * (rng.random() < 0.9)
        elif kind == "fixed":
            lower[j] = upper[j] = centre
        elif kind == "tiny":
            width = _log_uniform(rng, 1e-9, 1e-6)
            offset = rng.uniform(0.0, width)
            lower[j], upper[j] = centre - offset, centre - offset + width
        elif kind == "random":
            lower[j] = rng.uniform(-3.0, 3.0)
            upper[j] = lower[j] + (_log_uniform(rng, 1e-9, 4.0) if rng.random() < 0.9 else 0.0)
        else:
            lower[j] = upper[j] = rng.uniform(-3.0, 3.0)
    lower[one] = upper[one] = 1.0
    return LP(e, basic, one, lower, upper, z_star if planted_feasible else None)


def add_objective_row(lp: LP, objective: np.ndarray, bound: float) -> LP:
    """A copy with one more variable ``s = objective @ z`` (basic in the new row), bounded by ``+-bound``."""
    m, n = lp.equations.shape
    e = np.zeros((m + 1, n + 1))
    e[:m, :n] = lp.equations
    e[m, :n] = -objective
    e[m, n] = 1.0
    lower = np.append(lp.lower, -bound)
    upper = np.append(lp.upper, bound)
    planted = None if lp.planted is None else np.append(lp.planted, objective @ lp.planted)
    return LP(e, np.append(lp.basic, n), lp.one, lower, upper, planted)


# ------------------------------------------------------------------ references
def highs_feasible(equations, lower, upper) -> bool:
    n = equations.shape[1]
    res = linprog(np.zeros(n), A_eq=equations, b_eq=np.zeros(equations.shape[0]), bounds=list(zip(lower, upper)),
                  method="highs", options=HIGHS_OPTIONS)
    assert res.status in (0, 2), res.message
    return res.status == 0


def elastic_distance(equations, lower, upper, one) -> float:
    """min t >= 0 such that ``E z = 0``, ``z[one] = 1`` and ``lo - t <= z <= hi + t`` (HiGHS)."""
    m, n = equations.shape
    others = np.array([j for j in range(n) if j != one])
    k = others.size
    a_ub = np.zeros((2 * k, n + 1))
    a_ub[np.arange(k), others] = 1.0
    a_ub[k + np.arange(k), others] = -1.0
    a_ub[:, n] = -1.0
    b_ub = np.concatenate([upper[others], -lower[others]])
    bounds = [(None, None)] * n + [(0.0, None)]
    bounds[one] = (1.0, 1.0)
    cost = np.zeros(n + 1)
    cost[n] = 1.0
    res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=np.hstack([equations, np.zeros((m, 1))]), b_eq=np.zeros(m),
                  bounds=bounds, method="highs", options=HIGHS_OPTIONS)
    assert res.status == 0, res.message
    return float(res.fun)


def truth(lp: LP, lower=None, upper=None) -> str | None:
    """'feasible', 'infeasible', or None when the problem is too close to the tolerances to call."""
    lower = lp.lower if lower is None else lower
    upper = lp.upper if upper is None else upper
    t = elastic_distance(lp.equations, lower, upper, lp.one)
    if t <= FEASIBLE_T:
        verdict = "feasible"
    elif t >= INFEASIBLE_T:
        verdict = "infeasible"
    else:
        return None
    assert highs_feasible(lp.equations, lower, upper) == (verdict == "feasible"), (t, "HiGHS contradicts itself")
    return verdict


# ------------------------------------------------------------------ checks
def check(tab: Tableau, store: BoundStore, refactor_every: int = 100):
    out = tab.check(store, max_pivots=MAX_PIVOTS, bland_after=50, refactor_every=refactor_every)
    assert out.status != BUDGET, "pivot budget exhausted on a tiny LP (cycling?)"
    return out


def assert_assignment_feasible(tab: Tableau, store: BoundStore) -> None:
    v = tab.values
    assert v[tab.one] == 1.0
    residual = tab.equations @ v
    assert np.all(np.abs(residual) <= ASSIGNMENT_TOLERANCE), f"equations broken by {np.abs(residual).max():.3g}"
    assert np.all(v >= store.lower - ASSIGNMENT_TOLERANCE), f"lower bound broken by {np.max(store.lower - v):.3g}"
    assert np.all(v <= store.upper + ASSIGNMENT_TOLERANCE), f"upper bound broken by {np.max(v - store.upper):.3g}"


def infeasibility_certificate_gap(tab: Tableau, store: BoundStore) -> float:
    """``min over the non-basic box of sigma @ T @ z`` minus what the basic bounds allow for it.

    ``sigma`` is +1 for basic variables above their upper bound and -1 below their lower bound.
    A positive gap proves that no assignment satisfies the bounds (Farkas-style certificate).
    """
    basic = tab.basic
    xb = tab.values[basic]
    lb, ub = store.lower[basic], store.upper[basic]
    scale = 1.0 + np.abs(xb)
    below = xb < lb - tab.feasibility_tolerance * scale
    above = xb > ub + tab.feasibility_tolerance * scale
    sigma = above.astype(float) - below.astype(float)
    rate = sigma @ tab.T
    nonbasic = tab.row_of < 0
    reachable = np.minimum(rate * store.lower, rate * store.upper)[nonbasic].sum()
    allowed = ub[above].sum() - lb[below].sum()
    return float(reachable - allowed)


def fresh_T(equations: np.ndarray, basic: np.ndarray) -> np.ndarray:
    t = -np.linalg.solve(equations[:, basic], equations)
    t[:, basic] = 0.0
    return t


# ------------------------------------------------------------------ feasibility
FEASIBILITY_SEEDS = range(240)
FEASIBILITY_PARAMS = list(FEASIBILITY_SEEDS)


@functools.lru_cache(maxsize=None)
def _feasibility_case(seed: int):
    """(problem, expected verdict), cached: the coverage test reuses the references (never mutated)."""
    rng = np.random.default_rng(seed)
    lp = random_lp(rng, planted_feasible=seed % 3 == 0)
    expected = "feasible" if lp.planted is not None else truth(lp)
    if lp.planted is not None:
        assert truth(lp) == "feasible"
    return lp, expected


@pytest.mark.parametrize("seed", FEASIBILITY_PARAMS)
def test_feasibility_agrees_with_highs(seed):
    lp, expected = _feasibility_case(seed)
    if expected is None:
        return  # within tolerance of the boundary: see test_generator_coverage
    tab, store = lp.tableau(), lp.store()
    out = check(tab, store)
    assert out.status == (FEASIBLE if expected == "feasible" else INFEASIBLE), (seed, out)
    if out.status == FEASIBLE:
        assert_assignment_feasible(tab, store)
    else:
        assert 0 <= out.conflict_row < lp.equations.shape[0]
        assert infeasibility_certificate_gap(tab, store) > 0.0
    # the bounds are only read, never changed by the simplex
    assert np.array_equal(store.lower, lp.lower) and np.array_equal(store.upper, lp.upper)


def test_generator_coverage():
    verdicts = [_feasibility_case(seed)[1] for seed in FEASIBILITY_SEEDS]
    feasible, infeasible = verdicts.count("feasible"), verdicts.count("infeasible")
    ambiguous = verdicts.count(None)
    assert feasible >= 80 and infeasible >= 60, (feasible, infeasible)
    assert ambiguous <= 0.03 * len(verdicts), ambiguous
    # the special bounds are really drawn
    fixed = tiny = 0
    for seed in FEASIBILITY_SEEDS:
        lp = _feasibility_case(seed)[0]
        width = (lp.upper - lp.lower)[:-1]
        fixed += int(np.sum(width == 0))
        tiny += int(np.sum((width > 0) & (width <= 1e-6)))
    assert fixed >= 100 and tiny >= 100


def test_tiny_room_with_a_large_coefficient_is_still_used():
    """Minimal reproducer: ``b = 1000 x``, ``x in [0, 9e-10]``, ``b == 5e-7``; ``x = 5e-10`` solves it.

    x's whole range is below the feasibility tolerance (1e-9), but moving across it moves ``b`` by
    9e-7, 900 times the tolerance. check() declares the problem infeasible without moving x.
    """
    equations = np.array([[-1000.0, 1.0, 0.0]])  # columns x, b, one
    lower, upper = np.array([0.0, 5e-7, 1.0]), np.array([9e-10, 5e-7, 1.0])
    assert highs_feasible(equations, lower, upper)
    tab, store = Tableau(equations, np.array([1]), 2), BoundStore(lower, upper)
    assert check(tab, store).status == FEASIBLE
    assert_assignment_feasible(tab, store)


def test_all_variables_fixed_at_a_solution_and_one_ulp_away():
    rng = np.random.default_rng(5)
    lp = random_lp(rng, planted_feasible=True)
    lp.lower[:] = lp.upper[:] = lp.planted
    tab, store = lp.tableau(), lp.store()
    assert check(tab, store).status == FEASIBLE
    assert_assignment_feasible(tab, store)
    # move one variable that appears in an equation by 1e-3: now every point is off
    j = int(np.flatnonzero(np.any(lp.equations[:, :-1] != 0, axis=0))[0])
    lp.lower[j] = lp.upper[j] = lp.planted[j] + 1e-3
    tab, store = lp.tableau(), lp.store()
    assert check(tab, store).status == INFEASIBLE
    assert not highs_feasible(lp.equations, lp.lower, lp.upper)


# ------------------------------------------------------------------ optimum by bisection
def bisect_minimum(lp: LP, s: int, tolerance: float = 1e-10) -> float:
    """Smallest ``t`` with ``s <= t`` feasible, by bisection, warm-starting one tableau throughout."""
    tab, store = lp.tableau(), lp.store()
    assert check(tab, store).status == FEASIBLE
    high = float(tab.values[s])  # feasible
    low = float(store.lower[s]) - 1.0  # below s's own bound: infeasible
    while high - low > tolerance * (1.0 + abs(high)):
        mid = 0.5 * (low + high)
        before = store.lower.copy(), store.upper.copy()
        store.push()
        _, conflict = store.tighten(np.array([s]), None, np.array([mid]))
        assert not conflict
        feasible = check(tab, store).status == FEASIBLE
        if feasible:
            assert_assignment_feasible(tab, store)
        store.pop()
        assert np.array_equal(store.lower, before[0]) and np.array_equal(store.upper, before[1])
        if feasible:
            high = mid
        else:
            low = mid
    return high


@pytest.mark.parametrize("seed", range(60))
def test_optimum_by_bisection_matches_highs(seed):
    rng = np.random.default_rng(10_000 + seed)
    base = random_lp(rng, planted_feasible=True)
    objective = rng.normal(size=base.n)
    objective[base.one] = 0.0
    objective[rng.random(base.n) < 0.3] = 0.0
    bound = float(np.abs(objective) @ np.maximum(np.abs(base.lower), np.abs(base.upper)) + 1.0)
    lp = add_objective_row(base, objective, bound)
    s = base.n
    ours = bisect_minimum(lp, s)
    res = linprog(objective, A_eq=base.equations, b_eq=np.zeros(base.equations.shape[0]),
                  bounds=list(zip(base.lower, base.upper)), method="highs", options=HIGHS_OPTIONS)
    assert res.status == 0, res.message
    assert abs(ours - res.fun) <= 1e-6 * (1.0 + abs(res.fun)), (ours, res.fun)


# ------------------------------------------------------------------ warm start
def _tightened_bounds(rng, lp: LP, store: BoundStore):
    """New bounds for a few variables: sometimes cutting off the current point, sometimes fixing one."""
    k = int(rng.integers(1, max(2, lp.n // 2)))
    index = rng.choice(lp.n - 1, size=k, replace=False)
    lo, hi = store.lower[index], store.upper[index]
    u = rng.random((2, k))
    new_lo = lo + (hi - lo) * u.min(axis=0) * (rng.random(k) < 0.7)
    new_hi = hi - (hi - lo) * (1.0 - u.max(axis=0)) * (rng.random(k) < 0.7)
    fix = rng.random(k) < 0.15
    new_hi = np.where(fix, new_lo, new_hi)
    return index, new_lo, new_hi


@pytest.mark.parametrize("seed", range(60))
def test_warm_start_after_tightening_and_exact_restore_after_pop(seed):
    rng = np.random.default_rng(20_000 + seed)
    lp = random_lp(rng, planted_feasible=seed % 2 == 0)
    tab, store = lp.tableau(), lp.store()
    first = check(tab, store)
    if first.status != FEASIBLE:
        return  # warm start from a feasible basis is what is tested here
    assert_assignment_feasible(tab, store)

    # nothing changed: the warm start has nothing to do
    values, basic = tab.values.copy(), tab.basic.copy()
    again = check(tab, store)
    assert again.status == FEASIBLE and again.pivots == 0
    assert np.array_equal(tab.values, values) and np.array_equal(tab.basic, basic)

    snapshots = [(store.lower.copy(), store.upper.copy())]
    for depth in range(3):
        store.push()
        index, new_lo, new_hi = _tightened_bounds(rng, lp, store)
        _, conflict = store.tighten(index, new_lo, new_hi)
        assert not conflict  # the new bounds lie inside the old ones
        basis_before = tab.basic.copy()
        expected = truth(lp, store.lower, store.upper)
        out = check(tab, store)
        if expected is not None:
            assert out.status == (FEASIBLE if expected == "feasible" else INFEASIBLE), (seed, depth)
            # a cold start on the same bounds agrees
            cold = check(lp.tableau(), BoundStore(store.lower, store.upper))
            assert cold.status == out.status
        if out.status == FEASIBLE:
            assert_assignment_feasible(tab, store)
        else:
            assert infeasibility_certificate_gap(tab, store) > 0.0
        # the basis is kept across calls (warm start), never reset to the initial one
        if out.pivots == 0:
            assert np.array_equal(tab.basic, basis_before)
        snapshots.append((store.lower.copy(), store.upper.copy()))
        if out.status != FEASIBLE:
            break
    for lower, upper in reversed(snapshots[:-1]):
        store.pop()
        assert np.array_equal(store.lower, lower) and np.array_equal(store.upper, upper)
    assert store.level == 0
    # back at the root the problem is feasible again, from whatever basis the search left
    assert check(tab, store).status == FEASIBLE
    assert_assignment_feasible(tab, store)


# ------------------------------------------------------------------ refactorisation
@pytest.mark.parametrize("seed", range(30))
def test_refactor_after_many_pivots_matches_the_equations(seed):
    rng = np.random.default_rng(30_000 + seed)
    lp = random_lp(rng, planted_feasible=True)
    tab = lp.tableau()
    m = lp.equations.shape[0]
    tab.assign(lp.planted)
    for _ in range(300):  # random pivots, each on the largest entry of a random row (partial pivoting)
        row = int(rng.integers(m))
        candidates = np.flatnonzero((tab.row_of < 0) & (np.arange(lp.n) != lp.one))
        entering = int(candidates[np.argmax(np.abs(tab.T[row, candidates]))])
        if abs(tab.T[row, entering]) < 1e-6:
            continue
        tab.pivot(row, entering)
    assert tab.total_pivots >= 50
    drifted = tab.T.copy()
    reference = fresh_T(lp.equations, tab.basic)
    assert np.max(np.abs(drifted - reference)) <= 1e-9 * max(1.0, np.abs(reference).max())
    count = tab.refactorisations
    tab.refactor()
    assert tab.refactorisations == count + 1 and tab.pivots_since_refactor == 0
    np.testing.assert_allclose(tab.T, reference, rtol=0, atol=1e-12 * max(1.0, np.abs(reference).max()))
    assert np.all(tab.T[:, tab.basic] == 0.0)
    # the basic values are recomputed from the non-basic ones and the equations hold again
    assert np.max(np.abs(lp.equations @ tab.values)) <= 1e-9


@pytest.mark.parametrize("seed", range(30))
def test_tableau_drift_over_many_warm_started_checks(seed):
    """Many checks on changing bounds with no automatic refactorisation: T stays within 1e-9."""
    rng = np.random.default_rng(40_000 + seed)
    lp = random_lp(rng, planted_feasible=True)
    tab, store = lp.tableau(), lp.store()
    for _ in range(40):
        store.push()
        index, new_lo, new_hi = _tightened_bounds(rng, lp, store)
        store.tighten(index, new_lo, new_hi)
        out = check(tab, store, refactor_every=10**9)
        if out.status == FEASIBLE:
            assert_assignment_feasible(tab, store)
        store.pop()
    assert np.array_equal(store.lower, lp.lower) and np.array_equal(store.upper, lp.upper)
    reference = fresh_T(lp.equations, tab.basic)
    assert np.max(np.abs(tab.T - reference)) <= 1e-9 * max(1.0, np.abs(reference).max())


def test_refactor_every_bounds_the_pivots_between_refactorisations():
    rng = np.random.default_rng(7)
    for _ in range(20):
        lp = random_lp(rng, planted_feasible=False)
        tab, store = lp.tableau(), lp.store()
        out = check(tab, store, refactor_every=3)
        assert tab.pivots_since_refactor < 5 * 3
        assert tab.refactorisations >= 1 + out.pivots // (5 * 3)
        # between refactorisations the assignment stays on the original equations
        residual = np.abs(tab.equations @ tab.values).max() if tab.m else 0.0
        assert residual <= 1e-8 * (1.0 + np.abs(tab.values).max())
