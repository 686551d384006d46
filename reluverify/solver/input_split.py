"""Branch and bound over the input box (for networks with few inputs, like ACAS Xu's 5).

Several disjuncts that share one input box are searched together: every box carries
the set of disjuncts still *alive* on it. Boxes are bounded in batches with
:func:`~reluverify.solver.bounds.forward_bounds` and
:func:`~reluverify.solver.bounds.row_lower_bounds`; a disjunct dies on a box when one of its
rows provably exceeds its right-hand side there. Each bounded box also proposes
concrete points (its centre and the vertices that minimise its rows' linear lower
bounds), which are evaluated and, if they satisfy a disjunct, confirmed. A box on which
only a few ReLUs remain unstable (or that was split many times) is a *residue*: it goes to
the Reluplex engine of each alive disjunct, which decides it exactly. Otherwise the box is
split in two along the input dimension with the largest influence on the rows that are
closest to being refuted.

Invariant: the union of the boxes on the stack, each with its alive set, covers every
possible counterexample not yet ruled out; the search is ``unsat`` when the stack empties.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from reluverify.network import ReluChain
from reluverify.solver.bounds import (
    LayerBounds,
    conjunction_lower_bound,
    dual_lower_bound,
    forward_bounds,
    gradient_magnitude,
    row_lower_bounds,
)
from reluverify.solver.options import SolverOptions
from reluverify.solver.progress import Throttle
from reluverify.solver.reluplex import LeafOutcome
from reluverify.solver.result import Statistics


@dataclass(frozen=True)
class Target:
    """One disjunct as seen by the search: rows over ``[x; y]`` and right-hand sides."""

    index: int  # the disjunct's index in the query
    rows: np.ndarray
    rhs: np.ndarray


@dataclass
class SearchOutcome:
    status: str  # "sat", "unsat", "timeout", "unknown"
    inputs: np.ndarray | None = None
    disjunct: int | None = None
    reason: str = ""


class _BoxStack:
    """A LIFO of boxes held in growing numpy arrays (lower, upper, alive mask, depth)."""

    def __init__(self, n: int, d: int) -> None:
        self.lo = np.zeros((64, n))
        self.hi = np.zeros((64, n))
        self.alive = np.zeros((64, d), dtype=bool)
        self.depth = np.zeros(64, dtype=np.int64)
        self.size = 0

    def push(self, lo, hi, alive, depth) -> None:
        k = lo.shape[0]
        while self.size + k > self.lo.shape[0]:
            grow = self.lo.shape[0]
            self.lo = np.concatenate([self.lo, np.zeros_like(self.lo[:grow])])
            self.hi = np.concatenate([self.hi, np.zeros_like(self.hi[:grow])])
            self.alive = np.concatenate([self.alive, np.zeros_like(self.alive[:grow])])
            self.depth = np.concatenate([self.depth, np.zeros_like(self.depth[:grow])])
        s = slice(self.size, self.size + k)
        self.lo[s], self.hi[s], self.alive[s], self.depth[s] = lo, hi, alive, depth
        self.size += k

    def pop(self, k: int):
        k = min(k, self.size)
        s = slice(self.size - k, self.size)
        out = self.lo[s].copy(), self.hi[s].copy(), self.alive[s].copy(), self.depth[s].copy()
        self.size -= k
        return out


def input_split_search(
    chain: ReluChain,
    targets: list[Target],
    lower: np.ndarray,
    upper: np.ndarray,
    options: SolverOptions,
    statistics: Statistics,
    deadline: float | None,
    confirm: Callable[[np.ndarray, int], bool],
    leaf_solver: Callable[[int, np.ndarray, np.ndarray], LeafOutcome],
    known: tuple[list, list] | None = None,
    input_rows: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Throttle | None = None,
) -> SearchOutcome:
    """Search ``lower <= x <= upper`` for a point satisfying some target (see module docstring).

    ``confirm(x, target_position)`` confirms a candidate with onnxruntime;
    ``leaf_solver(target_position, lo, hi)`` runs Reluplex on a residue box;
    ``known`` holds pre-activation bounds valid on the whole search box (reused facts);
    ``input_rows`` = (A, b) are constraints ``A x <= b`` shared by every target, used to
    shrink each box before it is bounded (e.g. the pair rows of a two-copy query);
    ``progress`` receives where the search stands (the input volume proven: a box split ``d``
    times holds ``2 ** -d`` of it). With ``options.jobs > 1`` the boxes are shared among worker
    processes (:mod:`~reluverify.solver.sharing`).
    """
    centre = 0.5 * (lower + upper)
    for position, target in enumerate(targets):
        if target.rhs.size == 0 and confirm(centre, position):
            # a disjunct with no rows holds everywhere in its box
            return SearchOutcome("sat", centre, target.index)
    search = _BoxSearch(chain, targets, options, statistics, deadline, confirm, leaf_solver, known, input_rows, progress)
    search.add((lower[None, :], upper[None, :], np.ones((1, len(targets)), dtype=bool), np.zeros(1, dtype=np.int64)))
    if options.jobs > 1:
        from reluverify.solver.sharing import run_shared

        outcome = run_shared(search, options.jobs, deadline, search.progress, "input-split")
    else:
        outcome = search.work(float("inf")) or search.finish()
    search.report(force=True)
    return outcome


class _Stop(Exception):
    def __init__(self, outcome: SearchOutcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


class _BoxSearch:
    """The state of one input-splitting search: the stack of open boxes, each with its alive targets."""

    def __init__(self, chain, targets, options, statistics, deadline, confirm, leaf_solver, known, input_rows, progress):
        self.chain, self.targets, self.options, self.stats = chain, targets, options, statistics
        self.deadline, self.confirm, self.leaf_solver, self.input_rows = deadline, confirm, leaf_solver, input_rows
        self.known_lower, self.known_upper = known if known is not None else (None, None)
        self.progress = progress or Throttle(None)
        self.n = chain.input_size
        self.rows = np.vstack([t.rows for t in targets])
        self.rhs = np.concatenate([t.rhs for t in targets])
        owner = np.concatenate([np.full(t.rhs.shape[0], k) for k, t in enumerate(targets)])
        self.owner_matrix = owner[None, :] == np.arange(len(targets))[:, None]  # (D, R)
        self.conjunctions = bool((self.owner_matrix.sum(axis=1) > 1).any())
        self.stack = _BoxStack(self.n, len(targets))
        self.undecided: list[str] = []
        self.proven = 0.0
        self.processed = 0
        self.seconds_per_box = 0.0

    def report(self, force: bool = False, best=None) -> None:
        if self.progress.due() or (force and self.progress):
            self.progress.report("input-split", self.stats.boxes, self.stack.size, self.proven, best, force=force)

    # -------------------------------------------------------- sharing (solver/sharing.py)
    @property
    def statistics(self) -> Statistics:
        return self.stats

    def open_count(self) -> int:
        return self.stack.size

    def add(self, payload) -> None:
        self.stack.push(*payload)

    def split_off(self, parts: int) -> list:
        """The open boxes cut into ``parts`` payloads, dealt in turn so each gets a similar mix."""
        lo, hi, alive, depth = self.stack.pop(self.stack.size)
        return [(lo[k::parts], hi[k::parts], alive[k::parts], depth[k::parts]) for k in range(parts)]

    def reset_statistics(self) -> None:
        self.stats = Statistics()
        self.proven = 0.0
        self.undecided = []
        self.progress = Throttle(None)

    def finish(self) -> SearchOutcome:
        if self.undecided:
            return SearchOutcome("unknown", reason=self.undecided[0])
        return SearchOutcome("unsat")

    # ------------------------------------------------------------------ the search
    def work(self, seconds: float) -> SearchOutcome | None:
        """Bound and split boxes for about ``seconds`` (or until none is left); a final outcome, or None."""
        until = time.monotonic() + seconds
        try:
            while self.stack.size and time.monotonic() < until:
                if self.deadline is not None and time.monotonic() > self.deadline:
                    raise _Stop(SearchOutcome("timeout", reason="time budget exhausted in input splitting"))
                if self.options.node_budget is not None and self.processed > self.options.node_budget:
                    raise _Stop(SearchOutcome("unknown", reason="node budget exhausted in input splitting"))
                # about a second of work per batch, so the deadline is never overshot by much
                batch_size = int(np.clip(1.0 / max(self.seconds_per_box, 1e-6), 16, self.options.batch_size))
                started = time.monotonic()
                batch = self.step(batch_size)
                self.seconds_per_box = 0.5 * self.seconds_per_box + 0.5 * (time.monotonic() - started) / batch
        except _Stop as stop:
            return stop.outcome
        return None

    def step(self, batch_size: int) -> int:
        """One batch of boxes: bound, try candidates, hand residues to Reluplex, split the rest."""
        chain, options, statistics, n = self.chain, self.options, self.stats, self.n
        rows, rhs, owner_matrix, targets = self.rows, self.rhs, self.owner_matrix, self.targets
        lo, hi, alive, depth = self.stack.pop(batch_size)
        batch = lo.shape[0]
        self.processed += batch
        statistics.boxes += batch
        if self.input_rows is not None:
            lo, hi, empty = tighten_boxes(lo, hi, *self.input_rows)
            alive &= ~empty[:, None]
        layer_bounds = forward_bounds(chain, lo, hi, self.known_lower, self.known_upper, refine=options.refine_bounds)
        row_bounds = row_lower_bounds(chain, lo, hi, layer_bounds, rows[:, n:], rows[:, :n], rhs)
        if self.input_rows is not None:
            # the shared input rows also bind the rows' linear lower bounds (Lagrangian dual)
            row_bounds.lower = np.maximum(
                row_bounds.lower, dual_lower_bound(row_bounds.coef, row_bounds.const, lo, hi, *self.input_rows)
            )
        refuted = row_bounds.lower > options.prune_margin  # (B, R)
        dead = (refuted[:, None, :] & owner_matrix[None, :, :]).any(axis=2)  # (B, D)
        if self.conjunctions:  # rows of one disjunct that are jointly impossible, though none alone is
            dead |= conjunction_lower_bound(row_bounds.coef, row_bounds.const, lo, hi, owner_matrix) > options.prune_margin
        dead |= layer_bounds.infeasible[:, None]  # no input of the box meets the known bounds
        alive &= ~dead
        keep = alive.any(axis=1)
        self.proven += float(np.sum(0.5 ** depth[~keep]))
        if self.progress.due():
            self.report(best=float(row_bounds.lower[keep].max(axis=1).min()) if np.any(keep) else None)
        if not np.any(keep):
            return batch
        lo, hi, alive, depth = lo[keep], hi[keep], alive[keep], depth[keep]
        coef = row_bounds.coef[keep]
        lower_bounds = row_bounds.lower[keep]
        unstable = layer_bounds.unstable_counts()[keep]

        # candidate points: centres and, per alive target, the vertex of its tightest row
        tight = np.where(owner_matrix[None, :, :], lower_bounds[:, None, :], -np.inf).argmax(axis=2)  # (B, D)
        found = _try_candidates(chain, lo, hi, alive, coef, tight, rows, rhs, owner_matrix, statistics, self.confirm)
        if found is not None:
            x, position = found
            raise _Stop(SearchOutcome("sat", x, targets[position].index))

        # residues go to Reluplex; the rest is split
        residue = (unstable <= options.leaf_unstable_relus) | (depth >= options.leaf_depth)
        for b in np.flatnonzero(residue):
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise _Stop(SearchOutcome("timeout", reason="time budget exhausted in input splitting"))
            statistics.leaves += 1
            settled = True
            for position in np.flatnonzero(alive[b]):
                outcome = self.leaf_solver(int(position), lo[b], hi[b])
                if outcome.status == "sat":
                    raise _Stop(SearchOutcome("sat", outcome.inputs, targets[position].index))
                if outcome.status == "timeout":
                    raise _Stop(SearchOutcome("timeout", reason=outcome.reason))
                if outcome.status != "unsat":
                    self.undecided.append(outcome.reason or outcome.status)
                    settled = False
            self.proven += 0.5 ** float(depth[b]) if settled else 0.0
        split = ~residue
        if not np.any(split):
            return batch
        lo, hi, alive, depth = lo[split], hi[split], alive[split], depth[split]
        tight = tight[split]
        width = hi - lo
        bounds_split = _select(layer_bounds, np.flatnonzero(keep)[split])
        gradient = gradient_magnitude(chain, bounds_split, rows[tight][:, :, n:], rows[tight][:, :, :n])  # (B, D, n)
        smear = (gradient * alive[:, :, None]).sum(axis=1) * width
        smear = np.where(width > 0, smear + 1e-12 * width, -1.0)
        dim = smear.argmax(axis=1)
        middle = 0.5 * (lo[np.arange(lo.shape[0]), dim] + hi[np.arange(lo.shape[0]), dim])
        left_hi = hi.copy()
        left_hi[np.arange(lo.shape[0]), dim] = middle
        right_lo = lo.copy()
        right_lo[np.arange(lo.shape[0]), dim] = middle
        statistics.input_splits += lo.shape[0]
        statistics.splits += lo.shape[0]
        statistics.max_depth = max(statistics.max_depth, int(depth.max()) + 1)
        self.stack.push(np.concatenate([lo, right_lo]), np.concatenate([left_hi, hi]), np.concatenate([alive, alive]),
                        np.concatenate([depth + 1, depth + 1]))
        return batch


def tighten_boxes(lower: np.ndarray, upper: np.ndarray, rows: np.ndarray, rhs: np.ndarray, rounds: int = 2):
    """Shrink boxes (B, n) to the hull of their points that satisfy ``rows @ x <= rhs``.

    Interval propagation: ``a_j x_j <= rhs - sum_{k != j} min(a_k x_k)`` for every row and
    variable. Sound: no point of a box that satisfies the rows is cut. Returns the new
    bounds and a mask of boxes found empty.
    """
    lo, hi = lower.copy(), upper.copy()
    if rows.shape[0] == 0:
        return lo, hi, np.zeros(lo.shape[0], dtype=bool)
    a = rows[None, :, :]  # (1, R, n)
    nonzero = a != 0
    safe = np.where(nonzero, a, 1.0)
    for _ in range(rounds):
        contribution = np.minimum(a * lo[:, None, :], a * hi[:, None, :])  # (B, R, n)
        rest = contribution.sum(axis=2, keepdims=True) - contribution
        bound = (rhs[None, :, None] - rest) / safe
        slack = 1e-12 * (1.0 + np.abs(bound))
        new_hi = np.where(a > 0, bound + slack, np.inf).min(axis=1)
        new_lo = np.where(a < 0, bound - slack, -np.inf).max(axis=1)
        lo, hi = np.maximum(lo, new_lo), np.minimum(hi, new_hi)
    empty = np.any(lo > hi, axis=1)
    hi = np.maximum(hi, lo)
    return lo, hi, empty


def _select(bounds: LayerBounds, index: np.ndarray) -> LayerBounds:
    return LayerBounds(
        [b[index] for b in bounds.pre_lower],
        [b[index] for b in bounds.pre_upper],
        bounds.out_lower[index],
        bounds.out_upper[index],
        bounds.infeasible[index],
    )


def _try_candidates(chain, lo, hi, alive, coef, tight, rows, rhs, owner_matrix, statistics, confirm):
    n = chain.input_size
    batch, d = alive.shape
    vertex_coef = np.take_along_axis(coef, tight[:, :, None], axis=1)  # (B, D, n)
    vertices = np.where(vertex_coef > 0, lo[:, None, :], hi[:, None, :])  # minimises the row's lower bound
    centres = 0.5 * (lo + hi)
    points = np.concatenate([centres[:, None, :], vertices], axis=1)  # (B, 1 + D, n)
    flat = points.reshape(-1, n)
    y = chain.evaluate(flat)
    margins = flat @ rows[:, :n].T + y @ rows[:, n:].T - rhs  # (P, R)
    # target k holds at a point when all of its rows are <= 0
    holds = ~((margins > 0)[:, None, :] & owner_matrix[None, :, :]).any(axis=2)  # (P, D)
    holds = holds.reshape(batch, 1 + d, d) & alive[:, None, :]
    statistics.candidates_checked += flat.shape[0]
    hits = np.argwhere(holds)
    for b, p, k in hits[:16]:
        x = points[b, p]
        if confirm(x, int(k)):
            return x, int(k)
        statistics.candidates_rejected += 1
    return None
