"""Solver options: one frozen value passed down, never a global.

Tolerances (all absolute, in the units of the network's values):

* ``feasibility_tolerance`` -- the simplex treats a variable within this distance of its
  bound as inside it; ``unsat`` is proven up to this slack.
* ``relu_tolerance`` -- a ReLU pair ``f = max(0, b)`` counts as satisfied when
  ``|f - max(0, b)|`` is at most this (times ``max(1, |b|)``).
* ``pivot_tolerance`` -- tableau entries smaller than this are never pivoted on.
* ``confirm_tolerance`` -- a counterexample's onnxruntime outputs (float32) may exceed a
  constraint's right-hand side by at most this much, relative to the size of the row's
  terms (``tolerance * (1 + |row| @ |[v; y]| + |rhs|)``); nothing is reported ``sat`` otherwise.
* ``prune_margin`` -- a region is discarded by bounds only when a constraint's lower
  bound exceeds its right-hand side by more than this (guards float64 round-off in the
  bound arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

STRATEGIES = ("auto", "input-split", "relu-bab", "relu-split")
"""Every value of ``SolverOptions.strategy``: the one list that validation and tools read."""


@dataclass(frozen=True)
class SolverOptions:
    timeout: float | None = 60.0
    """Wall-clock seconds for the whole query; ``None`` means no limit."""
    node_budget: int | None = None
    """Maximum search nodes (Reluplex splits plus input-box splits); ``None`` means no limit."""

    # Reluplex
    repair_threshold: int = 5
    """A ReLU pair broken this many times is case-split instead of repaired (Reluplex uses 5)."""
    feasibility_tolerance: float = 1e-9
    relu_tolerance: float = 1e-9
    pivot_tolerance: float = 1e-9
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

    fold_constant_inputs: bool = True
    """Search over the inputs that vary: constant network inputs (lower == upper) are folded into the
    first layer (:mod:`~reluverify.solver.projection`); counterexamples are confirmed on the original."""

    # strategy
    strategy: str = "auto"
    """``auto``, ``input-split`` (box splitting + Reluplex on small residues), ``relu-bab`` (branch and
    bound over ReLU phases with optimised bounds + Reluplex on its leaves) or ``relu-split`` (Reluplex only).
    ``auto`` takes input splitting for few inputs and many ReLUs, ReLU branch and bound for many
    inputs and many ReLUs, and Reluplex alone for few ReLUs."""
    input_split_max_inputs: int = 12
    """``auto`` splits the input box when the networks have at most this many inputs ..."""
    input_split_min_relus: int = 40
    """... and at least this many ReLUs (fewer ReLUs: Reluplex alone is faster and robust)."""
    leaf_unstable_relus: int = 0
    """Input splitting hands a box to Reluplex when at most this many ReLUs are unstable on it
    (0: only where the networks are linear on the box, or at ``leaf_depth``). Splitting is
    cheaper: on ACAS Xu a box costs ~0.6 ms, a Reluplex leaf ~35 ms (3_3 prop 2: 65 s with 0,
    over 116 s with 6)."""
    leaf_depth: int = 60
    """... or when the box has been split this many times."""
    split_bounds: str = "deeppoly"
    """Input splitting bounds each box's hidden neurons layer by layer with DeepPoly back-substitution
    (``deeppoly``, tighter; on ACAS Xu 2_9 property 8 it leads the search to the counterexample in
    63 boxes) or with the symbolic forward pass (``symbolic``, cheaper per box, re-bounded by
    ``refine_bounds``)."""
    refine_bounds: bool = True
    """Re-bound unstable neurons by back-substitution (DeepPoly) after the forward pass."""
    symbolic_max_inputs: int = 256
    """A query's first bounds come from the symbolic forward pass (cost grows with the inputs) up to
    this many network inputs, and from layer-by-layer DeepPoly back-substitution (cost grows with the
    unstable neurons) beyond."""
    batch_size: int = 512
    """Boxes bounded together in one numpy pass."""
    split_inherit_max_relus: int = 2048
    """Input splitting: a box starts from the pre-activation bounds of its parent (valid on it) when the
    networks have at most this many ReLUs (the stack then holds two floats per ReLU and box: 32 KB a box
    at this size; ACAS Xu's 300 ReLUs, 5 KB)."""
    split_inherit_depth: int = 12
    """... on boxes split at least this many times (shallower ones are bounded on their own: on ACAS Xu
    2_9 property 8, bounds inherited from the root steer the first boxes' candidate vertices and attacks
    away from its thin counterexample, found in 0.6 s without them and not in 60 s with them)."""
    split_weight_iterations: int = 10
    """Input splitting: a conjunction's rows, weighted, are back-substituted as one row; this many
    ascent steps choose the weights (and the input rows' multipliers) per box (0: rows bounded apart)."""
    split_attack_boxes: int = 32
    """Input splitting: after each batch, a gradient attack runs inside this many open boxes, those
    closest to holding a target (0: none)."""
    split_attack_steps: int = 60
    """... with this many steps."""
    split_alpha_iterations: int = 10
    """Input splitting: boxes the plain bounds leave open get this many steps of optimised slopes,
    multipliers and row weights (:mod:`~reluverify.solver.crown`) before they are split (0: never) ...
    """
    split_alpha_depth: int = 12
    """... once they have been split this many times (shallower boxes get the row weights alone). With
    their parents' bounds, this decides ACAS Xu 4_2 property 2 in 18 s and 3_3 property 2 in 47 s, where
    neither was decided in 120 s before: both open only near the threshold, on thousands of deep boxes
    whose plain bounds stop 1e-3 short."""
    split_alpha_warm: bool = True
    """... and a box whose parent's ascent failed starts from its parent's parameters (kept per box and
    target where the parent's bounds are, ``split_inherit_max_relus``: three float32 per ReLU, 3.6 KB a box
    on ACAS Xu) instead of the heuristic slopes, so the ascent goes on down the tree rather than starting
    over at every box. In-process over ACAS Xu's 186 instances: 117.9 s -> 96.1 s, with 10 steps a box
    instead of 20 (4_2 property 2: 24,529 boxes -> 15,747; 3_3 property 2: 62,221 -> 54,039)."""

    # ReLU branch and bound (``relu-bab``)
    bab_batch: int = 256
    """At most this many sub-problems are branched per round (fewer when rounds get slow)."""
    bab_root_iterations: int = 60
    """Optimisation steps of the root bound (slopes, row weights, input-row multipliers)."""
    bab_iterations: int = 10
    """Optimisation steps of each new pair of children (warm-started from their parent)."""
    bab_lr_alpha: float = 0.01
    """Adam step size of the slopes (alpha) of warm-started sub-problems (10 times larger at the root) ..."""
    bab_lr_beta: float = 0.05
    """... and of the split and input-row multipliers (beta, gamma)."""
    bab_root_share: float = 0.3
    """The root's optimised intermediate bounds may take this share of the time left (large CNNs)."""
    bab_intermediate_iterations: int = 20
    """Optimisation steps per hidden layer for the root's intermediate bounds (0: DeepPoly only)."""
    bab_tighten_children: bool = True
    """Every new sub-problem's pre-activation bounds above its split layer are computed again with its
    splits (DeepPoly with its bounds as known bounds; not when a proof is recorded: the checker
    recomputes only the root's). On MNIST 256x4 the root's bounds leave 65 ReLUs of the last hidden
    layer unstable; 10 splits in the first layer and new bounds take a disjunct from -0.54 to -0.006,
    where the same splits without them reach -0.44."""
    bab_tighten_max_relus: int = 2048
    """... on networks with at most this many ReLUs: on the CNNs of marabou-cifar10 (2,568 to 9,696
    ReLUs) a batch of children costs seconds to re-bound (medium 2317 eps 0.012, a sat found after 23
    splits: 59 s with new bounds, 26 s without)."""
    bab_reoptimise_iterations: int = 7
    """On networks with 3 or more hidden layers where children get new bounds, a sub-problem whose
    depth is a multiple of ``bab_reoptimise_every`` has its intermediate bounds optimised again as it
    is made (in place of DeepPoly's children bounds, before its own bound; until stop 25 this was done
    when it was taken from the pool to be split, after its bound: MNIST 256x4 prop 9 in 33-35 s and
    933 sub-problems that way, 25 s and 895 this way; prop 3 164 s against 151 s): optimised slopes
    and multipliers of every bound below, the splits among them, this many steps a layer (0: never).
    Far tighter than DeepPoly's: on MNIST 256x4 property 9 a sub-problem 6 splits deep goes from 143
    unstable ReLUs in the last hidden layer and a bound of -2.3 to 36 and -0.37.
    256x6 property 5 is then proven in 38 s (81 sub-problems), where it timed
    out before; on 256x2 it costs more than it gains (prop 1: 13 s -> 31 s), so only deep networks.
    With the larger steps of :func:`relu_bab.optimise_intermediate`, 5 or 7 steps do what 10 did
    (256x4 property 9 in one process: 10 steps 75 s, 7 steps 60 s, 5 steps 56 s, 4 steps 57 s)."""
    bab_reoptimise_every: int = 2
    """... (every 1: 256x6 property 5 in 60 s, every 4: 51 s)."""
    bab_joint_disjuncts: str = "auto"
    """How the disjuncts of one input box are searched: ``joint``: together, in one tree whose
    sub-problems keep a bound per disjunct, so the splits and the re-tightened bounds are made once
    instead of once per disjunct; ``separate``: one search each; ``auto``: joint where children get
    new bounds on networks with 3 or more hidden layers (there the re-tightening is most of the work:
    MNIST 256x4 prop 5, 4,003 sub-problems and 38 s separately, 389 and 9.4 s jointly), separate
    otherwise (on 256x2 the disjuncts' trees differ: prop 1 takes 13 s separately and times out at
    60 s jointly). Always separate when a proof is recorded (each disjunct has its own tree)."""
    bab_branch_layers: str = "auto"
    """Where branching looks for ReLUs: ``all`` layers, the ``earliest`` layer with an unstable ReLU
    per sub-problem, or ``auto``: the earliest on networks with 3 or more hidden layers when
    children get new bounds (MNIST 256x4 prop 0: 379 sub-problems and 7 s, against a timeout at 60 s
    over all layers), all layers otherwise (on 256x2 the last hidden layer's splits are the ones
    that count: 256x2 prop 1 needs 1,477 sub-problems over all layers and times out on the first)."""
    bab_branch_candidates: int = 64
    """Filtered smart branching: ReLUs scored by both children's bounds per sub-problem (on MNIST
    256x2 prop 1, 8 candidates need 14,000 sub-problems and time out at 60 s, 64 need 1,800: 10 s).
    A joint search scores each candidate for every open target, so this is a budget of scored
    candidates per sub-problem, shared by its open targets (at least 8 candidates each): on 256x4
    property 9 (9 targets), 64 candidates for each took 119 s, 8 took 89 s (two runs at once)."""
    bab_lp_depth: int = 0
    """Sub-problems at least this deep that the bounds leave open are checked by the exact LP over
    their triangle relaxation (our simplex; 0: only leaves) ..."""
    bab_lp_share: float = 0.5
    """... while the LP takes at most this share of the search's time."""
    bab_leaf_depth: int = 96
    """A sub-problem split this many times goes to Reluplex with its phases fixed."""
    max_tableau_entries: int = 100_000_000
    """A branch-and-bound leaf goes to Reluplex on the network reduced to its free ReLUs
    (:mod:`~reluverify.solver.reduction`); a leaf whose dense tableau would still hold more entries
    than this (about 0.8 GB) is left undecided rather than exhaust memory."""
    bab_memory_mb: int = 1024
    """The pool of open sub-problems is drained depth first above this size; at 1.5 times it the
    search stops with ``unknown``."""
    bab_attack_every: int = 5
    """Every this many rounds, a gradient attack starts from the most promising sub-problems."""
    bab_attack_starts: int = 16
    """... from this many of them."""

    proof: bool = False
    """Record a certificate of an ``unsat`` answer (``Result.certificate``; docs/certificates.md). The
    searches then refute only with evidence the independent checker recomputes (DeepPoly bounds, no
    symbolic forward pass, no implied phases, no Reluplex leaves, no facts from other runs) and run
    in one process."""
    jobs: int = 1
    """Worker processes that share one query's open work (boxes or sub-problems), stopping all at
    the first counterexample (:mod:`~reluverify.solver.sharing`)."""

    blas_threads: int | None = 1
    """BLAS threads inside the solver; the matrices are small, so one thread per process is
    fastest, and parallelism comes from worker processes. ``None`` leaves BLAS alone."""

    # falsification
    falsify: bool = True
    random_samples: int = 2000
    attack_restarts: int = 8
    attack_steps: int = 60
    seed: int = 0

    # verdict checking
    confirm_tolerance: float = 1e-6
    prune_margin: float = 1e-9

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}")
        if self.bab_reoptimise_every < 1:
            raise ValueError(f"bab_reoptimise_every must be at least 1 (got {self.bab_reoptimise_every})")
        if self.bab_joint_disjuncts not in ("auto", "joint", "separate"):
            raise ValueError(f"unknown bab_joint_disjuncts {self.bab_joint_disjuncts!r} (auto, joint or separate)")
        if self.bab_branch_layers not in ("auto", "all", "earliest"):
            raise ValueError(f"unknown bab_branch_layers {self.bab_branch_layers!r} (auto, all or earliest)")
        if self.split_bounds not in ("deeppoly", "symbolic"):
            raise ValueError(f"unknown split_bounds {self.split_bounds!r} (deeppoly or symbolic)")
        if self.repair_threshold < 0:
            raise ValueError("repair_threshold must be >= 0")
