"""The input-splitting search: a stack of open boxes, taken in batches and each batch put through the
phases of :meth:`BoxSearch.step` (bound, refute, optimise, candidates and attacks, residues, split).

Invariant: the boxes on the stack, each with its alive targets, cover every counterexample not yet
ruled out; ``proven`` is the share of the search box (a box ``d`` splits deep weighs ``2 ** -d``) on
which every target has been refuted or decided.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from reluverify.network import ReluChain
from reluverify.solver.bounds.deeppoly import deeppoly_bounds
from reluverify.solver.bounds.rows import conjunction_lower_bound, dual_lower_bound, gradient_magnitude, row_lower_bounds
from reluverify.solver.certificate import ProofTree
from reluverify.solver.checkpoint import OPEN, UNSAT, SearchCheckpoint
from reluverify.solver.input_split.boxes import Bounded, Boxes, BoxStack, tighten_boxes
from reluverify.solver.input_split.candidates import attack_open_boxes, try_candidates, vertex_points
from reluverify.solver.input_split.problem import Problem, Target
from reluverify.solver.input_split.proof import NoProof, ProofRecorder, bound_with_evidence, refute_residues
from reluverify.solver.options import SolverOptions
from reluverify.solver.progress import Throttle
from reluverify.solver.reluplex import LeafOutcome
from reluverify.solver.result import Statistics
from reluverify.solver.search import Recipe, SearchOutcome, exhausted
from reluverify.solver.sharing import share

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
ATTACK_SHARE = 0.2
"""The attacks in open boxes take at most this share of the search's time."""


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
    trees: list[ProofTree] | None = None,
    recipe: Recipe | None = None,
) -> SearchOutcome:
    """Search ``lower <= x <= upper`` for a point satisfying some target (see the package docstring).

    ``confirm(x, target_position)`` confirms a candidate with onnxruntime;
    ``leaf_solver(target_position, lo, hi)`` runs Reluplex on a residue box;
    ``known`` holds pre-activation bounds valid on the whole search box (reused facts);
    ``input_rows`` = (A, b) are constraints ``A x <= b`` shared by every target, used to
    shrink each box before it is bounded (e.g. the pair rows of a two-copy query);
    ``progress`` receives where the search stands (the input volume proven: a box split ``d``
    times holds ``2 ** -d`` of it). With ``options.parallel.jobs > 1`` the boxes are shared among worker
    processes, or with the ``ray`` backend among the workers of a Ray cluster, which build their copies
    from ``recipe`` (:func:`~reluverify.solver.sharing.share`). ``trees`` (one
    :class:`~reluverify.solver.certificate.ProofTree` per target), when given, record the proof:
    then a box is refuted only by evidence the certificate checker recomputes
    (:mod:`~reluverify.solver.input_split.proof`), and the boxes are neither shrunk by the input rows
    nor shared. With ``options.checkpoint.path``, the search resumes from its entry in that checkpoint
    (:mod:`~reluverify.solver.checkpoint`) and saves its open boxes there as it goes.
    """
    centre = 0.5 * (lower + upper)
    for position, target in enumerate(targets):
        if target.rhs.size == 0 and confirm(centre, position):
            # a disjunct with no rows holds everywhere in its box
            return SearchOutcome("sat", centre, target.index)
    problem = Problem(chain, targets, options, input_rows)
    checkpoint = SearchCheckpoint.of(options, "input-split", chain, targets,
                                     [lower, upper, *(input_rows if input_rows is not None else (None, None))],
                                     "boxes", "the input box")
    search = BoxSearch(problem, statistics, deadline, confirm, leaf_solver, known, progress, trees, checkpoint)
    entry, saved = search.saved_entry()
    if entry is not None and entry.status == UNSAT:
        return SearchOutcome("unsat")
    if entry is None:
        search.add(search.fresh(lower[None, :], upper[None, :]))
    else:  # the saved boxes and refuted share instead of the whole box (a consistent pair)
        search.add(saved)
        search.proven = entry.proven
        search.undecided.extend(entry.undecided)
        entry.arrays, saved = {}, None  # the stack holds them now (not twice in memory)
    if options.parallel.jobs > 1 and trees is None:  # a proof's trees live in this process
        outcome = share(search, options, recipe, deadline, search.progress, "input-split")
    else:
        outcome = search.work(float("inf"))
        if outcome is not None and outcome.status != "sat":
            search.save_now()  # a timeout or a spent budget: what is left, for the next run
        outcome = outcome or search.finish()
    if outcome.status == "unsat" and checkpoint is not None:
        checkpoint.finished(search.stats.boxes)
    search.report(force=True)
    return outcome


