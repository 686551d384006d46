"""Solver options: one frozen value passed down, never a global.

:class:`SolverOptions` holds what applies to a whole query (strategy, time, node budget, proof,
falsification) and one frozen section per concern: :class:`Tolerances`, :class:`ReluplexOptions`,
:class:`InputSplitOptions`, :class:`BranchAndBoundOptions`, :class:`AttackOptions`,
:class:`ParallelOptions` and :class:`CheckpointOptions`. A section holds the settings a user, a test or a benchmark varies; the
fixed tuning of each strategy is named constants beside its one use (``docs/tuning.md`` records the
measurements behind them).

Tolerances (all absolute, in the units of the network's values):

* ``feasibility`` -- the simplex treats a variable within this distance of its bound as inside it;
  ``unsat`` is proven up to this slack.
* ``relu`` -- a ReLU pair ``f = max(0, b)`` counts as satisfied when ``|f - max(0, b)|`` is at most
  this (times ``max(1, |b|)``).
* ``pivot`` -- tableau entries smaller than this are never pivoted on.
* ``confirm`` -- a counterexample's onnxruntime outputs (float32) may exceed a constraint's
  right-hand side by at most this much, relative to the size of the row's terms
  (``tolerance * (1 + |row| @ |[v; y]| + |rhs|)``); nothing is reported ``sat`` otherwise.
* ``prune_margin`` -- a region is discarded by bounds only when a constraint's lower bound exceeds
  its right-hand side by more than this (guards float64 round-off in the bound arithmetic).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace

STRATEGIES = ("auto", "input-split", "relu-bab", "relu-split")
"""Every value of ``SolverOptions.strategy``: the one list that validation and tools read (the
strategies themselves are registered in :mod:`reluverify.solver.strategies`)."""
BACKENDS = ("local", "ray")
"""Every value of ``ParallelOptions.backend``."""


@dataclass(frozen=True)
class Tolerances:
    """The numerical tolerances under which verdicts hold (see the module docstring)."""

    feasibility: float = 1e-9
    relu: float = 1e-9
    pivot: float = 1e-9
    confirm: float = 1e-6
    prune_margin: float = 1e-9

    def __post_init__(self) -> None:
        for name in ("feasibility", "relu", "pivot", "confirm", "prune_margin"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"tolerance {name} must be >= 0")


@dataclass(frozen=True)
class ReluplexOptions:
    """The Reluplex procedure (:mod:`~reluverify.solver.reluplex`)."""

    repair_threshold: int = 5
    """A ReLU pair broken this many times is case-split instead of repaired (Reluplex uses 5)."""
    refactor_every: int = 100
    """Every this many pivots, check the assignment against the original equations and recompute
    the tableau (refactorise) when it misses them by more than 1e-10 relative; after five times
    this many pivots the tableau is recomputed regardless."""
    bland_after: int = 50
    """Switch to Bland's anti-cycling rule after this many pivots without leaving a vertex."""
    row_tightening: bool = True
    """Derive bounds from tableau rows (Reluplex's bound tightening) at each search node."""
    network_tightening: bool = True
    """Recompute symbolic bounds over the network at each search node (fixes ReLU phases)."""

    def __post_init__(self) -> None:
        if self.repair_threshold < 0:
            raise ValueError("repair_threshold must be >= 0")


@dataclass(frozen=True)
class InputSplitOptions:
    """Branch and bound over the input box (:mod:`~reluverify.solver.input_split`)."""

    max_inputs: int = 12
    """``auto`` splits the input box when the networks have at most this many inputs ..."""
    min_relus: int = 40
    """... and at least this many ReLUs (fewer ReLUs: Reluplex alone is faster and robust). Networks
    of at least this many ReLUs also get the weighted conjunctions and the attacks in open boxes."""
    inherit_depth: int = 12
    """A box split at least this many times starts from the pre-activation bounds of its parent (valid
    on it); shallower ones are bounded on their own, so that bounds inherited from the root do not
    steer the first boxes' candidate vertices and attacks away from thin counterexamples."""
    alpha_iterations: int = 10
    """Boxes the plain bounds leave open get this many steps of optimised slopes, multipliers and row
    weights (:mod:`~reluverify.solver.bounds.alpha_crown`) before they are split (0: never) ..."""
    alpha_depth: int = 12
    """... once they have been split this many times (shallower boxes get the row weights alone)."""
    alpha_warm: bool = True
    """... and a box whose parent's ascent failed starts from its parent's parameters (kept per box and
    target where the parent's bounds are kept: three float32 per ReLU) instead of the heuristic slopes,
    so the ascent goes on down the tree rather than starting over at every box."""


JOINT_DISJUNCTS = ("auto", "joint", "separate")


@dataclass(frozen=True)
class BranchAndBoundOptions:
    """Branch and bound over ReLU phases (:mod:`~reluverify.solver.relu_bab`)."""

    joint_disjuncts: str = "auto"
    """How the disjuncts of one input box are searched: ``joint``: together, in one tree whose
    sub-problems keep a bound per disjunct, so the splits and the re-tightened bounds are made once
    instead of once per disjunct; ``separate``: one search each; ``auto``: joint where children get
    new bounds on networks with 3 or more hidden layers (there the re-tightening is most of the work),
    separate otherwise (on shallower networks the disjuncts' trees differ). Always separate when a
    proof is recorded (each disjunct has its own tree)."""
    leaf_depth: int = 96
    """A sub-problem split this many times goes to Reluplex with its phases fixed."""

    def __post_init__(self) -> None:
        if self.joint_disjuncts not in JOINT_DISJUNCTS:
            raise ValueError(f"unknown joint_disjuncts {self.joint_disjuncts!r} (auto, joint or separate)")


