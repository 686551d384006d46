"""The search loop of ReLU branch and bound over one box's targets (see the package docstring).

One round takes the sub-problems with the lowest bounds from the pool (:meth:`_Search.work`),
splits each once and bounds the children (:meth:`_Search.branch`), and settles them
(:meth:`_Search.settle`): refuted ones are dropped, the points minimising their bounds checked,
linear ones solved by the exact LP, leaves decided by Reluplex, the rest pooled. Every few rounds
a gradient attack starts from the most promising sub-problems. :class:`_Search` is a
:class:`~reluverify.solver.search.ShareableSearch`, so one search can run on several processes.

Invariant: every counterexample of target ``t`` lies in the constrained region of a sub-problem in
the pool in which ``t`` is not refuted, of one being processed, or of a leaf handed to Reluplex;
``proven`` sums ``2^-d`` over every sub-problem refuted at depth ``d``, so the search is ``unsat``
only when it reaches 1 with the pool empty and every leaf ``unsat``.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from reluverify.network import ReluChain
from reluverify.solver.bounds import alpha_crown
from reluverify.solver.certificate import ProofTree
from reluverify.solver.checkpoint import OPEN, UNSAT, SearchCheckpoint, fits
from reluverify.solver.options import SolverOptions
from reluverify.solver.progress import Throttle
from reluverify.solver.relu_bab.ascent import bound_settings
from reluverify.solver.relu_bab.branching import choose_branch
from reluverify.solver.relu_bab.children import NewBounds, make_children, phases_of, rebounds_deep_network
from reluverify.solver.relu_bab.counterexamples import attack_pool, check_vertices
from reluverify.solver.relu_bab.pool import MEMORY_MB, Pool, pack, unpack
from reluverify.solver.relu_bab.recorder import recorder_for
from reluverify.solver.relu_bab.root import RootBounds, RootSolution, bound_root
from reluverify.solver.relu_bab.targets import Disjunction, Items, item_params, objectives, repeat_region, scatter_params
from reluverify.solver.reluplex import LeafOutcome
from reluverify.solver.result import Statistics
from reluverify.solver.search import Recipe, SearchOutcome, ShareableSearch, exhausted
from reluverify.solver.sharing import share
from reluverify.solver.triangle_lp import CANDIDATE, REFUTED, solve_triangle_lp

BATCH = 256
"""At most this many sub-problems are branched per round (fewer when rounds get slow)."""
ATTACK_EVERY = 5
"""Every this many rounds, a gradient attack starts from the most promising sub-problems."""
LP_DEPTH = 0
"""Sub-problems at least this deep that the bounds leave open are checked by the exact LP over their
triangle relaxation (our simplex; 0: only linear sub-problems) ..."""
LP_SHARE = 0.5
"""... while the LP takes at most this share of the search's time."""


def searches_jointly(chain: ReluChain, options: SolverOptions) -> bool:
    """Whether the disjuncts of one box are searched in one tree (``bab.joint_disjuncts``)."""
    if options.proof or options.bab.joint_disjuncts == "separate":
        return False
    return options.bab.joint_disjuncts == "joint" or rebounds_deep_network(chain, options)


