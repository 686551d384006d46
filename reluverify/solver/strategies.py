"""The search strategies of the ReLU procedure, registered in one table that :mod:`~reluverify.solver.decide`
reads.

A strategy searches the disjuncts that falsification and cheap bounds left open (``live``), and
reports as it goes: ``search(decider, live)`` yields ``(members, outcome)``, the disjuncts of the
query one search decided (query indices) and its :class:`~reluverify.solver.search.SearchOutcome`
(whose ``disjunct``, for ``sat``, is a query index too). The decider settles every outcome the same
way (:meth:`~reluverify.solver.decide.Decider.settle`) and stops at the first ``sat`` or ``timeout``.
A strategy uses only what :class:`Context` names: the query's targets, the boxes the disjuncts share,
the bounds on a box, the Reluplex engine of a box, confirmation by onnxruntime, proof trees.

* ``input-split`` -- branch and bound on the input box, Reluplex on residue boxes
  (:mod:`~reluverify.solver.input_split`);
* ``relu-bab`` -- branch and bound over ReLU phases with optimised bounds, Reluplex on its leaves
  (:mod:`~reluverify.solver.relu_bab`);
* ``relu-split`` -- the Reluplex procedure on each whole disjunct (:mod:`~reluverify.solver.reluplex`).

:func:`choose` picks one for ``auto`` and falls back where a strategy cannot serve a query. The
engines are imported when a strategy runs, so a process that only splits inputs does not load
branch and bound.
"""

from __future__ import annotations

import time
from typing import Iterator, Protocol

import numpy as np

from reluverify.network import ReluChain
from reluverify.query import Query
from reluverify.solver.bounds.deeppoly import LayerBounds
from reluverify.solver.options import STRATEGIES, SolverOptions
from reluverify.solver.progress import Throttle
from reluverify.solver.reluplex import LeafOutcome, ReluplexEngine
from reluverify.solver.result import SAT, TIMEOUT, Statistics
from reluverify.solver.search import Recipe, SearchOutcome, ShareableSearch

ROOT_SHARE = 0.3
"""ReLU branch and bound: the root's optimised intermediate bounds may take this share of the time
left (large CNNs); branching, and its attacks, the rest."""
MAX_TABLEAU_ENTRIES = 100_000_000
"""A branch-and-bound leaf goes to Reluplex on the network reduced to its free ReLUs
(:mod:`~reluverify.solver.reduction`); a leaf whose dense tableau would still hold more entries
than this (about 0.8 GB) is left to the search to split further rather than exhaust memory."""

Reports = Iterator[tuple[list[int], SearchOutcome]]


class Context(Protocol):
    """What a strategy may use of the query being decided (:class:`~reluverify.solver.decide.Decider`
    provides it): the query as searched (constant inputs folded), its chain, options, statistics and
    deadline; per disjunct its rows and right-hand sides, input rows included (``targets``), and all
    rows stacked (``all_rows``, ``all_rhs``); bounds known from other runs; proof trees by disjunct."""

    query: Query
    chain: ReluChain
    options: SolverOptions
    stats: Statistics
    deadline: float | None
    progress: Throttle
    targets: list[tuple[np.ndarray, np.ndarray]]
    all_rows: np.ndarray
    all_rhs: np.ndarray
    known: tuple[list, list] | None
    trees: dict

    def box_groups(self, members: list[int]) -> list[list[int]]:
        """Disjuncts grouped by identical input box."""

    def layer_bounds(self, lower: np.ndarray, upper: np.ndarray) -> LayerBounds:
        """Layer bounds of the chain on one box (cached)."""

    def engine(self, lower: np.ndarray, upper: np.ndarray) -> ReluplexEngine:
        """The Reluplex engine of one input box (cached)."""

    def leaf(self, engine: ReluplexEngine, k: int, lower: np.ndarray, upper: np.ndarray,
             phases: np.ndarray | None = None) -> LeafOutcome:
        """Reluplex on disjunct ``k`` in a box, its solution confirmed by onnxruntime."""

    def try_confirm(self, inputs: np.ndarray, disjunct: int) -> bool:
        """Confirm a candidate of disjunct ``disjunct`` with onnxruntime (and keep it)."""

    def timed_out(self) -> bool:
        """The deadline has passed."""

    def recipe(self, strategy: str, members: list[int], extra: dict) -> Recipe:
        """How a worker anywhere builds the search ``strategy`` runs on ``members`` (its
        :meth:`Strategy.empty_search` with ``extra``), as plain data."""


class Strategy(Protocol):
    name: str

    def search(self, decider: Context, live: list[int]) -> Reports:
        """Search the disjuncts ``live``, yielding each search's members and outcome."""