@dataclass(frozen=True)
class AttackOptions:
    """Falsification before the search: random samples, then a projected gradient attack."""

    samples: int = 2000
    """Random points per input box."""
    restarts: int = 8
    """Starts of the gradient attack per disjunct (the box centre and random points)."""
    steps: int = 60
    """Gradient steps per start."""
    seed: int = 0
    """Seed of every random choice of the solver (samples, starts, attacks during the search)."""


@dataclass(frozen=True)
class ParallelOptions:
    """Processes and threads."""

    jobs: int = 1
    """Worker processes for one check: the disjuncts or sub-domains of a property run in parallel, and
    a single search shares its open work (boxes or sub-problems) among them
    (:mod:`~reluverify.solver.sharing`), stopping all at the first counterexample."""
    blas_threads: int | None = 1
    """BLAS threads inside the solver; the matrices are small, so one thread per process is
    fastest, and parallelism comes from worker processes. ``None`` leaves BLAS alone."""
    backend: str = "local"
    """Where one search's shared work runs with ``jobs > 1``: ``local`` (forked worker processes on this
    machine, :mod:`~reluverify.solver.sharing`) or ``ray`` (``jobs`` workers on a Ray cluster, any number
    of nodes, :mod:`~reluverify.solver.distributed`)."""
    address: str | None = None
    """``backend="ray"``: the cluster's address (``auto``, ``HOST:PORT``; None: ``RAY_ADDRESS``, else a
    fresh local instance, :mod:`~reluverify.ray_cluster`)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r} (one of {', '.join(BACKENDS)})")


@dataclass(frozen=True)
class CheckpointOptions:
    """Keeping a long search's open work in a file (:mod:`~reluverify.solver.checkpoint`)."""

    path: str | None = None
    """The checkpoint file (one ``.npz``); ``None``: no checkpoint. A search of ReLU branch and bound or of
    input splitting whose entry the file holds starts from the open work saved there (or answers
    ``unsat`` at once when it was finished so), and saves its own as it goes; an entry of another search
    (another network, specification, box, strategy or tolerances) is never used."""
    every: float = 60.0
    """Seconds between two saves of a running search (a killed run loses at most about this much work)."""

    def __post_init__(self) -> None:
        if self.path is not None:
            object.__setattr__(self, "path", os.fspath(self.path))  # a pathlib.Path is welcome too
        if not (isinstance(self.every, (int, float)) and math.isfinite(self.every) and self.every > 0):
            raise ValueError(f"checkpoint every must be a finite number of seconds > 0, got {self.every!r}")


@dataclass(frozen=True)
class SolverOptions:
    strategy: str = "auto"
    """``auto``, ``input-split`` (box splitting + Reluplex on small residues), ``relu-bab`` (branch and
    bound over ReLU phases with optimised bounds + Reluplex on its leaves) or ``relu-split`` (Reluplex
    only). ``auto`` takes input splitting for few inputs and many ReLUs, ReLU branch and bound for many
    inputs and many ReLUs, and Reluplex alone for few ReLUs."""
    timeout: float | None = 60.0
    """Wall-clock seconds for the whole query; ``None`` means no limit."""
    node_budget: int | None = None
    """Maximum search nodes (Reluplex splits plus input-box splits); ``None`` means no limit."""
    proof: bool = False
    """Record a certificate of an ``unsat`` answer (``Result.certificate``; docs/certificates.md). The
    searches then refute only with evidence the independent checker recomputes (DeepPoly bounds, no
    symbolic forward pass, no implied phases, no Reluplex leaves, no facts from other runs) and run
    in one process."""
    falsify: bool = True
    """Look for counterexamples (sampling, gradient attacks) before and during the search."""
    fold_constant_inputs: bool = True
    """Search over the inputs that vary: constant network inputs (lower == upper) are folded into the
    first layer (:mod:`~reluverify.solver.projection`); counterexamples are confirmed on the original."""
    refine_bounds: bool = True
    """Re-bound unstable neurons by back-substitution (DeepPoly) after the symbolic forward pass."""

    tolerances: Tolerances = field(default_factory=Tolerances)
    reluplex: ReluplexOptions = field(default_factory=ReluplexOptions)
    input_split: InputSplitOptions = field(default_factory=InputSplitOptions)
    bab: BranchAndBoundOptions = field(default_factory=BranchAndBoundOptions)
    attack: AttackOptions = field(default_factory=AttackOptions)
    parallel: ParallelOptions = field(default_factory=ParallelOptions)
    checkpoint: CheckpointOptions = field(default_factory=CheckpointOptions)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}")
        sections = {"tolerances": Tolerances, "reluplex": ReluplexOptions, "input_split": InputSplitOptions,
                    "bab": BranchAndBoundOptions, "attack": AttackOptions, "parallel": ParallelOptions,
                    "checkpoint": CheckpointOptions}
        for name, kind in sections.items():
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"SolverOptions.{name} must be a {kind.__name__}")
        if self.proof and self.checkpoint.path is not None:
            raise ValueError("a checkpoint cannot be kept while a proof is recorded (proof trees are not saved in it)")

    def with_timeout(self, timeout: float | None) -> "SolverOptions":
        return replace(self, timeout=timeout)

    def with_jobs(self, jobs: int) -> "SolverOptions":
        return replace(self, parallel=replace(self.parallel, jobs=int(jobs)))

    def with_checkpoint(self, path: str | None, every: float | None = None) -> "SolverOptions":
        """These options with the checkpoint file ``path`` (saved every ``every`` seconds, else as before)."""
        every = self.checkpoint.every if every is None else every
        return replace(self, checkpoint=CheckpointOptions(path, every))
