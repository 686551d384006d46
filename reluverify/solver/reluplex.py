"""The Reluplex procedure for one conjunctive problem (one disjunct of a query).

One tableau (:mod:`~reluverify.solver.reluplex_encoding`: the inputs ``v``, per ReLU ``b``, ``f`` and
``a = f - b``, the outputs ``y``, a slack per row with ``s_r <= rhs_r``), built once per disjunct and
reused for every box it is asked about.

The simplex sees only the equations and bounds. ReLU pairs are handled lazily: when the
simplex finds an assignment that breaks ``f = max(0, b)``, the pair is *repaired* by
updating a non-basic variable of the pair (pivoting one in if both are basic); a pair
repaired more than ``repair_threshold`` times is *case-split* into its active and inactive
phases, explored depth first with exact backtracking of the bound store. At the root and
after every split, bound tightening (symbolic propagation over the network with the
current bounds, and the tableau rows) narrows bounds and fixes ReLU phases; a phase fixed
by bounds is never split. The search is complete: every ReLU is eventually fixed or split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from reluverify.network import ReluChain
from reluverify.solver.bound_store import BoundStore
from reluverify.solver.bounds.deeppoly import forward_bounds
from reluverify.solver.bounds.rows import row_lower_bounds
from reluverify.solver.options import SolverOptions
from reluverify.solver.reluplex_encoding import VariableLayout, build_equations, initial_tableau
from reluverify.solver.result import Statistics
from reluverify.solver.tableau import BUDGET, FEASIBLE, INFEASIBLE, OUT_OF_TIME, Tableau

ACTIVE, INACTIVE = 1, 0


@dataclass(frozen=True)
class LeafOutcome:
    status: str  # "sat", "unsat", "timeout", "unknown"
    inputs: np.ndarray | None = None
    reason: str = ""


class _Budget(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ReluplexEngine:
    """Reluplex on ``exists v in box: rows[k] @ [v; N(v[:n_x])] <= rhs[k]`` for the *active* rows k.

    One engine (one tableau) serves every disjunct of a query: ``rows`` stacks all their rows
    (and the query's input rows); :meth:`solve` is told which rows are active, and only those
    get their ``rhs`` as an upper bound. Inactive rows are ordinary variables.
    """

    def __init__(
        self,
        chain: ReluChain,
        num_v: int,
        rows: np.ndarray,
        rhs: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        options: SolverOptions,
        statistics: Statistics,
        known_pre: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """``known_pre`` = (lower, upper) pre-activation bounds valid on the whole box (reused facts)."""
        self.chain = chain
        self.options = options
        self.stats = statistics
        self.rows = np.asarray(rows, dtype=np.float64).reshape(-1, num_v + chain.output_size)
        self.rhs = np.asarray(rhs, dtype=np.float64).reshape(-1)
        self.layout = VariableLayout(num_v, chain.input_size, chain.num_relus, chain.output_size, self.rows.shape[0])
        self.active = np.zeros(0, dtype=np.int64)
        layer_sizes = chain.layer_sizes
        self.layer_slices = []
        start = 0
        for size in layer_sizes:
            self.layer_slices.append(slice(start, start + size))
            start += size
        lay = self.layout
        equations = build_equations(chain, lay, self.rows)
        basic = np.concatenate([lay.b, lay.a, lay.y, lay.s]).astype(np.int64)
        self.tableau = Tableau(
            equations,
            basic,
            lay.one,
            options.tolerances.pivot,
            options.tolerances.feasibility,
            initial=initial_tableau(chain, lay, self.rows),
        )
        # initial bounds: the box, then everything derived from it (no row is active yet)
        lo = np.full(lay.size, -np.inf)
        hi = np.full(lay.size, np.inf)
        lo[lay.v], hi[lay.v] = lower, upper
        lo[lay.one] = hi[lay.one] = 1.0
        lo[lay.f] = 0.0
        lo[lay.a] = 0.0
        self._initial_bounds(lo, hi)
        if known_pre is not None:
            lo[lay.b] = np.maximum(lo[lay.b], known_pre[0])
            hi[lay.b] = np.maximum(np.minimum(hi[lay.b], known_pre[1]), lo[lay.b])
        self.store = BoundStore(lo, hi)
        self.stats.fixed_relus += int(np.sum(self.phases() >= 0))
        self.seed(0.5 * (lower + upper))

    def seed(self, v: np.ndarray) -> None:
        """Set every variable to the network's values at input ``v``.

        The equations then hold exactly, every ReLU pair is satisfied, and every bound derived
        soundly from a box containing ``v`` holds too; only the property rows may be violated,
        so the simplex starts next to a solution. Works for any basis.
        """
        lay = self.layout
        values = np.zeros(lay.size)
        values[lay.v] = v
        y, pre = self.chain.forward(np.asarray(v[: lay.num_x])[None, :])
        b = np.concatenate([p[0] for p in pre]) if pre else np.zeros(0)
        f = np.maximum(b, 0.0)
        values[lay.b], values[lay.f], values[lay.a] = b, f, f - b
        values[lay.y] = y[0]
        if lay.num_s:
            values[lay.s] = self.rows @ np.concatenate([v, y[0]])
        values[lay.one] = 1.0
        self.tableau.assign(values)

    # ------------------------------------------------------------- bounds
    def _propagate(self, lo: np.ndarray, hi: np.ndarray, known: bool):
        lay = self.layout
        x_lo, x_hi = lo[lay.x][None, :], hi[lay.x][None, :]
        known_lower = [lo[lay.b][s][None, :] for s in self.layer_slices] if known else None
        known_upper = [hi[lay.b][s][None, :] for s in self.layer_slices] if known else None
        bounds = forward_bounds(
            self.chain, x_lo, x_hi, known_lower, known_upper, self.options.tolerances.feasibility, self.options.refine_bounds
        )
        if bounds.infeasible[0]:
            return None
        pre_lo = np.concatenate([b[0] for b in bounds.pre_lower]) if bounds.pre_lower else np.zeros(0)
        pre_hi = np.concatenate([b[0] for b in bounds.pre_upper]) if bounds.pre_upper else np.zeros(0)
        out_lo, out_hi = bounds.out_lower[0], bounds.out_upper[0]
        s_lo = s_hi = np.zeros(0)
        if lay.num_s:
            n_v = lay.num_v
            both = np.vstack([self.rows, -self.rows])
            rb = row_lower_bounds(
                self.chain,
                x_lo,
                x_hi,
                bounds,
                both[:, n_v:],
                both[:, : lay.num_x],
            )
            low = rb.lower[0]
            # auxiliary input variables (beyond the network inputs) enter by interval arithmetic
            if n_v > lay.num_x:
                aux = both[:, lay.num_x : n_v]
                a_lo, a_hi = lo[lay.num_x : n_v], hi[lay.num_x : n_v]
                low = low + np.minimum(aux * a_lo, aux * a_hi).sum(axis=1)
            k = lay.num_s
            s_lo, s_hi = low[:k], -low[k:]
        return pre_lo, pre_hi, out_lo, out_hi, s_lo, s_hi

    def _initial_bounds(self, lo: np.ndarray, hi: np.ndarray) -> None:
        lay = self.layout
        result = self._propagate(lo, hi, known=False)
        assert result is not None
        pre_lo, pre_hi, out_lo, out_hi, s_lo, s_hi = result
        lo[lay.b], hi[lay.b] = pre_lo, pre_hi
        lo[lay.f], hi[lay.f] = np.maximum(pre_lo, 0.0), np.maximum(pre_hi, 0.0)
        lo[lay.a], hi[lay.a] = np.maximum(-pre_hi, 0.0), np.maximum(-pre_lo, 0.0)
        lo[lay.y], hi[lay.y] = out_lo, out_hi
        if lay.num_s:
            lo[lay.s] = s_lo
            hi[lay.s] = np.maximum(s_hi, s_lo)

    def tighten(self) -> bool:
        """Network-level and row-level bound tightening; False on a conflict (no solution here)."""
        lay = self.layout
        store = self.store
        tol = self.options.tolerances.feasibility
        changed_total = 0
        unfixed_before = int(np.sum(self.phases() < 0))
        if self.options.reluplex.network_tightening:
            result = self._propagate(store.lower, store.upper, known=True)
            if result is None:
                return False
            pre_lo, pre_hi, out_lo, out_hi, s_lo, s_hi = result
            updates = [
                (lay.b, pre_lo, pre_hi),
                (lay.f, np.maximum(pre_lo, 0.0), np.maximum(pre_hi, 0.0)),
                (lay.a, np.maximum(-pre_hi, 0.0), np.maximum(-pre_lo, 0.0)),
                (lay.y, out_lo, out_hi),
            ]
            if lay.num_s:
                updates.append((lay.s, s_lo, s_hi))
            for index, new_lo, new_hi in updates:
                changed, conflict = store.tighten(index, new_lo, new_hi, tol, min_change=1e-12)
                if conflict:
                    return False
                changed_total += changed
        if self.options.reluplex.row_tightening:
            row_lo, row_hi = self.tableau.row_bounds(store)
            slack = 1e-9 * (1.0 + np.abs(row_lo) + np.abs(row_hi))
            changed, conflict = store.tighten(self.tableau.basic, row_lo - slack, row_hi + slack, tol, min_change=1e-7)
            if conflict:
                return False
            changed_total += changed
        changed, conflict = self._relu_consistency()
        if conflict:
            return False
        changed_total += changed
        self.stats.tightened_bounds += changed_total
        self.stats.fixed_relus += unfixed_before - int(np.sum(self.phases() < 0))
        return True

    def _relu_consistency(self) -> tuple[int, bool]:
        """Make the bounds of every pair agree: ``f = relu(b)``, ``a = relu(-b)``, ``b = f - a``.

        Whatever tightened ``b`` (rows, a sub-box, a split), a phase fixed by ``b``'s bounds
        then also fixes ``f`` and ``a``, so the pair cannot be broken any more; and a bound
        reached through ``f`` or ``a`` comes back to ``b``.
        """
        lay, store, tol = self.layout, self.store, self.options.tolerances.feasibility
        b, f, a = lay.b, lay.f, lay.a
        lo, hi = store.lower, store.upper  # live views: every update reads the latest bounds

        def from_f_and_a():
            # b = f - a; and f > 0 forces the active phase (b = f), a > 0 the inactive one (b = -a)
            new_lo = np.where(lo[f] > 0, lo[f], lo[f] - hi[a])
            new_hi = np.where(lo[a] > 0, -lo[a], hi[f] - lo[a])
            return new_lo, new_hi

        total = 0
        for _ in range(20):  # the direct phase rules make this converge in a round or two
            changed_round = 0
            for index, new_bounds in (
                (b, from_f_and_a),
                (f, lambda: (np.maximum(lo[b], 0.0), np.maximum(hi[b], 0.0))),
                (a, lambda: (np.maximum(-hi[b], 0.0), np.maximum(-lo[b], 0.0))),
            ):
                new_lo, new_hi = new_bounds()
                changed, conflict = store.tighten(index, new_lo, new_hi, tol, min_change=1e-12)
                if conflict:
                    return total, True
                changed_round += changed
            total += changed_round
            if not changed_round:
                break
        return total, False

    def phases(self) -> np.ndarray:
        """+1 active, 0 inactive, -1 not fixed, per ReLU, from the current bounds.

        A phase counts as fixed only when the bounds force the pair's equation outright
        (active: ``b >= 0`` and ``a <= 0``, so ``f = b``; inactive: ``b <= 0`` and ``f <= 0``, so
        ``f = 0``): then any assignment within the bounds satisfies the pair.
        """
        lay = self.layout
        lo_b = self.store.lower[lay.b]
        hi_b = self.store.upper[lay.b]
        hi_a = self.store.upper[lay.a]
        hi_f = self.store.upper[lay.f]
        phase = np.full(lay.num_relus, -1)
        phase[(lo_b >= 0) & (hi_a <= 0)] = ACTIVE
        phase[(hi_b <= 0) & (hi_f <= 0)] = INACTIVE
        return phase

    def apply_phase(self, relu: int, phase: int) -> bool:
        lay = self.layout
        tol = self.options.tolerances.feasibility
        if phase == ACTIVE:
            index = np.array([lay.b[relu], lay.a[relu]])
            _, conflict = self.store.tighten(index, np.array([0.0, -np.inf]), np.array([np.inf, 0.0]), tol)
        else:
            index = np.array([lay.b[relu], lay.f[relu]])
            _, conflict = self.store.tighten(index, np.array([-np.inf, -np.inf]), np.array([0.0, 0.0]), tol)
        return not conflict

    def apply_phases(self, phases: np.ndarray) -> bool:
        """Fix many phases at once (1 active, 0 inactive, -1 left free); False on a conflict."""
        lay = self.layout
        on, off = np.flatnonzero(phases == ACTIVE), np.flatnonzero(phases == INACTIVE)
        index = np.concatenate([lay.b[on], lay.a[on], lay.b[off], lay.f[off]])
        lower = np.concatenate([np.zeros(on.size), np.full(on.size + 2 * off.size, -np.inf)])
        upper = np.concatenate([np.full(on.size, np.inf), np.zeros(on.size + 2 * off.size)])
        _, conflict = self.store.tighten(index, lower, upper, self.options.tolerances.feasibility)
        return not conflict

    # ------------------------------------------------------------- search
    def solve(
        self,
        lower: np.ndarray,
        upper: np.ndarray,
        active: np.ndarray | None = None,
        deadline: float | None = None,
        node_budget: int | None = None,
        phases: np.ndarray | None = None,
    ) -> LeafOutcome:
        """Decide the problem on the box ``lower <= v <= upper`` (within the construction box)
        with the rows ``active`` (indices into ``rows``; default all) required to hold and, when
        ``phases`` is given (per ReLU: 1 active, 0 inactive, -1 free), those phases fixed."""
        store = self.store
        base = store.level
        refactorisations = self.tableau.refactorisations
        store.push()
        self.active = np.arange(self.rows.shape[0]) if active is None else np.asarray(active, dtype=np.int64)
        try:
            tol = self.options.tolerances.feasibility
            _, conflict = store.tighten(self.layout.v, lower, upper, tol)
            if conflict:
                return LeafOutcome("unsat")
            if self.active.size:
                _, conflict = store.tighten(self.layout.s[self.active], None, self.rhs[self.active], tol)
                if conflict:
                    return LeafOutcome("unsat")
            if phases is not None and not self.apply_phases(phases):
                return LeafOutcome("unsat")
            self.seed(0.5 * (store.lower[self.layout.v] + store.upper[self.layout.v]))
            return self._search(deadline, node_budget)
        except _Budget as exc:
            return LeafOutcome(exc.status, reason=exc.reason)
        finally:
            store.pop_to(base)
            self.stats.refactorisations += self.tableau.refactorisations - refactorisations

    def _search(self, deadline: float | None, node_budget: int | None) -> LeafOutcome:
        opts = self.options
        stats = self.stats
        lay = self.layout
        tableau = self.tableau
        store = self.store
        repairs = np.zeros(lay.num_relus, dtype=np.int64)
        # decision frames: (store level before the decision, relu, untried phase or None)
        frames: list[tuple[int, int, int | None]] = []
        nodes = 0
        if not self.tighten():
            return LeafOutcome("unsat")
        rng = np.random.default_rng(opts.attack.seed)
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise _Budget("timeout", "time budget exhausted in the Reluplex search")
            stats.simplex_calls += 1
            outcome = tableau.check(
                store, max_pivots=20000, bland_after=opts.reluplex.bland_after, refactor_every=opts.reluplex.refactor_every, deadline=deadline
            )
            stats.pivots += outcome.pivots
            if outcome.status == BUDGET:
                raise _Budget("unknown", "the simplex exceeded its pivot budget")
            if outcome.status == OUT_OF_TIME:
                raise _Budget("timeout", "time budget exhausted in the simplex")
            if outcome.status == INFEASIBLE:
                if not self._backtrack(frames):
                    return LeafOutcome("unsat")
                stats.backtracks += 1
                continue
            broken = self._unfixed_broken()
            if broken.size == 0:
                candidate = self._candidate()
                if candidate is not None:
                    return LeafOutcome("sat", candidate)
                # round-off made the assignment disagree with the network: refactor and look again
                tableau.refactor()
                if self._unfixed_broken().size == 0 and self._candidate() is None:
                    raise _Budget("unknown", "numerical trouble: a simplex solution does not evaluate as a counterexample")
                continue
            # Reluplex: repair the pair repaired most often so far (so a pair that keeps breaking
            # reaches the threshold and is split); split a pair once it exceeds the threshold
            relu = int(broken[np.argmax(repairs[broken])])
            repairs[relu] += 1
            stats.repairs += 1
            if repairs[relu] > opts.reluplex.repair_threshold:
                nodes += 1
                if node_budget is not None and nodes > node_budget:
                    raise _Budget("unknown", "node budget exhausted in the Reluplex search")
                if not self._split(relu, frames):
                    return LeafOutcome("unsat")
                repairs[relu] = 0
                continue
            self._repair(relu, rng)

    def _unfixed_broken(self) -> np.ndarray:
        """Broken pairs whose phase is not fixed by bounds.

        A pair whose bounds fix its phase is satisfied by any feasible assignment up to the
        feasibility tolerance; it is never repaired or split.
        """
        broken = self._broken()
        return broken[self.phases()[broken] < 0] if broken.size else broken

    def _broken(self) -> np.ndarray:
        lay = self.layout
        vb = self.tableau.values[lay.b]
        vf = self.tableau.values[lay.f]
        error = np.abs(vf - np.maximum(vb, 0.0))
        return np.flatnonzero(error > self.options.tolerances.relu * (1.0 + np.abs(vb)))

    def _candidate(self) -> np.ndarray | None:
        """The assignment's inputs, if the network maps them into the rows (checked in float64)."""
        lay = self.layout
        v = np.clip(self.tableau.values[lay.v], self.store.lower[lay.v], self.store.upper[lay.v])
        y = self.chain.evaluate(v[None, : lay.num_x])[0]
        if self.active.size:
            rows, rhs = self.rows[self.active], self.rhs[self.active]
            point = np.concatenate([v, y])
            residual = rows @ point - rhs
            scale = 1.0 + np.abs(rhs) + np.abs(rows) @ np.abs(point)
            if np.any(residual > 1e-7 * scale):
                return None
        return v

    def _split(self, relu: int, frames: list) -> bool:
        """Case-split ``relu`` (the phase its value suggests first); False if no branch is feasible."""
        stats = self.stats
        stats.splits += 1
        stats.relu_splits += 1
        vb = self.tableau.values[self.layout.b[relu]]
        first = ACTIVE if vb >= 0 else INACTIVE
        level = self.store.level
        self.store.push()
        frames.append((level, relu, 1 - first))
        stats.max_depth = max(stats.max_depth, len(frames))
        if not (self.apply_phase(relu, first) and self.tighten()):
            if not self._backtrack(frames):
                return False
            stats.backtracks += 1
        return True

    def _backtrack(self, frames: list) -> bool:
        """Undo decisions until one has an untried phase; apply it. False if none is left."""
        while frames:
            level, relu, untried = frames.pop()
            self.store.pop_to(level)
            if untried is None:
                continue
            self.store.push()
            frames.append((level, relu, None))
            if self.apply_phase(relu, untried) and self.tighten():
                return True
        return False

    def _repair(self, relu: int, rng: np.random.Generator) -> None:
        lay = self.layout
        tableau = self.tableau
        store = self.store
        b, f = int(lay.b[relu]), int(lay.f[relu])
        vb, vf = tableau.values[b], tableau.values[f]
        choices = []
        target_f = max(vb, 0.0)
        if not tableau.is_basic(f) and store.lower[f] <= target_f <= store.upper[f]:
            choices.append((f, target_f))
        if not tableau.is_basic(b):
            target_b = vf if vf > 0 else min(vb, 0.0)
            if store.lower[b] <= target_b <= store.upper[b]:
                choices.append((b, target_b))
        if not choices:
            # both basic: pivot f or b (in random order) out of the basis, then update it.
            # Moving b towards f matters: setting f back to relu(b) is often undone by the next simplex round.
            pair = [(f, target_f), (b, vf if vf > 0 else min(vb, 0.0))]
            if rng.random() < 0.5:
                pair.reverse()
            for var, target in pair:
                if not tableau.is_basic(var) or not (store.lower[var] <= target <= store.upper[var]):
                    continue
                row = tableau.row_of[var]
                coeffs = tableau.T[row]
                free = (tableau.row_of < 0) & (store.upper > store.lower) & (np.abs(coeffs) > 1e-6)
                free[lay.one] = False
                candidates = np.flatnonzero(free)
                if candidates.size == 0:
                    continue
                entering = int(candidates[np.argmax(np.abs(coeffs[candidates]))])
                tableau.pivot(int(row), entering)
                self.stats.pivots += 1
                choices.append((var, target))
                break
        if not choices:
            return  # nothing movable: the next simplex round or a split will handle it
        var, target = choices[int(rng.integers(len(choices)))] if len(choices) > 1 else choices[0]
        tableau.set_nonbasic(var, target)