class SharingStrategy(Strategy, Protocol):
    """A strategy whose searches can spread over the workers of a Ray cluster."""

    def empty_search(self, decider: Context, members: list[int], extra: dict) -> ShareableSearch:
        """The search of ``members`` with an empty pool (what :meth:`Context.recipe` builds)."""


def _leaf_outcome(outcome: LeafOutcome, disjunct: int) -> SearchOutcome:
    return SearchOutcome(outcome.status, outcome.inputs, disjunct if outcome.status == SAT else None, outcome.reason)


class InputSplitting:
    """One input-splitting search per input box, for all the disjuncts on it."""

    name = "input-split"

    def search(self, decider: Context, live: list[int]) -> Reports:
        from reluverify.solver.input_split import input_split_search

        query, options = decider.query, decider.options
        for members in decider.box_groups(live):
            box = query.disjuncts[members[0]]
            targets, confirm, leaf_solver, input_rows = self.parts(decider, members)
            outcome = input_split_search(
                decider.chain,
                targets,
                box.lower,
                box.upper,
                options,
                decider.stats,
                decider.deadline,
                confirm=confirm,
                leaf_solver=leaf_solver,
                known=decider.known,
                progress=decider.progress,
                trees=[decider.trees[k] for k in members] if options.proof else None,
                input_rows=input_rows,
                recipe=decider.recipe(self.name, members, {"known": decider.known}),
            )
            yield members, outcome  # a sat outcome names its target's index: the query's disjunct

    def empty_search(self, decider: Context, members: list[int], extra: dict) -> ShareableSearch:
        from reluverify.solver.input_split.search import empty_search

        targets, confirm, leaf_solver, input_rows = self.parts(decider, members)
        return empty_search(decider.chain, targets, decider.options, confirm, leaf_solver, extra["known"], input_rows)

    @staticmethod
    def parts(decider: Context, members: list[int]):
        """The search's targets, its confirmation and leaves (query disjuncts for target positions),
        and the query's input rows."""
        from reluverify.solver.input_split import Target

        box = decider.query.disjuncts[members[0]]
        input_rows = decider.query.input_constraints
        targets = [Target(k, *decider.targets[k]) for k in members]

        def leaf_solver(position: int, lo: np.ndarray, hi: np.ndarray):
            return decider.leaf(decider.engine(box.lower, box.upper), members[position], lo, hi)

        def confirm(x: np.ndarray, position: int) -> bool:
            return decider.try_confirm(x, members[position])

        return targets, confirm, leaf_solver, (input_rows.matrix, input_rows.rhs) if input_rows.num_rows else None


