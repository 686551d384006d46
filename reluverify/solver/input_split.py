"""Branch and bound over the input box (for networks with few inputs, like ACAS Xu's 5).

Several disjuncts that share one input box are searched together: every box carries
the set of disjuncts still *alive* on it. Boxes are bounded in batches with
:func:`~reluverify.solver.bounds.deeppoly.deeppoly_bounds` and
:func:`~reluverify.solver.bounds.rows.row_lower_bounds`; a disjunct dies on a box when one of its
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

from reluverify.linear_ops import shape as lops_shape
from reluverify.network import ReluChain
from reluverify.solver.bounds.deeppoly import deeppoly_bounds, LayerBounds
from reluverify.solver.bounds.rows import conjunction_lower_bound, dual_lower_bound, gradient_magnitude, row_lower_bounds
from reluverify.solver.options import SolverOptions
from reluverify.solver.progress import Throttle
from reluverify.solver.reluplex import LeafOutcome
from reluverify.solver.result import Statistics
from reluverify.solver.search import SearchOutcome, exhausted
from reluverify.solver.sharing import run_shared

BATCH_SIZE = 512
"""Boxes bounded together in one numpy pass, at most (fewer while a box takes long: a batch is about a
second of work, so the deadline is never overshot by much)."""
LEAF_UNSTABLE_RELUS = 0
"""A box goes to Reluplex when at most this many ReLUs are unstable on it (0: only where the networks
are linear on the box; splitting is cheaper than a Reluplex leaf, see docs/tuning.md) ..."""
LEAF_DEPTH = 60
"""... or when it has been split this many times."""
INHERIT_MAX_RELUS = 2048
"""A box starts from the pre-activation bounds of its parent on networks of at most this many ReLUs
(the stack then holds two floats per ReLU and box: 32 KB a box at this size)."""
WEIGHT_ITERATIONS = 10
"""A conjunction's rows, weighted, are back-substituted as one row; this many ascent steps choose the
weights (and the input rows' multipliers) per box."""
ATTACK_BOXES = 32
"""After each batch, a gradient attack runs inside this many open boxes, those closest to holding a
target ..."""
ATTACK_STEPS = 60
"""... with this many steps."""


@dataclass(frozen=True)
class Target:
    """One disjunct as seen by the search: rows over ``[x; y]`` and right-hand sides."""

    index: int  # the disjunct's index in the query
    rows: np.ndarray
    rhs: np.ndarray


class _BoxStack:
    """A LIFO of boxes held in growing numpy arrays: lower, upper, alive mask (per target), depth, the
    box's node in each target's proof tree (when one is recorded), the pre-activation bounds that
    hold on the box because they held on its parent (``relus`` columns each; 0: none are kept), and per
    target the packed ascent parameters its parent ended with (``params`` float32 columns; 0: none are
    kept) with a mask of the targets that have them."""

    def __init__(self, n: int, d: int, relus: int = 0, params: int = 0) -> None:
        self.arrays = [np.zeros((64, n)), np.zeros((64, n)), np.zeros((64, d), dtype=bool),
                       np.zeros(64, dtype=np.int64), np.zeros((64, d), dtype=np.int64),
                       np.full((64, relus), -np.inf), np.full((64, relus), np.inf),
                       np.zeros((64, d, params), dtype=np.float32), np.zeros((64, d), dtype=bool)]
        self.size = 0

    def push(self, lo, hi, alive, depth, node=None, pre_lower=None, pre_upper=None, params=None, warm=None) -> None:
        k = lo.shape[0]
        if node is None:
            node = np.zeros((k, self.arrays[4].shape[1]), dtype=np.int64)
        if pre_lower is None:
            pre_lower = np.full((k, self.arrays[5].shape[1]), -np.inf)
            pre_upper = np.full((k, self.arrays[6].shape[1]), np.inf)
        if params is None:
            params = np.zeros((k,) + self.arrays[7].shape[1:], dtype=np.float32)
            warm = np.zeros((k, self.arrays[8].shape[1]), dtype=bool)
        while self.size + k > self.arrays[0].shape[0]:
            grow = self.arrays[0].shape[0]
            self.arrays = [np.concatenate([a, np.zeros_like(a[:grow])]) for a in self.arrays]
        s = slice(self.size, self.size + k)
        for a, new in zip(self.arrays, (lo, hi, alive, depth, node, pre_lower, pre_upper, params, warm)):
            a[s] = new
        self.size += k

    def pop(self, k: int):
        k = min(k, self.size)
        s = slice(self.size - k, self.size)
        out = tuple(a[s].copy() for a in self.arrays)
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
    trees: list | None = None,
) -> SearchOutcome:
    """Search ``lower <= x <= upper`` for a point satisfying some target (see module docstring).

    ``confirm(x, target_position)`` confirms a candidate with onnxruntime;
    ``leaf_solver(target_position, lo, hi)`` runs Reluplex on a residue box;
    ``known`` holds pre-activation bounds valid on the whole search box (reused facts);
    ``input_rows`` = (A, b) are constraints ``A x <= b`` shared by every target, used to
    shrink each box before it is bounded (e.g. the pair rows of a two-copy query);
    ``progress`` receives where the search stands (the input volume proven: a box split ``d``
    times holds ``2 ** -d`` of it). With ``options.parallel.jobs > 1`` the boxes are shared among worker
    processes (:mod:`~reluverify.solver.sharing`). ``trees`` (one
    :class:`~reluverify.solver.certificate.ProofTree` per target), when given, record the proof:
    then a box is refuted only by evidence the certificate checker recomputes (DeepPoly bounds on
    the box, one back-substitution of a weighted combination of the target's rows, or the triangle
    LP's Farkas multipliers), and the boxes are neither shrunk by the input rows nor shared.
    """
    centre = 0.5 * (lower + upper)
    for position, target in enumerate(targets):
        if target.rhs.size == 0 and confirm(centre, position):
            # a disjunct with no rows holds everywhere in its box
            return SearchOutcome("sat", centre, target.index)
    search = _BoxSearch(chain, targets, options, statistics, deadline, confirm, leaf_solver, known, input_rows, progress, trees)
    search.add((lower[None, :], upper[None, :], np.ones((1, len(targets)), dtype=bool), np.zeros(1, dtype=np.int64)))
    if options.parallel.jobs > 1 and trees is None:
        outcome = run_shared(search, options.parallel.jobs, deadline, search.progress, "input-split")
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

    def __init__(self, chain, targets, options, statistics, deadline, confirm, leaf_solver, known, input_rows, progress,
                 trees=None):
        self.chain, self.targets, self.options, self.stats = chain, targets, options, statistics
        self.trees = trees
        self.deadline, self.confirm, self.leaf_solver, self.input_rows = deadline, confirm, leaf_solver, input_rows
        self.known_lower, self.known_upper = known if known is not None else (None, None)
        self.progress = progress or Throttle(None)
        self.n = chain.input_size
        self.rows = np.vstack([t.rows for t in targets])
        self.rhs = np.concatenate([t.rhs for t in targets])
        owner = np.concatenate([np.full(t.rhs.shape[0], k) for k, t in enumerate(targets)])
        self.owner_matrix = owner[None, :] == np.arange(len(targets))[:, None]  # (D, R)
        self.conjunctions = bool((self.owner_matrix.sum(axis=1) > 1).any())
        # a box inherits its parent's pre-activation bounds (valid on it, and often tighter than its own
        # after a few splits), except in a proof, whose checker bounds each box on its own
        self.inherit = trees is None and chain.num_relus <= INHERIT_MAX_RELUS
        self.layer_sizes = [lops_shape(w)[0] for w in chain.weights[:-1]]
        # the ascent's parameters passed from parent to child, where the bounds are (three floats a ReLU more)
        self.warm = self.inherit and options.input_split.alpha_iterations > 0 and options.input_split.alpha_warm
        self.layout = _ParameterLayout(self.layer_sizes, 0 if input_rows is None else input_rows[0].shape[0],
                                       max((t.rhs.size for t in targets), default=0))
        self.stack = _BoxStack(self.n, len(targets), chain.num_relus if self.inherit else 0,
                               self.layout.size if self.warm else 0)
        self.undecided: list[str] = []
        self.proven = 0.0
        self.processed = 0
        self.seconds_per_box = 0.0
        self.rng = np.random.default_rng(options.attack.seed)
        self.started, self.attack_seconds = time.monotonic(), 0.0
        # the weighted conjunctions and the in-box attack pay on networks of many ReLUs (ACAS Xu: 300); on a
        # few dozen, boxes turn linear within a few splits and the per-batch ascent costs more than it saves
        self.large = chain.num_relus >= options.input_split.min_relus

    def report(self, force: bool = False, best=None) -> None:
        if self.progress.due() or (force and self.progress):
            self.progress.report("input-split", self.stats.boxes, self.stack.size, self.proven, best, force=force)

    # ------------------------------------------------ sharing (search.ShareableSearch)
    @property
    def statistics(self) -> Statistics:
        return self.stats

    def open_count(self) -> int:
        return self.stack.size

    def add(self, payload) -> None:
        self.stack.push(*payload)

    def split_off(self, parts: int) -> list:
        """The open boxes cut into ``parts`` payloads, dealt in turn so each gets a similar mix."""
        arrays = self.stack.pop(self.stack.size)
        return [tuple(a[k::parts] for a in arrays) for k in range(parts)]

    def reset_statistics(self) -> None:
        self.stats = Statistics()
        self.proven = 0.0
        self.undecided = []
        self.progress = Throttle(None)

    def finish(self) -> SearchOutcome:
        return exhausted(self.proven, self.undecided)

    def optimised_refutations(self, lo, hi, alive, layer_bounds, slopes: bool = True, warm=None):
        """The alive targets that optimised linear bounds (:mod:`~reluverify.solver.bounds.alpha_crown`: the rows'
        weights, input-row multipliers and, with ``slopes``, slopes and bound multipliers) refute on
        each box: a (B, D) mask, and per target the weights (k, R) and input-row multipliers (k, r)
        of its refuted boxes, in box order.

        ``warm`` = (packed (B, D, P), mask (B, D)), with ``slopes``: the ascent of a box and target in
        the mask starts from its packed parameters (any parameters give a sound bound, these only
        steer the ascent); the parameters each ascent ended with are written back into ``packed`` and
        the mask (where the target is not refuted)."""
        from reluverify.solver.bounds import alpha_crown

        refuted = np.zeros(alive.shape, dtype=bool)
        weights, gammas = [None] * len(self.targets), [None] * len(self.targets)
        relaxation = alpha_crown.Relaxation(layer_bounds.pre_lower, layer_bounds.pre_upper, size=lo.shape[0])
        rows, rhs = self.input_rows if self.input_rows is not None else (None, None)
        settings = alpha_crown.OptimiseSettings(iterations=self.options.input_split.alpha_iterations or 10,
                                          stop_above=self.options.tolerances.prune_margin)
        if not slopes:
            settings = alpha_crown.OptimiseSettings(iterations=WEIGHT_ITERATIONS, lr_alpha=0.0,
                                              lr_beta=0.0, stop_above=self.options.tolerances.prune_margin)
        layers = len(self.chain.weights) - 1
        for position, target in enumerate(self.targets):
            boxes = np.flatnonzero(alive[:, position])
            if boxes.size == 0 or target.rhs.size == 0 or (not slopes and target.rhs.size == 1 and rows is None):
                continue  # (one row without input rows: the single-row pass has decided it already)
            region = alpha_crown.Region(lo[boxes], hi[boxes], rows, rhs)
            sub = relaxation.take(boxes)
            objective = alpha_crown.Objective(target.rows[:, self.n :], target.rows[:, : self.n], target.rhs)
            params = alpha_crown.initial_parameters(sub, 1, layers, region, with_beta=slopes)
            params.weights = alpha_crown.uniform_weights(boxes.size, 1, objective)
            if warm is not None:
                self.layout.unpack_into(params, warm[0][boxes, position], warm[1][boxes, position])
            value, best, _ = alpha_crown.optimise(self.chain, region, sub, objective, params, settings)
            hit = value[:, 0] > self.options.tolerances.prune_margin
            refuted[boxes[hit], position] = True
            if warm is not None:
                warm[0][boxes, position] = self.layout.pack(best)
                warm[1][boxes, position] = ~hit
            weights[position] = best.weights[hit, 0, :]
            gammas[position] = None if best.gamma is None else best.gamma[hit, 0, :]
        return refuted, weights, gammas

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
                batch_size = int(np.clip(1.0 / max(self.seconds_per_box, 1e-6), 16, BATCH_SIZE))
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
        lo, hi, alive, depth, node, inherited_lower, inherited_upper, packed, warm = self.stack.pop(batch_size)
        batch = lo.shape[0]
        self.processed += batch
        statistics.boxes += batch
        if self.trees is not None:
            lo, hi, alive, depth, node, layer_bounds, coef, lower_bounds = self.proven_step(lo, hi, alive, depth, node)
            if lo.shape[0] == 0:
                return batch
        else:
            if self.input_rows is not None:
                lo, hi, empty = tighten_boxes(lo, hi, *self.input_rows)
                alive &= ~empty[:, None]
            shallow = depth < options.input_split.inherit_depth
            inherited_lower[shallow], inherited_upper[shallow] = -np.inf, np.inf
            known_lower, known_upper = self.known_on_boxes(inherited_lower, inherited_upper)
            layer_bounds = deeppoly_bounds(chain, lo, hi, known_lower, known_upper)
            row_bounds = row_lower_bounds(chain, lo, hi, layer_bounds, rows[:, n:], rows[:, :n], rhs)
            if self.input_rows is not None:
                # the shared input rows also bind the rows' linear lower bounds (Lagrangian dual)
                row_bounds.lower = np.maximum(
                    row_bounds.lower, dual_lower_bound(row_bounds.coef, row_bounds.const, lo, hi, *self.input_rows)
                )
            refuted = row_bounds.lower > options.tolerances.prune_margin  # (B, R)
            dead = (refuted[:, None, :] & owner_matrix[None, :, :]).any(axis=2)  # (B, D)
            if self.conjunctions:  # rows of one disjunct that are jointly impossible, though none alone is
                dead |= conjunction_lower_bound(row_bounds.coef, row_bounds.const, lo, hi, owner_matrix) > options.tolerances.prune_margin
            dead |= layer_bounds.infeasible[:, None]  # no input of the box meets the known bounds
            if self.conjunctions and self.large:
                # a conjunction's rows combined before the back-substitution, with weights found by a short
                # ascent, refute far more boxes than the combination of the rows' separate bounds (ACAS Xu
                # 1_1 property 3: 18,167 boxes -> 521)
                # (boxes that get optimised slopes below have their weights ascended there)
                weights_only = (depth < options.input_split.alpha_depth) | (options.input_split.alpha_iterations == 0)
                dead |= self.optimised_refutations(lo, hi, alive & ~dead & weights_only[:, None], layer_bounds,
                                                   slopes=False)[0]
            alive &= ~dead
            keep = alive.any(axis=1)
            self.proven += float(np.sum(0.5 ** depth[~keep]))
            if self.progress.due():
                self.report(best=float(row_bounds.lower[keep].max(axis=1).min()) if np.any(keep) else None)
            if not np.any(keep):
                return batch
            lo, hi, alive, depth, node = lo[keep], hi[keep], alive[keep], depth[keep], node[keep]
            packed, warm = packed[keep], warm[keep]
            coef = row_bounds.coef[keep]
            lower_bounds = row_bounds.lower[keep]
            layer_bounds = _select(layer_bounds, np.flatnonzero(keep))
            keep = np.ones(lo.shape[0], dtype=bool)
            if options.input_split.alpha_iterations > 0:
                # boxes the plain bounds leave open: optimised slopes and multipliers, per alive target
                deep = (depth >= options.input_split.alpha_depth)[:, None]
                alive &= ~self.optimised_refutations(lo, hi, alive & deep, layer_bounds,
                                                     warm=(packed, warm) if self.warm else None)[0]
                keep = alive.any(axis=1)
                self.proven += float(np.sum(0.5 ** depth[~keep]))
                if not np.any(keep):
                    return batch
                lo, hi, alive, depth, node = lo[keep], hi[keep], alive[keep], depth[keep], node[keep]
                packed, warm = packed[keep], warm[keep]
                coef, lower_bounds = coef[keep], lower_bounds[keep]
                layer_bounds = _select(layer_bounds, np.flatnonzero(keep))
        unstable = layer_bounds.unstable_counts()

        # candidate points: centres and, per alive target, the vertex of its tightest row
        tight = np.where(owner_matrix[None, :, :], lower_bounds[:, None, :], -np.inf).argmax(axis=2)  # (B, D)
        found = _try_candidates(chain, lo, hi, alive, coef, tight, rows, rhs, owner_matrix, statistics, self.confirm)
        if found is None and options.falsify and self.large and self.attack_due():
            began = time.monotonic()
            found = self.attack_open_boxes(lo, hi, alive, lower_bounds, vertex_points(coef, tight, lo, hi))
            self.attack_seconds += time.monotonic() - began
        if found is not None:
            x, position = found
            raise _Stop(SearchOutcome("sat", x, targets[position].index))

        # residues go to Reluplex (to the triangle LP when a proof is recorded); the rest is split
        residue = (unstable <= LEAF_UNSTABLE_RELUS) | (depth >= LEAF_DEPTH)
        if self.trees is not None:
            self.prove_residues(lo, hi, alive, node, layer_bounds, residue)
            residue = residue & (unstable == 0)  # a deep box with unstable ReLUs the LP left open is split on
        for b in np.flatnonzero(residue if self.trees is None else np.zeros(0, dtype=bool)):
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
        lo, hi, alive, depth, node = lo[split], hi[split], alive[split], depth[split], node[split]
        tight = tight[split]
        params = warm_children = None
        if self.warm:
            params, warm_children = np.concatenate([packed[split]] * 2), np.concatenate([warm[split]] * 2)
        width = hi - lo
        bounds_split = _select(layer_bounds, np.flatnonzero(split))
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
        lower_node, upper_node = node.copy(), node.copy()
        if self.trees is not None:
            for b, position in zip(*np.nonzero(alive)):
                lower_node[b, position], upper_node[b, position] = self.trees[position].add_input_split(
                    int(node[b, position]), int(dim[b]), float(middle[b])
                )
        pre_lower = pre_upper = None
        if self.inherit:
            pre_lower = np.concatenate(bounds_split.pre_lower, axis=1) if bounds_split.pre_lower else np.zeros((lo.shape[0], 0))
            pre_upper = np.concatenate(bounds_split.pre_upper, axis=1) if bounds_split.pre_upper else np.zeros((lo.shape[0], 0))
            pre_lower, pre_upper = np.concatenate([pre_lower, pre_lower]), np.concatenate([pre_upper, pre_upper])
        self.stack.push(np.concatenate([lo, right_lo]), np.concatenate([left_hi, hi]), np.concatenate([alive, alive]),
                        np.concatenate([depth + 1, depth + 1]), np.concatenate([lower_node, upper_node]),
                        pre_lower, pre_upper, params, warm_children)
        return batch

    def known_on_boxes(self, inherited_lower: np.ndarray, inherited_upper: np.ndarray):
        """Per layer, the bounds known on each box of a batch: the search box's (``known``) intersected with
        those inherited from the box's parent; (None, None) when neither is kept."""
        if not self.inherit:
            return self.known_lower, self.known_upper
        cuts = np.cumsum(self.layer_sizes)[:-1]
        lower = np.split(inherited_lower, cuts, axis=1)
        upper = np.split(inherited_upper, cuts, axis=1)
        if self.known_lower is not None:
            lower = [a if k is None else np.maximum(a, k) for a, k in zip(lower, self.known_lower)]
        if self.known_upper is not None:
            upper = [a if k is None else np.minimum(a, k) for a, k in zip(upper, self.known_upper)]
        return lower, upper

    def attack_due(self) -> bool:
        """The attacks in open boxes take at most a fifth of the search's time, from the start (the first
        attack follows the first batch): on ACAS Xu's short unsat instances they had taken half of it."""
        return self.attack_seconds <= 0.2 * (time.monotonic() - self.started)

    def attack_open_boxes(self, lo, hi, alive, lower_bounds, vertices):
        """A short gradient attack inside the open boxes that come closest to holding a target (the
        lowest bound on its rows' violation), each started from the vertex that minimises the target's
        tightest row: counterexamples in thin regions that the candidates at centres and vertices miss."""
        from reluverify.solver.falsify import attack

        bound = np.where(self.owner_matrix[None, :, :], lower_bounds[:, None, :], -np.inf).max(axis=2)  # (B, D)
        bound = np.where(alive, bound, np.inf)
        best_target = bound.argmin(axis=1)
        score = bound[np.arange(lo.shape[0]), best_target]
        boxes = np.argsort(score)[: ATTACK_BOXES]
        boxes = boxes[np.isfinite(score[boxes])]
        if boxes.size == 0:
            return None
        target = best_target[boxes]
        starts = vertices[boxes, target]
        mask = self.owner_matrix[target]  # each start attacks its own target's rows
        points, values = attack(self.chain, lo[boxes], hi[boxes], self.rows, self.rhs, self.rng, starts=starts,
                                steps=ATTACK_STEPS, mask=mask)
        self.stats.candidates_checked += boxes.size
        # a clear violation only: on a near-tie the attack stops at float noise below the threshold, where
        # the exact answer may be unsat (such points would be sat only within the confirm tolerance)
        clear = -1e-7 * (1.0 + np.abs(self.rhs).max(initial=0.0))
        for k in np.argsort(values)[:4]:
            if values[k] > clear:
                break
            if self.confirm(points[k], int(target[k])):
                return points[k], int(target[k])
            self.stats.candidates_rejected += 1
        return None

    # ------------------------------------------------------------------ proofs
    def proven_step(self, lo, hi, alive, depth, node):
        """Bound a batch so that every refutation has evidence (see :func:`input_split_search`): DeepPoly
        bounds; each row on its own (one back-substitution, heuristic slopes); for a conjunction no
        single row refutes, weights of its rows (and multipliers of the input rows) by a short ascent."""
        from reluverify.solver.bounds import alpha_crown

        chain, options, n = self.chain, self.options, self.n
        layer_bounds = deeppoly_bounds(chain, lo, hi)
        relaxation = alpha_crown.Relaxation(layer_bounds.pre_lower, layer_bounds.pre_upper, size=lo.shape[0])
        rows_in, rhs_in = self.input_rows if self.input_rows is not None else (None, None)
        region = alpha_crown.Region(lo, hi, rows_in, rhs_in)
        mu = np.broadcast_to(self.rows[None, :, n:], (lo.shape[0],) + self.rows[:, n:].shape)
        single = alpha_crown.backward(chain, region, relaxation, mu, -self.rhs[None, :],
                                input_coef=self.rows[None, :, :n], record=False)
        values = single.value  # (B, R)
        dead = np.zeros(alive.shape, dtype=bool)
        for position, target in enumerate(self.targets):
            owned = np.flatnonzero(self.owner_matrix[position])
            if owned.size == 0:
                continue
            best = np.argmax(values[:, owned], axis=1)
            hit = alive[:, position] & (values[np.arange(lo.shape[0]), owned[best]] > options.tolerances.prune_margin)
            boxes = np.flatnonzero(hit)
            if boxes.size:
                weights = np.zeros((boxes.size, owned.size))
                weights[np.arange(boxes.size), best[boxes]] = 1.0
                self.trees[position].add_bound_leaves(node[boxes, position], weights, None)
                dead[boxes, position] = True
        # conjunctions (and input rows) no single row refutes: a short ascent of weights and gamma
        left = alive & ~dead
        refuted, weights, gammas = self.optimised_refutations(lo, hi, left, layer_bounds, slopes=False)
        for position in range(len(self.targets)):
            boxes = np.flatnonzero(refuted[:, position])
            if boxes.size:
                self.trees[position].add_bound_leaves(node[boxes, position], weights[position], gammas[position])
                dead[boxes, position] = True
        alive = alive & ~dead
        keep = alive.any(axis=1)
        self.proven += float(np.sum(0.5 ** depth[~keep]))
        if self.progress.due():
            self.report(best=float(values[keep].max(axis=1).min()) if np.any(keep) else None)
        index = np.flatnonzero(keep)
        return (lo[index], hi[index], alive[index], depth[index], node[index], _select(layer_bounds, index),
                single.lam[index][:, :, :n], values[index])

    def prove_residues(self, lo, hi, alive, node, layer_bounds, residue) -> None:
        """Residue boxes of a recorded proof: the triangle LP per alive target, Farkas leaves where it refutes
        (a box with no unstable ReLU that the LP does not refute is left undecided: no certificate)."""
        from reluverify.solver.bounds import alpha_crown
        from reluverify.solver.triangle_lp import REFUTED, solve_triangle_lp

        rows_in, rhs_in = self.input_rows if self.input_rows is not None else (None, None)
        for b in np.flatnonzero(residue):
            region = alpha_crown.Region(lo[b : b + 1], hi[b : b + 1], rows_in, rhs_in)
            relaxation = alpha_crown.Relaxation([a[b : b + 1] for a in layer_bounds.pre_lower],
                                          [a[b : b + 1] for a in layer_bounds.pre_upper], size=1)
            linear = relaxation.unstable_counts()[0] == 0
            for position in np.flatnonzero(alive[b]):
                target = self.targets[position]
                outcome = solve_triangle_lp(self.chain, region, relaxation, 0, target.rows, target.rhs,
                                            self.options.tolerances.feasibility, self.options.tolerances.pivot,
                                            deadline=self.deadline)
                self.stats.lp_calls += 1
                self.stats.pivots += outcome.pivots
                if outcome.status == REFUTED and outcome.farkas is not None:
                    self.trees[position].add_lp_leaf(int(node[b, position]), *outcome.farkas)
                    alive[b, position] = False
                elif linear:
                    if outcome.inputs is not None and self.confirm(outcome.inputs, int(position)):
                        raise _Stop(SearchOutcome("sat", outcome.inputs, target.index))
                    self.undecided.append("a linear box the LP did not refute (no certificate for it)")
                    alive[b, position] = False


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


