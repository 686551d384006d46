"""Deciding a whole query: falsify first, then prove each disjunct (or find its counterexample).

The query is ``sat`` as soon as one disjunct has a confirmed counterexample, ``unsat`` when
every disjunct is proven infeasible, and otherwise ``timeout`` (the budget ran out) or
``unknown`` (a residue could not be decided, with the reason).

:class:`Decider` runs the phases every query goes through (constant inputs folded, empty and
bound-refuted disjuncts settled, falsification) and hands the rest to one search strategy of
:mod:`~reluverify.solver.strategies`, whose outcomes it settles in one place (:meth:`Decider.settle`).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from reluverify.query import Query
from reluverify.solver.bounds.deeppoly import deeppoly_bounds, forward_bounds
from reluverify.solver.bounds.rows import row_lower_bounds
from reluverify.solver.certificate import INPUT_LOWER, INPUT_UPPER, Certificate, ProofTree
from reluverify.solver.confirm import confirm
from reluverify.solver.facts import PhaseFacts, chain_fingerprint, known_bounds, phases_from_bounds
from reluverify.solver.falsify import attack, polish, random_samples, violations
from reluverify.solver.options import SolverOptions
from reluverify.solver.progress import ProgressCallback, Throttle, observer
from reluverify.solver.projection import project_constant_inputs
from reluverify.solver.reluplex import LeafOutcome, ReluplexEngine
from reluverify.solver.result import SAT, TIMEOUT, UNKNOWN, UNSAT, Counterexample, Result, Statistics
from reluverify.solver.search import Recipe, SearchOutcome, ShareableSearch
from reluverify.solver.strategies import REGISTRY, choose

SYMBOLIC_MAX_INPUTS = 256
"""A query's first bounds come from the symbolic forward pass (cost grows with the inputs) up to this
many network inputs, and from layer-by-layer DeepPoly back-substitution (cost grows with the unstable
neurons) beyond."""


class Decider:
    """Decides one query. When some network inputs are constant, the search runs on the query
    projected onto the others (:mod:`~reluverify.solver.projection`): ``self.query`` is that
    projection, ``self.original`` the query as given, on which every counterexample is confirmed.

    It is the :class:`~reluverify.solver.strategies.Context` its strategy searches with."""

    def __init__(self, query: Query, options: SolverOptions, facts=(), progress=None) -> None:
        self.original = query
        self.progress = Throttle(progress)
        self.options = options
        self.stats = Statistics()
        self.start = time.monotonic()
        self.deadline = None if options.timeout is None else self.start + options.timeout
        self.found: Counterexample | None = None
        # facts from other runs, only those proven on a domain that contains this query's box
        # (facts speak of the original chain's ReLUs, which the projection keeps one for one)
        original_chain = query.relu_chain()
        n_x = original_chain.input_size
        self.fingerprint = chain_fingerprint(original_chain)
        self.box = (query.lower[:n_x].copy(), query.upper[:n_x].copy())
        # facts are another run's word: a proof does not take them
        usable = [] if options.proof else [f for f in facts if f.covers(self.fingerprint, *self.box)]
        self.known = known_bounds(usable, original_chain.layer_sizes) if usable else None
        self.projection = project_constant_inputs(query) if options.fold_constant_inputs else None
        if self.projection is not None:
            query = self.projection.query
        self.query = query
        self.chain = query.relu_chain()
        self._layer_bounds: dict[tuple[bytes, bytes], object] = {}
        self.facts = self._facts_on_box()
        n_v, m = query.num_inputs, query.num_outputs
        input_rows = query.input_constraints
        padded = np.hstack([input_rows.matrix, np.zeros((input_rows.num_rows, m))])
        # every row of the query once: each disjunct's own rows, then the shared input rows;
        # row_index[k] selects disjunct k's rows and the input rows
        own = [d.constraints for d in query.disjuncts]
        self.all_rows = np.vstack([c.matrix for c in own] + [padded]).reshape(-1, n_v + m)
        self.all_rhs = np.concatenate([c.rhs for c in own] + [input_rows.rhs])
        starts = np.cumsum([0] + [c.num_rows for c in own])
        shared = np.arange(starts[-1], starts[-1] + input_rows.num_rows)
        self.row_index = [np.concatenate([np.arange(starts[k], starts[k + 1]), shared]) for k in range(len(own))]
        self.targets = [(self.all_rows[idx], self.all_rhs[idx]) for idx in self.row_index]
        self.engines: dict[tuple[bytes, bytes], ReluplexEngine] = {}
        self.verdicts = [UNKNOWN] * len(query.disjuncts)
        self.reasons: list[str] = []
        self.trees: dict[int, ProofTree] = {}
        if options.proof:
            for k, d in enumerate(query.disjuncts):
                self.trees[k] = ProofTree(k, d.constraints.num_rows, query.input_constraints.num_rows)

    # ------------------------------------------------------------ helpers
    def layer_bounds(self, lower: np.ndarray, upper: np.ndarray):
        """Forward bounds of the chain on one box of network inputs (cached: disjuncts share boxes)."""
        n_x = self.chain.input_size
        key = (lower[:n_x].tobytes(), upper[:n_x].tobytes())
        if key not in self._layer_bounds:
            known_lower, known_upper = self.known if self.known else (None, None)
            if n_x > SYMBOLIC_MAX_INPUTS or self.options.proof:  # images (cost by unstable
                # neurons, not by inputs), and proofs (the checker recomputes DeepPoly, not the symbolic pass)
                bounds = deeppoly_bounds(self.chain, lower[None, :n_x], upper[None, :n_x], known_lower, known_upper)
            else:
                bounds = forward_bounds(
                    self.chain, lower[None, :n_x], upper[None, :n_x], known_lower, known_upper, refine=self.options.refine_bounds
                )
            self._layer_bounds[key] = bounds
        return self._layer_bounds[key]

    def _facts_on_box(self) -> PhaseFacts:
        """The ReLU phases that bounds fix on the whole query box (for reuse on its sub-domains)."""
        bounds = self.layer_bounds(self.query.lower, self.query.upper)
        if bounds.pre_lower:
            pre_lo = np.concatenate([b[0] for b in bounds.pre_lower])
            pre_hi = np.concatenate([b[0] for b in bounds.pre_upper])
        else:
            pre_lo = pre_hi = np.zeros(0)
        return PhaseFacts(self.fingerprint, self.box[0], self.box[1], phases_from_bounds(pre_lo, pre_hi))

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def recipe(self, strategy: str, members: list[int], extra: dict) -> Recipe:
        """How a worker anywhere builds the search ``strategy`` runs on ``members`` (:func:`worker_search`):
        the query as given, these options in one process, without a deadline or a checkpoint (the
        coordinator keeps both)."""
        options = replace(self.options, timeout=None, parallel=replace(self.options.parallel, jobs=1, backend="local"),
                          checkpoint=replace(self.options.checkpoint, path=None))
        return Recipe("reluverify.solver.decide:worker_search", (strategy, self.original, options, list(members), extra))

    def expand(self, inputs: np.ndarray) -> np.ndarray:
        """The original query's input vector for one of the searched query."""
        return inputs if self.projection is None else self.projection.expand(inputs)

    def try_confirm(self, inputs: np.ndarray, disjunct: int) -> bool:
        """Confirm with onnxruntime on the original query; for inputs without auxiliaries, polish
        boundary points first."""
        cex = confirm(self.original, self.expand(inputs), self.options.tolerances.confirm, disjunct)
        if cex is None and self.query.num_auxiliary == 0:
            d = self.query.disjuncts[disjunct]
            rows, rhs = self.targets[disjunct]
            better = polish(self.chain, np.asarray(inputs, dtype=np.float64), d.lower, d.upper, rows, rhs)
            cex = confirm(self.original, self.expand(better), self.options.tolerances.confirm, disjunct)
        if cex is None:
            self.stats.candidates_rejected += 1
            return False
        self.found = cex
        return True

    def result(self, verdict: str, reason: str = "") -> Result:
        return Result.of_run(verdict, self.found, self.stats, self.start, reason, self.verdicts, facts=self.facts,
                             certificate=self.certificate() if verdict == UNSAT and self.options.proof else None)

    def certificate(self) -> Certificate:
        """The proof trees, in the original query's terms: input splits of the projection name the
        original input variables (constant ones, which the projection removed, are never split)."""
        trees = []
        for k in range(len(self.query.disjuncts)):
            tree = self.trees[k]
            if self.projection is not None:
                for node, kind in enumerate(tree.kind):
                    if kind in (INPUT_LOWER, INPUT_UPPER):
                        tree.index[node] = int(self.projection.keep[tree.index[node]])
            trees.append(tree)
        original = self.original
        return Certificate(original.num_inputs, original.num_network_inputs, original.num_outputs, trees)

    # -------------------------------------------------------------- phases
    def falsify(self, live: list[int]) -> bool:
        """Sampling, then a gradient attack; disjuncts sharing an input box are attacked in one batch."""
        if not self.options.falsify or self.query.num_auxiliary:
            return False
        opts = self.options
        rng = np.random.default_rng(opts.attack.seed)
        groups = self.box_groups(live)
        for members in groups:
            box = self.query.disjuncts[members[0]]
            rows, rhs, mask_of = self.stacked_targets(members)
            samples = random_samples(rng, box.lower, box.upper, opts.attack.samples)
            self.stats.falsification_samples += samples.shape[0]
            n = self.chain.input_size
            y = self.chain.evaluate(samples)
            margins = samples @ rows[:, :n].T + y @ rows[:, n:].T - rhs  # (S, R)
            for position, k in enumerate(members):
                values = np.where(mask_of[position], margins, -np.inf).max(axis=1) if rows.shape[0] else np.zeros(len(samples))
                for i in np.argsort(values)[:4]:
                    if values[i] <= 0 and self.try_confirm(samples[i], k):
                        return True
            if self.timed_out():
                return False
        for members in groups:
            box = self.query.disjuncts[members[0]]
            rows, rhs, mask_of = self.stacked_targets(members)
            restarts = opts.attack.restarts
            starts = np.concatenate(
                [0.5 * (box.lower + box.upper)[None, :], rng.uniform(box.lower, box.upper, size=(restarts - 1, box.lower.size))]
            )
            starts = np.tile(starts, (len(members), 1))
            mask = np.repeat(mask_of, restarts, axis=0)
            points, values = attack(self.chain, box.lower, box.upper, rows, rhs, rng, starts=starts, steps=opts.attack.steps, mask=mask)
            self.stats.falsification_samples += points.shape[0] * opts.attack.steps
            for i in np.argsort(values)[: 4 * len(members)]:
                if values[i] <= 0 and self.try_confirm(points[i], members[i // restarts]):
                    return True
            if self.timed_out():
                return False
        return False

    def box_groups(self, members: list[int]) -> list[list[int]]:
        """Disjuncts grouped by identical input box (in order of first appearance)."""
        groups: dict[tuple[bytes, bytes], list[int]] = {}
        for k in members:
            d = self.query.disjuncts[k]
            groups.setdefault((d.lower.tobytes(), d.upper.tobytes()), []).append(k)
        return list(groups.values())

    def stacked_targets(self, members: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows of several disjuncts stacked, and a mask (members, rows) of each one's rows."""
        rows = np.vstack([self.targets[k][0] for k in members])
        rhs = np.concatenate([self.targets[k][1] for k in members])
        sizes = [self.targets[k][1].size for k in members]
        owner = np.repeat(np.arange(len(members)), sizes)
        return rows, rhs, owner[None, :] == np.arange(len(members))[:, None]

    def engine(self, lower: np.ndarray, upper: np.ndarray) -> ReluplexEngine:
        """The Reluplex engine for the input box ``[lower, upper]`` (one tableau for all disjuncts)."""
        key = (lower.tobytes(), upper.tobytes())
        if key not in self.engines:
            known = None
            if self.known is not None:
                known = (np.concatenate([k[0] for k in self.known[0]]), np.concatenate([k[0] for k in self.known[1]]))
            self.engines[key] = ReluplexEngine(
                self.chain,
                self.query.num_inputs,
                self.all_rows,
                self.all_rhs,
                lower,
                upper,
                self.options,
                self.stats,
                known_pre=known,
            )
        return self.engines[key]

    def refuted_by_bounds(self, k: int, lower: np.ndarray, upper: np.ndarray) -> bool:
        """True when symbolic bounds alone prove disjunct ``k`` impossible on the box."""
        rows, rhs = self.targets[k]
        n_x = self.chain.input_size
        lo, hi = lower[None, :n_x], upper[None, :n_x]
        layer_bounds = self.layer_bounds(lower, upper)
        if layer_bounds.infeasible[0]:
            return True
        in_rows = rows[:, :n_x]
        row_bounds = row_lower_bounds(self.chain, lo, hi, layer_bounds, rows[:, self.query.num_inputs :], in_rows, rhs)
        low = row_bounds.lower[0]
        if self.query.num_auxiliary:
            aux = rows[:, n_x : self.query.num_inputs]
            low = low + np.minimum(aux * lower[n_x:], aux * upper[n_x:]).sum(axis=1)
        return bool(np.any(low > self.options.tolerances.prune_margin))

    def leaf(
        self, engine: ReluplexEngine, k: int, lower: np.ndarray, upper: np.ndarray, phases: np.ndarray | None = None
    ) -> LeafOutcome:
        outcome = engine.solve(lower, upper, self.row_index[k], self.deadline, self.options.node_budget, phases)
        if outcome.status == SAT:
            if self.try_confirm(outcome.inputs, k):
                return outcome
            return LeafOutcome(UNKNOWN, reason="a Reluplex solution was not confirmed by onnxruntime")
        return outcome

    def settle(self, members: list[int], outcome: SearchOutcome) -> Result | None:
        """One search's outcome for the disjuncts ``members``: the final result on ``sat`` (confirmed here,
        or in a worker process and again here) or ``timeout``; None to go on."""
        if outcome.status == SAT and (self.found is not None or self.try_confirm(outcome.inputs, outcome.disjunct)):
            return self.result(SAT)
        if outcome.status == SAT:
            outcome = SearchOutcome(UNKNOWN, reason="a worker's counterexample was not confirmed by onnxruntime")
        for k in members:
            self.verdicts[k] = outcome.status
        if outcome.status == TIMEOUT:
            return self.result(TIMEOUT, outcome.reason)
        if outcome.status == UNKNOWN:
            self.reasons.append(outcome.reason)
        return None

    def run(self) -> Result:
        parallel = self.options.parallel
        if parallel.backend == "ray" and parallel.jobs > 1 and not self.options.proof:
            from reluverify.solver.distributed import prepare

            prepare(parallel.jobs, parallel.address, parallel.blas_threads, (__name__,))  # workers start while this falsifies
        if self.projection is not None and self.projection.empty:
            self.verdicts = [UNSAT] * len(self.query.disjuncts)
            return self.result(UNSAT, "the input rows over the constant inputs have no solution")
        live = []
        for k, d in enumerate(self.query.disjuncts):
            if d.is_empty_box():
                self.verdicts[k] = UNSAT
                if self.options.proof:  # the checker sees the empty box itself
                    self.trees[k].add_bound_leaves([0], np.zeros((1, d.constraints.num_rows)), None)
            else:
                live.append(k)
        if not live:
            return self.result(UNSAT, "every disjunct has an empty input region")
        # cheap bounds first: a disjunct they refute needs neither falsification nor search (a proof's
        # searches refute it at their root, with evidence)
        refuted = [k for k in live if self.refuted_by_bounds(k, self.query.disjuncts[k].lower, self.query.disjuncts[k].upper)]
        if not self.options.proof:
            for k in refuted:
                self.verdicts[k] = UNSAT
                live.remove(k)
            if not live:
                return self.result(UNSAT)
        # (with a proof, disjuncts the cheap bounds refute stay for the search, which records the
        # evidence; only the attack is skipped when no disjunct is left to attack)
        if len(refuted) < len(live) and self.falsify([k for k in live if k not in refuted]):
            return self.result(SAT)
        if self.timed_out():
            return self.result(TIMEOUT, "time budget exhausted during falsification")
        for members, outcome in choose(self).search(self, live):
            final = self.settle(members, outcome)
            if final is not None:
                return final
        if all(v == UNSAT for v in self.verdicts):
            return self.result(UNSAT)
        return self.result(UNKNOWN, "; ".join(dict.fromkeys(self.reasons)) or "undecided")


def solve(query: Query, options: SolverOptions | None = None, facts=(), progress: ProgressCallback | None = None) -> Result:
    """Decide ``query``: ``sat`` (with a confirmed counterexample), ``unsat``, ``timeout`` or ``unknown``.

    Networks made of affine maps and ReLUs go to the exact ReLU procedure above; networks
    with other activations or products (SRU, attention, ...) go to :mod:`reluverify.solver.nonlinear`, which is
    sound but may answer ``unknown``.

    ``facts`` are :class:`~reluverify.solver.facts.PhaseFacts` from earlier runs; only those
    proven on a domain containing this query's input box are used (see
    :meth:`PhaseFacts.covers`). ``Result.facts`` holds the phases fixed on this query's box.

    ``progress``, when given, is called a few times a second with a
    :class:`~reluverify.solver.progress.Progress` (it never changes the search).
    """
    options = options or SolverOptions()
    progress = progress if progress is not None else observer()
    if all(network.is_piecewise_linear for network in query.networks):
        run = lambda: Decider(query, options, facts, progress).run()  # noqa: E731
    else:
        from reluverify.solver.nonlinear import solve_nonlinear

        run = lambda: solve_nonlinear(query, options)  # noqa: E731
    if options.parallel.blas_threads is None:
        return run()
    with _blas_controller().limit(limits=options.parallel.blas_threads):
        return run()


def worker_search(strategy: str, query: Query, options: SolverOptions, members: list[int], extra: dict) -> ShareableSearch:
    """The search ``strategy`` runs on the disjuncts ``members`` of ``query``, with an empty pool: what a
    worker of :mod:`~reluverify.solver.distributed` builds from :meth:`Decider.recipe`. The decider
    projects the query as the coordinator's did, so the copy's items are the original's."""
    return REGISTRY[strategy].empty_search(Decider(query, options), members, extra)


_CONTROLLER = []


def _blas_controller():
    """One threadpoolctl controller per process: building it scans every loaded library (~80 ms)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]