def relu_bab_search(
    chain: ReluChain,
    targets: list[Disjunction],
    region: alpha_crown.Region,
    root: RootBounds,
    options: SolverOptions,
    statistics: Statistics,
    deadline: float | None,
    confirm: Callable[[np.ndarray, int], bool],
    leaf_solver: Callable[[int, np.ndarray, np.ndarray, np.ndarray], LeafOutcome],
    rng: np.random.Generator | None = None,
    start: RootSolution | None = None,
    progress: Throttle | None = None,
    tree: ProofTree | None = None,
    recipe: Recipe | None = None,
) -> SearchOutcome:
    """Search the region for a point satisfying one of ``targets`` (see the package docstring).

    ``region`` is a batch of one (the targets' box and the query's input rows); ``root`` holds
    bounds valid on it; ``confirm(v, t)`` confirms a candidate of target ``t`` with onnxruntime;
    ``leaf_solver(t, lower, upper, phases)`` decides target ``t`` on a leaf exactly (Reluplex with
    fixed phases), or returns None when the leaf is too large for it (the sub-problem is then split
    further); ``start`` is the root bound if :func:`bound_root` already computed it; ``progress``
    receives where the search stands; ``tree``, when given, records the proof of the single target
    (docs/certificates.md: every split, and each leaf's evidence: its bound's parameters or the LP's
    Farkas multipliers). Recording a proof turns off what a proof could not show: implied phases,
    Reluplex leaves and sharing among processes. A ``sat`` outcome names its target in ``disjunct``.
    With ``options.parallel.jobs > 1`` the sub-problems are shared among worker processes, or with
    the ``ray`` backend among the workers of a Ray cluster, which build their copies from ``recipe``
    (:func:`~reluverify.solver.sharing.share`).
    """
    if tree is not None and len(targets) != 1:
        raise ValueError("a proof tree records the search of a single target")
    search = _Search(chain, targets, region, options, statistics, deadline, confirm, leaf_solver, rng, progress, tree)
    return search.run(root, start, recipe)


def empty_search(chain: ReluChain, targets: list[Disjunction], region: alpha_crown.Region, options: SolverOptions,
                 confirm: Callable[[np.ndarray, int], bool],
                 leaf_solver: Callable[[int, np.ndarray, np.ndarray, np.ndarray], LeafOutcome | None]) -> ShareableSearch:
    """The search of :func:`relu_bab_search` with an empty pool and no deadline, for a worker that takes
    the sub-problems of another copy (:mod:`~reluverify.solver.distributed`)."""
    return _Search(chain, targets, region, options, Statistics(), None, confirm, leaf_solver, None, None)