class _ParameterLayout:
    """Where a box's ascent parameters for one target sit in a flat float32 row: the slopes and the two
    bound multipliers of every hidden neuron (layer by layer), the input rows' multipliers, the weights
    of the target's rows (padded to the most rows of any target)."""

    def __init__(self, layer_sizes: list[int], input_rows: int, rows: int) -> None:
        relus = int(sum(layer_sizes))
        starts = np.concatenate([[0], np.cumsum(layer_sizes)]).astype(int)
        # per hidden layer: its slopes' columns and its (lower, upper) multipliers' columns
        self.layers = [(slice(s, e), slice(relus + 2 * s, relus + 2 * e)) for s, e in zip(starts[:-1], starts[1:])]
        self.gamma = slice(3 * relus, 3 * relus + input_rows)
        self.weights = 3 * relus + input_rows  # first column of the row weights
        self.size = self.weights + rows

    def pack(self, params) -> np.ndarray:
        """(k, size) from :class:`~reluverify.solver.bounds.alpha_crown.Parameters` of k boxes and one row each."""
        k = params.weights.shape[0]
        out = np.zeros((k, self.size), dtype=np.float32)
        for (slopes, multipliers), a, b in zip(self.layers, params.alpha, params.beta):
            out[:, slopes] = a[:, 0, :]
            out[:, multipliers] = b[:, 0, :, :].reshape(k, -1)
        if params.gamma is not None:
            out[:, self.gamma] = params.gamma[:, 0, :]
        out[:, self.weights : self.weights + params.weights.shape[2]] = params.weights[:, 0, :]
        return out

    def unpack_into(self, params, packed: np.ndarray, mask: np.ndarray) -> None:
        """Overwrite the parameters of the boxes in ``mask`` (k,) with their rows of ``packed`` (k, size)."""
        index = np.flatnonzero(mask)
        if index.size == 0:
            return
        rows = packed[index].astype(params.weights.dtype)
        for (slopes, multipliers), a, b in zip(self.layers, params.alpha, params.beta):
            a[index, 0, :] = rows[:, slopes]
            b[index, 0, :, :] = rows[:, multipliers].reshape(index.size, -1, 2)
        if params.gamma is not None:
            params.gamma[index, 0, :] = rows[:, self.gamma]
        params.weights[index, 0, :] = rows[:, self.weights : self.weights + params.weights.shape[2]]


def _select(bounds: LayerBounds, index: np.ndarray) -> LayerBounds:
    return LayerBounds(
        [b[index] for b in bounds.pre_lower],
        [b[index] for b in bounds.pre_upper],
        bounds.out_lower[index],
        bounds.out_upper[index],
        bounds.infeasible[index],
    )


def vertex_points(coef, tight, lo, hi):
    """Per box and target, the vertex of the box that minimises the linear lower bound of the target's
    tightest row: (B, D, n)."""
    vertex_coef = np.take_along_axis(coef, tight[:, :, None], axis=1)  # (B, D, n)
    return np.where(vertex_coef > 0, lo[:, None, :], hi[:, None, :])


def _try_candidates(chain, lo, hi, alive, coef, tight, rows, rhs, owner_matrix, statistics, confirm):
    n = chain.input_size
    batch, d = alive.shape
    vertices = vertex_points(coef, tight, lo, hi)
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