class ReluBranchAndBound:
    """ReLU-phase branch and bound, one search per input box for all its disjuncts (one per disjunct
    when a proof is recorded: each has its own proof tree), the likeliest violations (lowest root
    bound) first."""

    name = "relu-bab"

    def search(self, decider: Context, live: list[int]) -> Reports:
        from reluverify.solver.bounds import alpha_crown
        from reluverify.solver.relu_bab import Disjunction, bound_root, relu_bab_search, root_bounds, searches_jointly

        query, options = decider.query, decider.options
        input_rows = query.input_constraints
        groups = decider.box_groups(live) if searches_jointly(decider.chain, options) else [[k] for k in live]
        roots: dict[tuple[bytes, bytes], object] = {}
        starts = []
        for members in groups:
            d = query.disjuncts[members[0]]
            region = alpha_crown.Region(
                d.lower[None, :], d.upper[None, :],
                input_rows.matrix if input_rows.num_rows else None, input_rows.rhs if input_rows.num_rows else None,
            )
            key = (d.lower.tobytes(), d.upper.tobytes())
            if key not in roots:
                first = decider.layer_bounds(d.lower, d.upper)
                until = None if decider.deadline is None else time.monotonic() + ROOT_SHARE * (
                    decider.deadline - time.monotonic()
                )
                roots[key] = root_bounds(decider.chain, region, options, first, until, record=[] if options.proof else None)
            targets = [Disjunction(*decider.targets[k]) for k in members]
            starts.append((members, region, roots[key], targets,
                           bound_root(decider.chain, targets, region, roots[key], options)))
            if decider.timed_out():
                yield [], SearchOutcome(TIMEOUT, reason="time budget exhausted bounding the disjuncts")
                return
        for members, region, root, targets, start in sorted(starts, key=lambda entry: entry[4].value):
            confirm, leaf_solver = self.callbacks(decider, members)
            outcome = relu_bab_search(
                decider.chain,
                targets,
                region,
                root,
                options,
                decider.stats,
                decider.deadline,
                confirm=confirm,
                leaf_solver=leaf_solver,
                start=start,
                progress=decider.progress,
                tree=decider.trees.get(members[0]) if len(members) == 1 else None,
                recipe=decider.recipe(self.name, members, {"region": region}),
            )
            if outcome.status == SAT:  # the search's target position -> the query's disjunct
                outcome.disjunct = members[outcome.disjunct]
            yield members, outcome

    def empty_search(self, decider: Context, members: list[int], extra: dict) -> ShareableSearch:
        from reluverify.solver.relu_bab import Disjunction
        from reluverify.solver.relu_bab.search import empty_search

        targets = [Disjunction(*decider.targets[k]) for k in members]
        return empty_search(decider.chain, targets, extra["region"], decider.options, *self.callbacks(decider, members))

    def callbacks(self, decider: Context, members: list[int]):
        """The search's confirmation and leaf engine (query disjuncts for target positions)."""
        box = decider.query.disjuncts[members[0]]

        def confirm(v: np.ndarray, t: int) -> bool:
            return decider.try_confirm(v, members[t])

        def leaf_solver(t: int, lo: np.ndarray, hi: np.ndarray, phases: np.ndarray) -> LeafOutcome | None:
            return self.reduced_leaf(decider, members[t], box, lo, hi, phases)

        return confirm, leaf_solver

    @staticmethod
    def reduced_leaf(decider: Context, k: int, disjunct, lower: np.ndarray, upper: np.ndarray,
                     phases: np.ndarray) -> LeafOutcome | None:
        """A leaf decided by Reluplex on the network reduced to the leaf's free ReLUs
        (:mod:`~reluverify.solver.reduction`): its tableau never holds the stable neurons. None when
        even that tableau would exceed :data:`MAX_TABLEAU_ENTRIES`."""
        from reluverify.solver.reduction import reduced_chain, reduced_relus, tableau_entries

        chain = decider.chain
        n_x = chain.input_size
        if reduced_relus(chain, phases) < chain.num_relus:  # some ReLUs fixed: the reduced network
            chain = reduced_chain(chain, lower[:n_x], upper[:n_x], phases)
        if tableau_entries(chain) > MAX_TABLEAU_ENTRIES:
            return None  # too large for an exact leaf: the search splits it further
        if chain is decider.chain:
            return decider.leaf(decider.engine(disjunct.lower, disjunct.upper), k, lower, upper, phases)
        engine = ReluplexEngine(chain, decider.query.num_inputs, decider.all_rows, decider.all_rhs, disjunct.lower,
                                disjunct.upper, decider.options, decider.stats)
        return decider.leaf(engine, k, lower, upper)


class ReluSplitting:
    """The Reluplex procedure on each whole disjunct."""

    name = "relu-split"

    def search(self, decider: Context, live: list[int]) -> Reports:
        for k in live:
            d = decider.query.disjuncts[k]
            yield [k], _leaf_outcome(decider.leaf(decider.engine(d.lower, d.upper), k, d.lower, d.upper), k)


REGISTRY: dict[str, Strategy] = {s.name: s for s in (InputSplitting(), ReluBranchAndBound(), ReluSplitting())}
"""Every strategy by name; :data:`~reluverify.solver.options.STRATEGIES` names the same ones and ``auto``."""

if set(REGISTRY) | {"auto"} != set(STRATEGIES):
    raise ImportError("solver.options.STRATEGIES and solver.strategies.REGISTRY name different strategies")


def choose(decider: Context) -> Strategy:
    """The strategy of ``options.strategy``, or for ``auto``: input splitting pays when inputs are few and
    ReLUs many (ACAS Xu: 5 and 300); a network with few ReLUs has at most 2^R phase combinations, which
    Reluplex settles quickly even when huge weights make box bounds useless; branch and bound over ReLU
    phases otherwise. Input splitting cannot express auxiliary variables' constraints (Reluplex takes
    those queries), and Reluplex's search leaves no certificate (branch and bound takes proofs)."""
    options: SolverOptions = decider.options
    chain, auxiliary = decider.chain, decider.query.num_auxiliary
    strategy = options.strategy
    if strategy == "auto":
        few_inputs = chain.input_size <= options.input_split.max_inputs
        many_relus = chain.num_relus >= options.input_split.min_relus
        if not many_relus:
            strategy = "relu-split"
        elif few_inputs and auxiliary == 0:
            strategy = "input-split"
        else:
            strategy = "relu-bab"
    if strategy == "input-split" and auxiliary:
        strategy = "relu-split"
    if strategy == "relu-split" and options.proof:
        strategy = "relu-bab"
    return REGISTRY[strategy]