class _Stop(Exception):
    """Ends the search with an outcome (sat, timeout, unknown)."""

    def __init__(self, outcome: SearchOutcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


class _Search(ShareableSearch):
    """The state of one box's branch and bound over its targets (see :func:`relu_bab_search`)."""

    def __init__(self, chain, targets, region, options, statistics, deadline, confirm, leaf_solver, rng, progress, tree=None):
        self.chain, self.targets, self.region, self.options = chain, targets, region, options
        self.proof = tree is not None
        self.recorder = recorder_for(tree, chain, targets[0].rhs.size)
        self.stats, self.deadline, self.confirm, self.leaf_solver = statistics, deadline, confirm, leaf_solver
        self.rng = rng or np.random.default_rng(options.attack.seed)
        self.progress = progress or Throttle(None)
        self.num_v = region.lower.shape[1]
        self.n_x = chain.input_size
        self.layers = len(chain.weights) - 1
        self.objective = objectives(targets, self.num_v)
        self.margin = options.tolerances.prune_margin
        self.pool = Pool()
        self.undecided: list[str] = []
        self.started = time.monotonic()
        self.lp_seconds = 0.0
        self.proven = 0.0  # the share of the search tree refuted (a sub-problem at depth d weighs 2^-d)
        self.settings = bound_settings(options)
        self.rounds = 0
        self.seconds_per_item = 0.0
        # children re-bounded above their split: on deep networks a split in the first open layer
        # tightens every layer above it, which the branching scores (parent's bounds) do not see
        self.new_bounds = NewBounds.of(chain, options, self.proof)
        # branching looks for ReLUs in the earliest layer with an unstable one where children are
        # re-optimised (deep networks: a split there tightens every layer above it), in every layer
        # otherwise (on shallow networks the last hidden layer's splits are the ones that count)
        self.earliest = self.new_bounds.reoptimise
        # the entry of this search in the checkpoint file, if one is kept (solver/checkpoint.py)
        self.checkpoint = SearchCheckpoint.of(options, "relu-bab", chain, targets,
                                              [region.lower, region.upper, region.rows, region.rhs],
                                              "sub-problems", "the search tree")

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _Stop(SearchOutcome("timeout", reason="time budget exhausted in ReLU branch and bound"))

    def report(self, force: bool = False) -> None:
        if self.progress.due() or (force and self.progress):
            values = self.pool.view("value")
            best = float(values.min()) if values.size else None
            self.progress.report("relu-bab", self.stats.subproblems, self.pool.size, self.proven, best, force=force)

    # ------------------------------------------------------------------ the search
    def run(self, root: RootBounds, start: RootSolution | None, recipe: Recipe | None = None) -> SearchOutcome:
        self.recorder.root(root)
        relaxation = root.relaxation
        if relaxation.infeasible()[0]:
            return SearchOutcome("unsat")
        if start is None:
            start = bound_root(self.chain, self.targets, self.region, root, self.options)
        entry = self.saved_entry(relaxation, start)
        if entry is not None and entry.status == UNSAT:
            return SearchOutcome("unsat")
        try:
            if entry is None:
                self.stats.subproblems += 1
                self.settle(relaxation, start.params, start.values[None, :], start.vertices[None, :, :],
                            np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
            else:  # the saved pool and refuted share instead of the root (a consistent pair)
                if entry.arrays:
                    self.add(entry.arrays)
                self.proven = entry.proven
                self.undecided.extend(entry.undecided)
                entry.arrays = {}  # the pool holds them now (not twice in memory)
        except _Stop as stop:
            return stop.outcome
        # a proof's tree is this process's: no sharing
        if self.options.parallel.jobs > 1 and self.pool.size and not self.proof:
            outcome = share(self, self.options, recipe, self.deadline, self.progress, "relu-bab")
        else:
            outcome = self.work(float("inf"))
            if outcome is not None and outcome.status != "sat":
                self.save_now()  # a timeout or a spent budget: what is left, for the next run
            outcome = outcome or self.finish()
        if outcome.status == "unsat" and self.checkpoint is not None:
            self.checkpoint.finished(self.stats.subproblems)
        self.report(force=True)
        return outcome

    def saved_entry(self, relaxation: alpha_crown.Relaxation, start: RootSolution):
        """This search's entry in the checkpoint (None without one), announced; an open entry whose rows
        are not this search's rows (another version's layout) is not used."""
        if self.checkpoint is None:
            return None
        entry = self.checkpoint.load()
        if entry is not None and entry.status == OPEN and entry.arrays:
            template = pack(relaxation, start.params, start.values[None, :], np.zeros(1, dtype=np.int64),
                            np.zeros(1, dtype=np.int64))
            if not fits(entry.arrays, template):
                self.checkpoint.refuse(entry, "its sub-problems are not laid out as this search's")
                return None
        if entry is not None:
            self.checkpoint.announce(entry)
        return entry

    def work(self, seconds: float) -> SearchOutcome | None:
        """Branch for about ``seconds`` (or until the pool is empty); a final outcome, or None."""
        until = time.monotonic() + seconds
        try:
            while self.pool.size and time.monotonic() < until:
                self.check_time()
                if self.options.node_budget is not None and self.stats.subproblems > self.options.node_budget:
                    raise _Stop(SearchOutcome("unknown", reason="node budget exhausted in ReLU branch and bound"))
                self.rounds += 1
                started = time.monotonic()
                # about half a second of work per round, so the deadline is never overshot by much
                batch = min(int(np.clip(0.5 / max(self.seconds_per_item, 1e-6), 8, BATCH)), self.pool.size)
                self.round(self.select(batch))
                if self.options.falsify and self.num_v == self.n_x and self.pool.size and self.rounds % ATTACK_EVERY == 0:
                    self.attack()
                self.seconds_per_item = 0.5 * self.seconds_per_item + 0.5 * (time.monotonic() - started) / batch
                self.report()
                if self.checkpoint is not None and self.checkpoint.due():
                    self.save_now()
        except _Stop as stop:
            self.report(force=True)
            return stop.outcome
        return None

    def finish(self) -> SearchOutcome:
        return exhausted(self.proven, self.undecided)

    # -------------------------------------------------------- sharing (solver/sharing.py)
    @property
    def statistics(self) -> Statistics:
        return self.stats

    def open_count(self) -> int:
        return self.pool.size

    def split_off(self, parts: int) -> list[dict[str, np.ndarray]]:
        """The pool cut into ``parts`` payloads, dealt in order of bound so each gets a similar mix."""
        order = np.argsort(self.pool.view("value"), kind="stable")
        arrays = self.pool.pop(order)
        return [{name: a[k::parts] for name, a in arrays.items()} for k in range(parts)]

    def add(self, payload: dict[str, np.ndarray]) -> None:
        self.pool.push(payload)

    def take(self, count: int) -> dict[str, np.ndarray]:
        """The ``count`` sub-problems :meth:`Pool.select` would branch next."""
        return self.pool.select(max(1, min(count, self.pool.size)))

    def reset_statistics(self) -> None:
        """In a worker process: count from zero (the caller keeps what was counted before the fork)."""
        self.stats = Statistics()
        self.proven = 0.0
        self.undecided = []
        self.progress = Throttle(None)

    def snapshot(self) -> dict[str, np.ndarray]:
        """The pool's rows (views: the pool is unchanged), as one payload."""
        return {name: self.pool.view(name) for name in self.pool.arrays}

    def save(self, payloads: list[dict[str, np.ndarray]], proven: float, undecided: list[str], done: int) -> None:
        """Save the open sub-problems ``payloads`` and the refuted share ``proven``, taken at one moment, to
        the checkpoint."""
        parts = [p for p in payloads if p and next(iter(p.values())).shape[0]]
        if len(parts) > 1:
            parts = [{name: np.concatenate([p[name] for p in parts]) for name in parts[0]}]
        self.checkpoint.save(parts[0] if parts else {}, proven, undecided, done)

    def save_now(self) -> None:
        """Save this process's pool and refuted share (between rounds: a consistent pair)."""
        if self.checkpoint is not None:
            self.save([self.snapshot()], self.proven, self.undecided, self.stats.subproblems)

    # ------------------------------------------------------------------ one round
    def select(self, batch: int) -> dict[str, np.ndarray]:
        """Take ``batch`` sub-problems (:meth:`Pool.select`); stop when the pool outgrew its memory."""
        if self.pool.outgrown:
            raise _Stop(SearchOutcome(
                "unknown", reason=f"the sub-problem pool outgrew its memory cap ({MEMORY_MB} MB)"
            ))
        return self.pool.select(batch)

    def round(self, arrays: dict[str, np.ndarray]) -> None:
        """:meth:`branch` the sub-problems ``arrays`` taken from the pool. A round stopped before its end
        (a timeout) is undone: its sub-problems go back to the pool and ``proven`` and ``undecided`` are
        as before it (no child is pooled before the round's last step), so the pool and the refuted share
        stay a consistent pair, which a checkpoint can save."""
        proven, undecided = self.proven, len(self.undecided)
        try:
            self.branch(arrays)
        except _Stop as stop:
            if stop.outcome.status != "sat":
                self.proven = proven
                del self.undecided[undecided:]
                self.pool.push(arrays)
            raise

    def item_batch(self, relaxation: alpha_crown.Relaxation, items: Items):
        """The items' region, relaxation and objective (a batch of ``items.size``)."""
        return repeat_region(self.region, items.size), relaxation.take(items.owner), self.objective.take(items.target)

    def branch(self, arrays: dict[str, np.ndarray]) -> None:
        """Split every sub-problem of ``arrays`` once; bound and settle the children."""
        chain, stats, margin = self.chain, self.stats, self.margin
        relaxation, params = unpack(arrays, self.layers)
        batch = relaxation.batch
        open_targets = arrays["values"] <= margin
        items = Items.of(open_targets)
        region, item_relaxation, objective = self.item_batch(relaxation, items)
        parent_params = item_params(params, items)
        p = alpha_crown.bound(chain, region, item_relaxation, objective, parent_params)
        # a proof implies no phases: each child refuted must be a leaf of the tree with its own evidence
        branching = choose_branch(chain, region, item_relaxation, parent_params, p, items, margin,
                                  implied=not self.proof, earliest=self.earliest)
        child, child_params = make_children(relaxation, params, branching)
        depth = np.concatenate([arrays["depth"], arrays["depth"]]) + 1
        node = self.recorder.splits(arrays["node"], branching.layer, branching.neuron)
        stats.relu_splits += batch
        stats.splits += batch
        stats.implied_phases += branching.implied[0].size
        stats.max_depth = max(stats.max_depth, int(depth.max()))
        # per child and target: open unless the branching bound refutes the target there
        child_open = np.concatenate([open_targets, open_targets])
        for side in (0, 1):
            refuted_here = np.zeros_like(open_targets)
            refuted_here[items.owner, items.target] = branching.children[:, side] > margin
            child_open[side * batch : (side + 1) * batch] &= ~refuted_here
        # children refuted for every target by the branching bounds, or whose parent is, need no optimising
        open_ = ~np.concatenate([branching.refuted, branching.refuted]) & child_open.any(axis=1)
        if self.proof:
            open_ |= child.infeasible()  # a proof shows an empty child by its bound, not by crossed bounds
        else:
            open_ &= ~child.infeasible()
        child, open_ = self.new_bounds.apply(chain, self.region, child, open_, depth, branching, self.deadline)
        self.proven += float(np.sum(0.5 ** depth[~open_]))
        # children refuted so far are leaves whose evidence is their parent's parameters
        self.recorder.bound_leaves(node, child, child_params, ~open_)
        keep = np.flatnonzero(open_)
        stats.subproblems += keep.size
        if keep.size == 0:
            return
        child, child_params, depth, child_open = child.take(keep), child_params.take(keep), depth[keep], child_open[keep]
        if self.proof:
            child_open[:] = True  # a proof's child is bounded (an empty one shows by its bound)
        values, vertices = self.bound(child, child_params, child_open)
        self.settle(child, child_params, values, vertices, depth, node[keep])

    def bound(self, relaxation: alpha_crown.Relaxation, params: alpha_crown.Parameters, open_targets: np.ndarray):
        """Optimise the bounds of the open (sub-problem, target) pairs (``params`` updated in place):
        ``values`` (B, T; +inf where a target is not open) and the points minimising them (B, T, n_v)."""
        values = np.full(open_targets.shape, np.inf)
        vertices = np.zeros(open_targets.shape + (self.num_v,))
        live = np.flatnonzero(open_targets.any(axis=1))
        if live.size:
            sub = Items.of(open_targets[live])
            sub = Items(live[sub.owner], sub.target, sub.first)
            region, item_relaxation, objective = self.item_batch(relaxation, sub)
            value, new_params, cp = alpha_crown.optimise(self.chain, region, item_relaxation, objective,
                                                         item_params(params, sub), self.settings)
            scatter_params(params, sub, new_params)
            values[sub.owner, sub.target] = value[:, 0]
            vertices[sub.owner, sub.target] = cp.vertex[:, 0, :]
        return values, vertices

    def settle(self, relaxation, params, values, vertices, depth, node) -> None:
        """Bounded sub-problems (``values`` (B, T), +inf where a target is refuted; ``vertices``
        (B, T, n_v)): refuted ones are dropped, candidates checked, the exact LP run where it is due,
        leaves decided, the rest pooled."""
        open_targets = values <= self.margin
        alive = open_targets.any(axis=1)
        self.proven += float(np.sum(0.5 ** depth[~alive]))
        self.recorder.bound_leaves(node, relaxation, params, ~alive)
        if not np.any(alive):
            return
        keep = np.flatnonzero(alive)
        relaxation, params = relaxation.take(keep), params.take(keep)
        values, depth, vertices, node, open_targets = values[keep], depth[keep], vertices[keep], node[keep], open_targets[keep]
        for t in range(len(self.targets)):
            self.candidates(vertices[open_targets[:, t], t], t)
        linear = relaxation.unstable_counts() == 0
        self.exact_lp(relaxation, open_targets, linear, depth, vertices, node)
        # a linear sub-problem whose LP point onnxruntime did not confirm, or one split too deep,
        # goes to Reluplex with its phases fixed
        refuted = ~open_targets.any(axis=1)
        leaf = ~refuted & (linear | (depth >= self.options.bab.leaf_depth))
        if self.proof:
            # a proof has no Reluplex leaves (the checker could not recompute them): a linear region the
            # LP did not refute is left undecided, a deep one is split further
            leaf &= linear
            self.undecided.extend(["a linear sub-problem's LP point was not confirmed (no certificate for it)"] * int(leaf.sum()))
        else:
            self.reluplex_leaves(relaxation, open_targets, leaf, refuted)
        self.proven += float(np.sum(0.5 ** depth[refuted]))
        rest = np.flatnonzero(~leaf & ~refuted)
        if rest.size:
            values = np.where(open_targets, values, np.inf)
            self.pool.push(pack(relaxation.take(rest), params.take(rest), values[rest], depth[rest], node[rest]))

    def exact_lp(self, relaxation, open_targets, linear, depth, vertices, node) -> None:
        """The exact LP over the triangle relaxation for every open target of every linear sub-problem
        (where the LP is the sub-problem itself), and of deep ones the bounds have not closed while the
        LP keeps within its share of the time; a target it refutes is closed in ``open_targets``."""
        options, stats = self.options, self.stats
        deep = (depth >= LP_DEPTH) & (LP_DEPTH > 0)
        for b in np.flatnonzero(linear | deep):
            for t in np.flatnonzero(open_targets[b]):
                self.check_time()
                if not linear[b] and LP_SHARE * (time.monotonic() - self.started) < self.lp_seconds:
                    continue
                lp_started = time.monotonic()
                target = self.targets[t]
                outcome = solve_triangle_lp(
                    self.chain, self.region, relaxation, int(b), target.rows, target.rhs,
                    options.tolerances.feasibility, options.tolerances.pivot, start=vertices[b, t], deadline=self.deadline,
                )
                self.lp_seconds += time.monotonic() - lp_started
                stats.lp_calls += 1
                stats.pivots += outcome.pivots
                # a proof takes an LP refutation only with its evidence, the Farkas multipliers
                if outcome.status == REFUTED and (not self.proof or outcome.farkas is not None):
                    open_targets[b, t] = False
                    stats.lp_refuted += 1
                    self.recorder.lp_leaf(int(node[b]), outcome.farkas)
                elif outcome.status == CANDIDATE:
                    self.candidates(outcome.inputs[None, :], t)

    def reluplex_leaves(self, relaxation, open_targets, leaf, refuted) -> None:
        """Each ``leaf``'s open targets decided by Reluplex with its phases fixed; in place: a target
        found ``unsat`` is closed in ``open_targets``, a leaf too large for Reluplex is no leaf (it is
        split further), and a leaf with every target closed is ``refuted``."""
        for b in np.flatnonzero(leaf):
            phases = phases_of(relaxation, int(b))
            for t in np.flatnonzero(open_targets[b]):
                self.check_time()
                outcome = self.leaf_solver(int(t), self.region.lower[0], self.region.upper[0], phases)
                if outcome is None:  # too large for Reluplex: split further
                    leaf[b] = False
                    break
                self.stats.leaves += 1
                if outcome.status == "sat":
                    raise _Stop(SearchOutcome("sat", outcome.inputs, disjunct=int(t)))
                if outcome.status == "timeout":
                    raise _Stop(SearchOutcome("timeout", reason=outcome.reason))
                if outcome.status == "unsat":
                    open_targets[b, t] = False
                else:
                    self.undecided.append(outcome.reason or outcome.status)
            refuted[b] = leaf[b] and not open_targets[b].any()

    def candidates(self, points: np.ndarray, t: int) -> None:
        found = check_vertices(self.chain, self.targets[t], points, self.n_x, lambda v: self.confirm(v, t), self.stats)
        if found is not None:
            raise _Stop(SearchOutcome("sat", found, disjunct=t))

    def attack(self) -> None:
        """PGD from the pool's most promising sub-problems (:func:`attack_pool`)."""
        found = attack_pool(self.chain, self.targets, self.region, self.pool, self.layers, self.objective, self.rng,
                            self.options, self.confirm, self.stats)
        if found is not None:
            raise _Stop(SearchOutcome("sat", found[0], disjunct=found[1]))