def empty_search(chain: ReluChain, targets: list[Target], options: SolverOptions,
                 confirm: Callable[[np.ndarray, int], bool], leaf_solver: Callable[[int, np.ndarray, np.ndarray], LeafOutcome],
                 known: tuple[list, list] | None = None,
                 input_rows: tuple[np.ndarray, np.ndarray] | None = None) -> "BoxSearch":
    """The search of :func:`input_split_search` with no boxes and no deadline, for a worker that takes
    the boxes of another copy (:mod:`~reluverify.solver.distributed`)."""
    return BoxSearch(Problem(chain, targets, options, input_rows), Statistics(), None, confirm, leaf_solver, known, None)


class Stop(Exception):
    """Ends the search with ``outcome`` (a confirmed counterexample, a timeout, a budget spent)."""

    def __init__(self, outcome: SearchOutcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


class BoxSearch:
    """The state of one input-splitting search: the stack of open boxes, each with its alive targets
    (a :class:`~reluverify.solver.search.ShareableSearch`)."""

    def __init__(self, problem: Problem, statistics: Statistics, deadline, confirm, leaf_solver, known,
                 progress: Throttle | None, trees: list[ProofTree] | None = None,
                 checkpoint: SearchCheckpoint | None = None) -> None:
        self.problem, self.options, self.stats = problem, problem.options, statistics
        self.deadline, self.confirm, self.leaf_solver = deadline, confirm, leaf_solver
        self.known_lower, self.known_upper = known if known is not None else (None, None)
        self.progress = progress or Throttle(None)
        self.proof = trees is not None
        self.recorder = ProofRecorder(trees) if self.proof else NoProof()
        chain = problem.chain
        # a box inherits its parent's pre-activation bounds (valid on it, and often tighter than its own
        # after a few splits), except in a proof, whose checker bounds each box on its own
        self.inherit = not self.proof and chain.num_relus <= INHERIT_MAX_RELUS
        # the ascent's parameters passed from parent to child, where the bounds are (three floats a ReLU more)
        split_options = self.options.input_split
        self.warm = self.inherit and split_options.alpha_iterations > 0 and split_options.alpha_warm
        self.widths = (chain.num_relus if self.inherit else 0, problem.layout.size if self.warm else 0)
        self.stack = BoxStack(self.fresh(np.zeros((0, problem.n)), np.zeros((0, problem.n))))
        self.undecided: list[str] = []
        self.proven = 0.0
        self.processed = 0
        self.seconds_per_box = 0.0
        self.rng = np.random.default_rng(self.options.attack.seed)
        self.started, self.attack_seconds = time.monotonic(), 0.0
        # the weighted conjunctions and the in-box attack pay on networks of many ReLUs (ACAS Xu: 300); on a
        # few dozen, boxes turn linear within a few splits and the per-batch ascent costs more than it saves
        self.large = chain.num_relus >= split_options.min_relus
        self.checkpoint = checkpoint
        """The entry of this search in the checkpoint file, if one is kept (solver/checkpoint.py)."""

    def fresh(self, lower: np.ndarray, upper: np.ndarray) -> Boxes:
        """Boxes of this search that nothing is known on yet."""
        return Boxes.fresh(lower, upper, len(self.problem.targets), *self.widths)

    def report(self, force: bool = False, best=None) -> None:
        if self.progress.due() or (force and self.progress):
            self.progress.report("input-split", self.stats.boxes, self.stack.size, self.proven, best, force=force)

    # ------------------------------------------------ sharing (search.ShareableSearch)
    @property
    def statistics(self) -> Statistics:
        return self.stats

    def open_count(self) -> int:
        return self.stack.size

    def add(self, payload: Boxes) -> None:
        self.stack.push(payload)

    def take(self, count: int) -> Boxes:
        """The top ``count`` boxes of the stack (the ones :meth:`step` would take next)."""
        return self.stack.pop(count)

    def split_off(self, parts: int) -> list[Boxes]:
        """The open boxes cut into ``parts`` payloads, dealt in turn so each gets a similar mix."""
        boxes = self.stack.pop(self.stack.size)
        return [boxes.take(slice(k, None, parts)) for k in range(parts)]

    def reset_statistics(self) -> None:
        self.stats = Statistics()
        self.proven = 0.0
        self.undecided = []
        self.progress = Throttle(None)

    def finish(self) -> SearchOutcome:
        return exhausted(self.proven, self.undecided)

    # ------------------------------------------------ checkpoints (solver/checkpoint.py)
    def snapshot(self) -> Boxes:
        """The open boxes (views: the stack is unchanged), as one payload."""
        return self.stack.held.take(slice(0, self.stack.size))

    def save(self, payloads: list[Boxes], proven: float, undecided: list[str], done: int) -> None:
        """Save the open boxes ``payloads`` and the refuted share ``proven``, taken at one moment, to the
        checkpoint."""
        parts = [p for p in payloads if len(p)] or payloads[:1]
        boxes = parts[0] if len(parts) == 1 else Boxes.concatenate(parts)
        self.checkpoint.save(boxes.to_arrays(), proven, undecided, done)

    def save_now(self) -> None:
        """Save this process's stack and refuted share (between batches: a consistent pair)."""
        if self.checkpoint is not None:
            self.save([self.snapshot()], self.proven, self.undecided, self.stats.boxes)

    def saved_entry(self):
        """This search's entry in the checkpoint (None without one), announced, and its boxes (for an open one).
        The bounds and parameters a box keeps for its children are hints that depend on the options: saved
        ones of another width are dropped (the box is bounded afresh). An entry whose boxes are not laid out
        as this search's otherwise is not used."""
        if self.checkpoint is None:
            return None, None
        entry, boxes = self.checkpoint.load(), None
        if entry is not None and entry.status == OPEN:
            template = self.fresh(np.zeros((1, self.problem.n)), np.zeros((1, self.problem.n)))
            boxes = Boxes.from_arrays(entry.arrays, template) if entry.arrays else template.take(slice(0, 0))
            if boxes is None:
                self.checkpoint.refuse(entry, "its boxes are not laid out as this search's")
                return None, None
        if entry is not None:
            self.checkpoint.announce(entry)
        return entry, boxes

    # ------------------------------------------------------------------ the search
    def work(self, seconds: float) -> SearchOutcome | None:
        """Bound and split boxes for about ``seconds`` (or until none is left); a final outcome, or None."""
        until = time.monotonic() + seconds
        try:
            while self.stack.size and time.monotonic() < until:
                self.check_deadline()
                if self.options.node_budget is not None and self.processed > self.options.node_budget:
                    raise Stop(SearchOutcome("unknown", reason="node budget exhausted in input splitting"))
                # about a second of work per batch, so the deadline is never overshot by much
                batch_size = int(np.clip(1.0 / max(self.seconds_per_box, 1e-6), 16, BATCH_SIZE))
                started = time.monotonic()
                batch = self.round(batch_size)
                self.seconds_per_box = 0.5 * self.seconds_per_box + 0.5 * (time.monotonic() - started) / batch
                if self.checkpoint is not None and self.checkpoint.due():
                    self.save_now()
        except Stop as stop:
            return stop.outcome
        return None

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Stop(SearchOutcome("timeout", reason="time budget exhausted in input splitting"))

    def round(self, batch_size: int) -> int:
        """:meth:`step` on the top ``batch_size`` boxes of the stack; the boxes taken. A step stopped before
        its end (a timeout) is undone: its boxes go back on the stack as they were taken and ``proven`` and
        ``undecided`` are as before it (no child is pushed before the step's last phase), so the stack and
        the refuted share stay a consistent pair, which a checkpoint can save."""
        boxes = self.stack.pop(batch_size)
        taken = boxes.copy()
        proven, undecided = self.proven, len(self.undecided)
        try:
            return self.step(boxes)
        except Stop as stop:
            if stop.outcome.status != "sat":
                self.proven = proven
                del self.undecided[undecided:]
                self.stack.push(taken)
            raise

    def step(self, boxes: Boxes) -> int:
        """One batch of boxes taken from the stack: bound them and drop the targets refuted, look for
        counterexamples, settle the residues, split the rest. Returns the boxes taken."""
        self.processed += len(boxes)
        self.stats.boxes += len(boxes)
        if self.proof:  # a proof refutes only with evidence its checker recomputes
            open_boxes = self.drop_refuted(*bound_with_evidence(self.problem, boxes, self.recorder))
        else:
            bounded, const = self.bound(boxes)
            open_boxes = self.drop_refuted(bounded, self.refuted(bounded, const))
            if open_boxes is not None and self.options.input_split.alpha_iterations > 0:
                open_boxes = self.optimise(open_boxes)
        if open_boxes is None:
            return len(boxes)
        tight = self.problem.tightest_rows(open_boxes.lower)
        self.look_for_counterexamples(open_boxes, tight)
        split = np.flatnonzero(self.settle_residues(open_boxes))
        if split.size:
            self.split(open_boxes.take(split), tight[split])
        return len(boxes)

    # phases of a step, in order
    def bound(self, boxes: Boxes) -> tuple[Bounded, np.ndarray]:
        """DeepPoly bounds on each box (first shrunk by the input rows; from the bounds known on it) and each
        row's linear lower bound over it: the bounded boxes, and the lower bounds' constants (B, R)."""
        problem, options, n = self.problem, self.options, self.problem.n
        if problem.input_rows is not None:
            boxes.lower, boxes.upper, empty = tighten_boxes(boxes.lower, boxes.upper, *problem.input_rows)
            boxes.alive &= ~empty[:, None]
        shallow = boxes.depth < options.input_split.inherit_depth
        boxes.pre_lower[shallow], boxes.pre_upper[shallow] = -np.inf, np.inf
        lo, hi = boxes.lower, boxes.upper
        layer_bounds = deeppoly_bounds(problem.chain, lo, hi, *self.known_on_boxes(boxes))
        rows, rhs = problem.rows, problem.rhs
        row_bounds = row_lower_bounds(problem.chain, lo, hi, layer_bounds, rows[:, n:], rows[:, :n], rhs)
        if problem.input_rows is not None:
            # the shared input rows also bind the rows' linear lower bounds (Lagrangian dual)
            row_bounds.lower = np.maximum(
                row_bounds.lower, dual_lower_bound(row_bounds.coef, row_bounds.const, lo, hi, *problem.input_rows)
            )
        return Bounded(boxes, layer_bounds, row_bounds.coef, row_bounds.lower), row_bounds.const

    def refuted(self, bounded: Bounded, const: np.ndarray) -> np.ndarray:
        """The (B, D) mask of the targets the bounds refute on each box: by one of their rows, by their rows
        jointly, by the known bounds leaving the box empty; for a conjunction on a large network, by its
        rows weighted before the back-substitution (weights from a short ascent)."""
        problem, margin, boxes = self.problem, self.options.tolerances.prune_margin, bounded.boxes
        owner_matrix, split_options = problem.owner_matrix, self.options.input_split
        refuted = bounded.lower > margin  # (B, R)
        dead = (refuted[:, None, :] & owner_matrix[None, :, :]).any(axis=2)  # (B, D)
        if problem.conjunctions:  # rows of one disjunct that are jointly impossible, though none alone is
            dead |= conjunction_lower_bound(bounded.coef, const, boxes.lower, boxes.upper, owner_matrix) > margin
        dead |= bounded.layer.infeasible[:, None]  # no input of the box meets the known bounds
        if problem.conjunctions and self.large:
            # (boxes that get optimised slopes in the next phase have their weights ascended there)
            weights_only = (boxes.depth < split_options.alpha_depth) | (split_options.alpha_iterations == 0)
            left = boxes.alive & ~dead & weights_only[:, None]
            dead |= problem.optimised_refutations(boxes.lower, boxes.upper, left, bounded.layer, slopes=False)[0]
        return dead

    def drop_refuted(self, bounded: Bounded, dead: np.ndarray, report: bool = True) -> Bounded | None:
        """The boxes on which some target is still alive once the ``dead`` (B, D) ones are dropped; the
        boxes left with none count as proven. None when no box is left."""
        boxes = bounded.boxes
        boxes.alive &= ~dead
        keep = boxes.alive.any(axis=1)
        self.proven += float(np.sum(0.5 ** boxes.depth[~keep]))
        if report and self.progress.due():
            self.report(best=float(bounded.lower[keep].max(axis=1).min()) if np.any(keep) else None)
        if not np.any(keep):
            return None
        return bounded.take(np.flatnonzero(keep))

    def optimise(self, bounded: Bounded) -> Bounded | None:
        """Boxes split at least ``alpha_depth`` times that the plain bounds leave open: optimised slopes
        and multipliers per alive target, each box's ascent started from its parent's parameters when
        they are kept (and its own written back for its children)."""
        boxes = bounded.boxes
        deep = (boxes.depth >= self.options.input_split.alpha_depth)[:, None]
        dead = self.problem.optimised_refutations(boxes.lower, boxes.upper, boxes.alive & deep, bounded.layer,
                                                  warm=(boxes.params, boxes.warm) if self.warm else None)[0]
        return self.drop_refuted(bounded, dead, report=False)

    def look_for_counterexamples(self, bounded: Bounded, tight: np.ndarray) -> None:
        """Candidate points in the boxes, then (on large networks, within the attacks' share of the time)
        a gradient attack in the most promising ones; a confirmed counterexample stops the search."""
        problem, boxes = self.problem, bounded.boxes
        found = try_candidates(problem, bounded, tight, self.stats, self.confirm)
        if found is None and self.options.falsify and self.large and self.attack_due():
            began = time.monotonic()
            vertices = vertex_points(bounded.coef, tight, boxes.lower, boxes.upper)
            found = attack_open_boxes(problem, bounded, vertices, self.rng, self.stats, self.confirm)
            self.attack_seconds += time.monotonic() - began
        if found is not None:
            x, position = found
            raise Stop(SearchOutcome("sat", x, problem.targets[position].index))

    def settle_residues(self, bounded: Bounded) -> np.ndarray:
        """Decide the residues: boxes with at most ``LEAF_UNSTABLE_RELUS`` unstable ReLUs or ``LEAF_DEPTH``
        splits deep. Returns the mask of the boxes to split (those that are no residue)."""
        boxes = bounded.boxes
        unstable = bounded.layer.unstable_counts()
        residue = (unstable <= LEAF_UNSTABLE_RELUS) | (boxes.depth >= LEAF_DEPTH)
        if self.proof:
            # a proof takes no Reluplex verdict: the triangle LP refutes with Farkas multipliers, and a deep
            # box with unstable ReLUs that it leaves open is split on
            refuted = refute_residues(self.problem, bounded, residue, self.recorder, self.stats, self.deadline,
                                      self.linear_box_left_open)
            linear = residue & (unstable == 0)  # not split: its share is proven here, if the LP refuted it
            self.proven += float(np.sum(0.5 ** boxes.depth[linear & refuted]))
            return ~linear
        for b in np.flatnonzero(residue):
            self.solve_leaf(boxes, b)
        return ~residue

    def split(self, bounded: Bounded, tight: np.ndarray) -> None:
        """Halve each box along the input with the largest influence (gradient magnitude times width) on
        the tightest rows of its alive targets, and push the halves."""
        problem, stats, boxes, n = self.problem, self.stats, bounded.boxes, self.problem.n
        width = boxes.upper - boxes.lower
        tight_rows = problem.rows[tight]  # (B, D, n + m); the gradient is (B, D, n)
        gradient = gradient_magnitude(problem.chain, bounded.layer, tight_rows[:, :, n:], tight_rows[:, :, :n])
        smear = (gradient * boxes.alive[:, :, None]).sum(axis=1) * width
        smear = np.where(width > 0, smear + 1e-12 * width, -1.0)
        dim = smear.argmax(axis=1)
        middle = boxes.middle(dim)
        stats.input_splits += len(boxes)
        stats.splits += len(boxes)
        stats.max_depth = max(stats.max_depth, int(boxes.depth.max()) + 1)
        lower_node, upper_node = self.recorder.split(boxes.node, boxes.alive, dim, middle)
        if self.inherit:  # the children start from the bounds that hold on their parent
            boxes = boxes.with_pre_bounds(bounded.layer)
        self.stack.push(boxes.children(dim, middle, lower_node, upper_node))

    # ------------------------------------------------------------------ helpers of the phases
    def known_on_boxes(self, boxes: Boxes):
        """Per layer, the bounds known on each box of a batch: the search box's (``known``) intersected with
        those inherited from the box's parent; (None, None) when neither is kept."""
        if not self.inherit:
            return self.known_lower, self.known_upper
        cuts = np.cumsum(self.problem.layer_sizes)[:-1]
        lower = np.split(boxes.pre_lower, cuts, axis=1)
        upper = np.split(boxes.pre_upper, cuts, axis=1)
        if self.known_lower is not None:
            lower = [a if k is None else np.maximum(a, k) for a, k in zip(lower, self.known_lower)]
        if self.known_upper is not None:
            upper = [a if k is None else np.minimum(a, k) for a, k in zip(upper, self.known_upper)]
        return lower, upper

    def attack_due(self) -> bool:
        """The attacks in open boxes take at most ``ATTACK_SHARE`` of the search's time, from the start (the
        first attack follows the first batch)."""
        return self.attack_seconds <= ATTACK_SHARE * (time.monotonic() - self.started)

    def solve_leaf(self, boxes: Boxes, b: int) -> None:
        """Reluplex on residue box ``b`` for each alive target; the box counts as proven when every one
        is ``unsat``."""
        self.check_deadline()
        self.stats.leaves += 1
        settled = True
        for position in np.flatnonzero(boxes.alive[b]):
            outcome = self.leaf_solver(int(position), boxes.lower[b], boxes.upper[b])
            if outcome.status == "sat":
                raise Stop(SearchOutcome("sat", outcome.inputs, self.problem.targets[position].index))
            if outcome.status == "timeout":
                raise Stop(SearchOutcome("timeout", reason=outcome.reason))
            if outcome.status != "unsat":
                self.undecided.append(outcome.reason or outcome.status)
                settled = False
        self.proven += 0.5 ** float(boxes.depth[b]) if settled else 0.0

    def linear_box_left_open(self, position: int, inputs: np.ndarray | None) -> None:
        """A proof's residue box that is linear and that the LP does not refute for target ``position``: its
        point confirmed is a counterexample; otherwise the box is left undecided (no certificate for it)."""
        if inputs is not None and self.confirm(inputs, position):
            raise Stop(SearchOutcome("sat", inputs, self.problem.targets[position].index))
        self.undecided.append("a linear box the LP did not refute (no certificate for it)")
