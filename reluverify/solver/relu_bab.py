"""Branch and bound over ReLU phases with optimised linear bounds (for networks with many inputs).

Splitting the input box is hopeless when the input has hundreds of dimensions (MNIST: 784);
splitting ReLU phases is not. A *sub-problem* is the disjunct's input region plus a set of
fixed ReLU phases (splits). Each is bounded by :mod:`reluverify.solver.bounds.alpha_crown`: a
back-substitution bound of the disjunct's rows whose slopes (alpha), split multipliers (beta),
input-row multipliers (gamma) and row weights are optimised per sub-problem, warm-started from
its parent. Sub-problems are bounded many at a time as stacked arrays.

The disjuncts of one input box are searched together (*targets*): the sub-problems, their splits
and their re-tightened pre-activation bounds do not depend on the disjunct, only the bound does.
Each sub-problem keeps per target its optimised parameters and its bound, and a target whose bound
is positive is *refuted* there (for good: the children's regions lie in their parent's). A
sub-problem is open while some target is not refuted in it; the bounds are computed for the open
(sub-problem, target) pairs only, as one batch of *items*.

One round takes the sub-problems with the lowest bounds from the pool (the deepest ones when
the pool nears its memory cap), picks one unstable ReLU per sub-problem by *filtered smart
branching* (the candidates with the largest relaxation gap, each scored by the bounds of its two
children), makes both children and optimises their bounds. A child is

* discarded when its bound is positive (no counterexample in it) or its region is empty;
* a *leaf* when no unstable ReLU is left, or it is ``bab.leaf_depth`` splits deep: it goes to
  the Reluplex engine with its phases as bounds, which decides it exactly;
* otherwise put back in the pool.

The point of the box that minimises each bound is a candidate counterexample (checked on the
network, confirmed by onnxruntime); every few rounds a gradient attack starts from those of the
most promising sub-problems.

Invariant: every counterexample of target ``t`` lies in the constrained region of a sub-problem
in the pool in which ``t`` is not refuted, of one being processed, or of a leaf handed to Reluplex
(the two children of a split partition their parent: ``z >= 0`` or ``z <= 0``). The search is
``unsat`` when the pool is empty and every leaf was ``unsat``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from reluverify.network import ReluChain
from reluverify.solver.bounds import alpha_crown
from reluverify.solver.bounds.deeppoly import deeppoly_bounds
from reluverify.solver.bounds.relaxation import triangle_height
from reluverify.solver.falsify import attack
from reluverify.linear_ops import shape as lops_shape
from reluverify.solver.certificate import ProofTree
from reluverify.solver.options import SolverOptions
from reluverify.solver.progress import Throttle
from reluverify.solver.reluplex import LeafOutcome
from reluverify.solver.result import Statistics
from reluverify.solver.search import SearchOutcome, exhausted
from reluverify.solver.sharing import run_shared
from reluverify.solver.triangle_lp import CANDIDATE, REFUTED, solve_triangle_lp

BATCH = 256
"""At most this many sub-problems are branched per round (fewer when rounds get slow)."""
ROOT_ITERATIONS = 60
"""Optimisation steps of the root bound (slopes, row weights, input-row multipliers)."""
ITERATIONS = 10
"""Optimisation steps of each new pair of children (warm-started from their parent)."""
LR_ALPHA = 0.01
"""Adam step size of the slopes (alpha) of warm-started sub-problems (10 times larger at the root) ..."""
LR_BETA = 0.05
"""... and of the split and input-row multipliers (beta, gamma)."""
INTERMEDIATE_ITERATIONS = 20
"""Optimisation steps per hidden layer for the root's intermediate bounds."""
TIGHTEN_MAX_RELUS = 2048
"""Every new sub-problem's pre-activation bounds above its split layer are computed again with its
splits (DeepPoly with its bounds as known bounds; not when a proof is recorded: the checker recomputes
only the root's) on networks with at most this many ReLUs (on larger CNNs a batch of children costs
seconds to re-bound)."""
REOPTIMISE_ITERATIONS = 7
"""On networks with 3 or more hidden layers where children get new bounds, a sub-problem whose depth
is a multiple of :data:`REOPTIMISE_EVERY` has its intermediate bounds optimised again as it is made
(:func:`optimise_intermediate`, in place of DeepPoly's children bounds, before its own bound), this
many steps a layer. Far tighter than DeepPoly's, at a cost that pays on deep networks only."""
REOPTIMISE_EVERY = 2
"""... every this many splits."""
REOPTIMISE_LR_ALPHA, REOPTIMISE_LR_BETA = 0.3, 0.2
"""Step sizes of the re-optimisation, which starts cold (heuristic slopes, no multipliers) every time
and so takes larger steps than a warm-started ascent."""
BRANCH_CANDIDATES = 64
"""Filtered smart branching: ReLUs scored by both children's bounds per sub-problem. A joint search
scores each candidate for every open target, so this is a budget of scored candidates per
sub-problem, shared by its open targets (at least 8 each)."""
LP_DEPTH = 0
"""Sub-problems at least this deep that the bounds leave open are checked by the exact LP over their
triangle relaxation (our simplex; 0: only linear sub-problems) ..."""
LP_SHARE = 0.5
"""... while the LP takes at most this share of the search's time."""
MEMORY_MB = 1024
"""The pool of open sub-problems is drained depth first above this size; at 1.5 times it the search
stops with ``unknown``."""
ATTACK_EVERY = 5
"""Every this many rounds, a gradient attack starts from the most promising sub-problems ..."""
ATTACK_STARTS = 16
"""... from this many of them."""


@dataclass(frozen=True)
class Disjunction:
    """One disjunct as the search sees it: rows over ``[v; y]`` (``v`` = the query's input variables)."""

    rows: np.ndarray  # (R, n_v + m)
    rhs: np.ndarray  # (R,)

    def objective(self, num_v: int) -> alpha_crown.Objective:
        """The rows as an objective; a disjunct without rows (true on its whole box) is ``0 <= 0``."""
        rows, rhs = (self.rows, self.rhs) if self.rhs.size else (np.zeros((1, self.rows.shape[1])), np.zeros(1))
        return alpha_crown.Objective(rows[:, num_v:], rows[:, :num_v], rhs)


@dataclass
class RootBounds:
    """Pre-activation bounds on the disjunct's whole region (shared by the disjuncts of one box)."""

    relaxation: alpha_crown.Relaxation  # batch of one
    seconds: float
    interm_rows: list = field(default_factory=list)  # (layer, neurons, signs, slopes over all ReLUs)


def root_bounds(
    chain: ReluChain, region: alpha_crown.Region, options: SolverOptions, first, deadline: float | None = None,
    record: list | None = None,
) -> RootBounds:
    """``first`` (layer bounds on the region's box: symbolic or DeepPoly) tightened by optimised
    slopes layer by layer (until ``deadline``: what is not tightened by then keeps its sound bound).
    With ``record`` (a list), the rows that tightened them and their slopes are kept in
    ``RootBounds.interm_rows`` (for certificates)."""
    started = time.monotonic()
    pairs = [alpha_crown.ordered(lo, hi) for lo, hi in zip(first.pre_lower, first.pre_upper)]
    relaxation = alpha_crown.Relaxation([lo.copy() for lo, _ in pairs], [hi.copy() for _, hi in pairs], size=region.lower.shape[0])
    if len(chain.weights) > 2:
        settings = alpha_crown.OptimiseSettings(iterations=INTERMEDIATE_ITERATIONS)
        relaxation = alpha_crown.tighten_intermediate(chain, region, relaxation, settings, deadline=deadline, record=record)
    return RootBounds(relaxation, time.monotonic() - started, record or [])


def tightens_children(chain: ReluChain, options: SolverOptions) -> bool:
    """Whether a search's children get new pre-activation bounds (:data:`TIGHTEN_MAX_RELUS`)."""
    return not options.proof and chain.num_relus <= TIGHTEN_MAX_RELUS


def rebounds_deep_network(chain: ReluChain, options: SolverOptions) -> bool:
    """Children get new bounds on a network with 3 or more hidden layers: there the re-bounding is
    most of the work, which the ``auto`` choices of branching layer, joint search and
    re-optimisation follow."""
    return tightens_children(chain, options) and len(chain.weights) - 1 >= 3


def searches_jointly(chain: ReluChain, options: SolverOptions) -> bool:
    """Whether the disjuncts of one box are searched in one tree (``bab.joint_disjuncts``)."""
    if options.proof or options.bab.joint_disjuncts == "separate":
        return False
    return options.bab.joint_disjuncts == "joint" or rebounds_deep_network(chain, options)


class _Pool:
    """Sub-problems as stacked arrays (one row each); order is irrelevant, selection is by value."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.size = 0

    def push(self, arrays: dict[str, np.ndarray]) -> None:
        k = next(iter(arrays.values())).shape[0]
        if k == 0:
            return
        if not self.arrays:
            self.arrays = {name: np.empty((max(64, 2 * k),) + a.shape[1:], a.dtype) for name, a in arrays.items()}
        capacity = next(iter(self.arrays.values())).shape[0]
        if self.size + k > capacity:
            grow = max(capacity, k)
            self.arrays = {
                name: np.concatenate([a, np.empty((grow,) + a.shape[1:], a.dtype)]) for name, a in self.arrays.items()
            }
        for name, a in arrays.items():
            self.arrays[name][self.size : self.size + k] = a
        self.size += k

    def pop(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """Remove and return the rows ``index`` (the rows at the end move into the holes)."""
        index = np.asarray(index)
        out = {name: a[index] for name, a in self.arrays.items()}  # copies (fancy indexing)
        size = self.size - index.size
        taken = np.zeros(self.size, dtype=bool)
        taken[index] = True
        holes = np.flatnonzero(taken[:size])  # taken rows that stay inside the pool's new size
        tail = size + np.flatnonzero(~taken[size:])  # rows kept beyond it: as many as the holes
        for a in self.arrays.values():
            a[holes] = a[tail]
        self.size = size
        return out

    def view(self, name: str) -> np.ndarray:
        return self.arrays[name][: self.size] if self.arrays else np.zeros(0)

    @property
    def nbytes(self) -> int:
        if not self.arrays or not self.size:
            return 0
        capacity = next(iter(self.arrays.values())).shape[0]
        return sum(a.nbytes for a in self.arrays.values()) * self.size // capacity


def _pack(relaxation: alpha_crown.Relaxation, params: alpha_crown.Parameters, values, depth, node) -> dict[str, np.ndarray]:
    """Sub-problems as pool rows: bounds and splits (B, n_j), per target parameters (B, T, ...) and
    bounds ``values`` (B, T; +inf where the target is refuted), and ``value`` (B,), their minimum."""
    arrays = {"value": values.min(axis=1), "values": values, "depth": depth, "node": node}
    for j, (lo, hi, s, a) in enumerate(zip(relaxation.lower, relaxation.upper, relaxation.split, params.alpha)):
        arrays[f"lower{j}"], arrays[f"upper{j}"], arrays[f"split{j}"] = lo, hi, s
        arrays[f"alpha{j}"] = a
        arrays[f"beta{j}"] = params.beta[j]
    if params.gamma is not None:
        arrays["gamma"] = params.gamma
    arrays["weights"] = params.weights
    return arrays


def _unpack(arrays: dict[str, np.ndarray], layers: int) -> tuple[alpha_crown.Relaxation, alpha_crown.Parameters]:
    relaxation = alpha_crown.Relaxation(
        [arrays[f"lower{j}"] for j in range(layers)],
        [arrays[f"upper{j}"] for j in range(layers)],
        [arrays[f"split{j}"] for j in range(layers)],
        arrays["value"].shape[0],
    )
    params = alpha_crown.Parameters(
        [arrays[f"alpha{j}"] for j in range(layers)],
        [arrays[f"beta{j}"] for j in range(layers)],
        arrays.get("gamma"),
        arrays["weights"],
    )
    return relaxation, params


@dataclass(frozen=True)
class Items:
    """The open (sub-problem, target) pairs of a batch, grouped by sub-problem: ``owner`` (sub-problem)
    and ``target`` per item, and ``first`` (B,), each sub-problem's first item (every sub-problem has one)."""

    owner: np.ndarray
    target: np.ndarray
    first: np.ndarray

    @staticmethod
    def of(open_: np.ndarray) -> "Items":
        """The items of an open mask (B, T) with at least one open target per row."""
        owner, target = np.nonzero(open_)
        first = np.searchsorted(owner, np.arange(open_.shape[0]))
        return Items(owner, target, first)

    @property
    def size(self) -> int:
        return int(self.owner.size)

    def all_of(self, flags: np.ndarray) -> np.ndarray:
        """Per sub-problem: ``flags`` (items, ...) holds for every one of its items."""
        return np.logical_and.reduceat(flags, self.first, axis=0)

    def min_of(self, values: np.ndarray) -> np.ndarray:
        """Per sub-problem: the minimum of ``values`` (items, ...) over its items."""
        return np.minimum.reduceat(values, self.first, axis=0)


def _item_params(params: alpha_crown.Parameters, items: Items) -> alpha_crown.Parameters:
    """Per item, its sub-problem's parameters for its target (S = 1)."""
    o, t = items.owner, items.target
    return alpha_crown.Parameters(
        [a[o, t][:, None] for a in params.alpha],
        None if params.beta is None else [b[o, t][:, None] for b in params.beta],
        None if params.gamma is None else params.gamma[o, t][:, None],
        params.weights[o, t][:, None],
    )


def _scatter_params(target: alpha_crown.Parameters, items: Items, source: alpha_crown.Parameters) -> None:
    """Write the items' parameters (S = 1) into their sub-problems' rows of ``target`` (B, T, ...)."""
    o, t = items.owner, items.target
    for a, b in zip(target.alpha, source.alpha):
        a[o, t] = b[:, 0]
    if target.beta is not None:
        for a, b in zip(target.beta, source.beta):
            a[o, t] = b[:, 0]
    if target.gamma is not None:
        target.gamma[o, t] = source.gamma[:, 0]
    target.weights[o, t] = source.weights[:, 0]


def _branch_scores(p: alpha_crown.Pass, relaxation: alpha_crown.Relaxation, earliest: bool = False) -> list[np.ndarray]:
    """Per hidden layer (B, n_j): each free unstable ReLU's relaxation gap (the triangle's height
    ``u (-l) / (u - l)``) times the magnitude of its coefficient; -inf for the others. With
    ``earliest``, only the first layer that has a free unstable ReLU (per sub-problem) has candidates.

    Only a filter: the candidates it ranks highest are bounded exactly. (A first-order estimate
    of the children's bounds, from the bound's derivative in the coefficients, ranked worse.)
    """
    scores = []
    below = np.zeros(relaxation.batch, dtype=bool)  # a layer below has a free unstable ReLU
    for j, (lo, hi, s) in enumerate(zip(relaxation.lower, relaxation.upper, relaxation.split)):
        free = (lo < 0) & (hi > 0) & (s == 0)
        if earliest:
            free &= ~below[:, None]
            below |= free.any(axis=1)
        scores.append(np.where(free, np.abs(p.nu[j][:, 0, :]) * triangle_height(lo, hi), -np.inf))
    return scores


@dataclass
class Branching:
    """What filtered smart branching found for a batch of sub-problems.

    ``layer``/``neuron`` (B,): the ReLU to split; ``children`` (items, 2): per item, the bounds of its
    sub-problem's active and inactive child for its target with the parent's parameters (sound, so a
    target above the margin is refuted in that child); ``implied``: (sub-problem, layer, neuron,
    phase) of candidates one of whose children is refuted for every target, so the other phase
    holds wherever a counterexample can be; ``refuted`` (B,): some candidate has both children
    refuted for every target, so the sub-problem holds no counterexample at all.
    """

    layer: np.ndarray
    neuron: np.ndarray
    children: np.ndarray
    implied: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    refuted: np.ndarray


def choose_branch(
    chain: ReluChain,
    region: alpha_crown.Region,
    relaxation: alpha_crown.Relaxation,
    params: alpha_crown.Parameters,
    p: alpha_crown.Pass,
    items: Items,
    candidates: int,
    margin: float,
    implied: bool = True,
    earliest: bool = False,
) -> Branching:
    """Filtered smart branching: per sub-problem, the (layer, neuron) whose worse child bound is best.

    ``region``, ``relaxation``, ``params`` and the pass ``p`` are per item (see :class:`Items`).
    The free unstable ReLUs with the largest scores (summed over the sub-problem's open targets)
    are tried, ``candidates`` divided by the batch's mean number of open targets per sub-problem
    (at least 8; each is bounded for every open target): each child's bound is the pass ``p`` with
    the neuron's relaxation replaced by its phase (the rest of the pass kept above its layer,
    recomputed below it), with the current parameters. Every such bound is sound (any parameters give a sound bound), which
    makes the implied phases safe; a child counts as refuted when it is for every open target, and
    a candidate ranks by its worse child's bound for the sub-problem's hardest target. With
    ``implied=False`` (when a proof is recorded: each refuted child must be a leaf of the proof tree
    with its own evidence) no phase is implied and no sub-problem refuted here. With ``earliest``,
    the candidates are the free unstable ReLUs of each sub-problem's first layer that has any.
    """
    item_scores = np.concatenate(_branch_scores(p, relaxation, earliest), axis=1)  # (items, N)
    batch = items.first.size
    flat = np.zeros((batch, item_scores.shape[1]))
    np.add.at(flat, items.owner, np.where(np.isfinite(item_scores), item_scores, 0.0))
    flat[~np.isfinite(item_scores[items.first])] = -np.inf  # which ReLUs are free is the sub-problem's
    sizes = [lo.shape[1] for lo in relaxation.lower]
    offsets = np.cumsum([0] + sizes)
    k = min(max(8, int(candidates * batch / items.size)), candidates, flat.shape[1])
    top = np.argpartition(-flat, k - 1, axis=1)[:, :k] if k < flat.shape[1] else np.tile(np.arange(flat.shape[1]), (batch, 1))
    valid = np.isfinite(np.take_along_axis(flat, top, axis=1))[items.owner]
    layer_of = (np.searchsorted(offsets, top, side="right") - 1)[items.owner]
    neuron_of = top[items.owner] - offsets[layer_of]
    # rank in float32 (twice as fast); a child that looks refuted is bounded again in float64, and
    # only float64 bounds refute anything
    fast = alpha_crown.layer_terms(relaxation, region, np.float32)
    ranking = _child_bounds(chain, region, relaxation, params, p, layer_of, neuron_of, valid, fast)
    suspect = np.any(ranking > margin - 1e-4 * (1.0 + np.abs(ranking)), axis=2) & valid
    exact = np.full(ranking.shape, -np.inf)
    if np.any(suspect):
        exact = _child_bounds(
            chain, region, relaxation, params, p, layer_of, neuron_of, suspect, alpha_crown.layer_terms(relaxation, region)
        )
    dead = items.all_of(exact > margin) & implied  # (B, k, 2): refuted for every open target
    refuted = np.any(dead.all(axis=2), axis=1)
    one = dead.any(axis=2) & ~dead.all(axis=2)
    b_imp, c_imp = np.nonzero(one)
    layer_sub, neuron_sub = layer_of[items.first], neuron_of[items.first]
    implied = (b_imp, layer_sub[b_imp, c_imp], neuron_sub[b_imp, c_imp], np.where(dead[b_imp, c_imp, 1], 1, -1).astype(np.int8))
    worse = np.where(one, -np.inf, items.min_of(ranking.min(axis=2)))  # an implied phase is no branch
    best = worse.argmax(axis=1)
    rows = np.arange(batch)
    return Branching(layer_sub[rows, best], neuron_sub[rows, best], exact[np.arange(items.size), best[items.owner]], implied, refuted)


def _child_bounds(chain, region, relaxation, params, p, layer_of, neuron_of, mask, terms) -> np.ndarray:
    """(B, k, 2): the bounds of the active and inactive child of each candidate where ``mask`` holds
    (-inf elsewhere), in the float type of ``terms``."""
    values = np.full(layer_of.shape + (2,), -np.inf)
    for j in np.unique(layer_of[mask]):
        b_idx, c_idx = np.nonzero((layer_of == j) & mask)
        i = neuron_of[b_idx, c_idx]
        rows = np.arange(b_idx.size)
        nu = p.nu[j][b_idx, 0, i]
        linear = nu * p.slope[j][b_idx, 0, i]  # the neuron's relaxed term, replaced in each child
        const = p.const_at[j][b_idx, 0] - nu * p.intercept[j][b_idx, 0, i]
        mu = np.repeat(p.mu_at[j][b_idx, 0, :][:, None, :], 2, axis=1)
        mu[rows, 0, i] += nu - linear  # active child: h = z
        mu[rows, 1, i] -= linear  # inactive child: h = 0
        sub_params = params.take(b_idx)
        const = np.repeat(const[:, None], 2, axis=1)
        if sub_params.beta is not None:  # the clamped bound moves the constant of its multiplier
            beta = np.maximum(sub_params.beta[j][rows, 0, i], 0.0)
            const[:, 0] -= beta[:, 0] * np.minimum(relaxation.lower[j][b_idx, i], 0.0)
            const[:, 1] += beta[:, 1] * np.maximum(relaxation.upper[j][b_idx, i], 0.0)
        child = alpha_crown.backward(
            chain,
            region.take(b_idx),
            relaxation.take(b_idx),
            mu,
            const,
            j,
            None if p.input_coef is None else p.input_coef[b_idx].astype(terms.dtype),
            sub_params.alpha[:j],
            None if sub_params.beta is None else sub_params.beta[:j],
            sub_params.gamma,
            record=False,
            terms=alpha_crown.take_terms(terms, b_idx),
        )
        values[b_idx, c_idx] = child.value
    return values


def _fix(relaxation: alpha_crown.Relaxation, params: alpha_crown.Parameters, rows, layer, neuron, sign) -> None:
    """Split ``neuron`` of ``layer`` in sub-problems ``rows`` to phase ``sign`` (+1/-1), in place."""
    for j in np.unique(layer):
        sel = layer == j
        r, i, s = rows[sel], neuron[sel], sign[sel]
        relaxation.split[j][r, i] = s
        relaxation.lower[j][r, i] = np.where(s > 0, np.maximum(relaxation.lower[j][r, i], 0.0), relaxation.lower[j][r, i])
        relaxation.upper[j][r, i] = np.where(s < 0, np.minimum(relaxation.upper[j][r, i], 0.0), relaxation.upper[j][r, i])
        # the neuron's bound multipliers stay: with its bound clamped to 0 they weigh the split itself


def _children(relaxation: alpha_crown.Relaxation, params: alpha_crown.Parameters, branching: Branching):
    """Both children of every sub-problem (first all active ones, then all inactive ones), with the
    implied phases fixed in both."""
    batch = relaxation.batch
    both = np.concatenate([np.arange(batch), np.arange(batch)])
    child = relaxation.take(both)
    child = alpha_crown.Relaxation(
        [a.copy() for a in child.lower], [a.copy() for a in child.upper], [a.copy() for a in child.split], child.batch
    )
    child_params = params.take(both).copy()
    b_imp, l_imp, n_imp, s_imp = branching.implied
    if b_imp.size:
        _fix(child, child_params, np.concatenate([b_imp, b_imp + batch]), np.concatenate([l_imp, l_imp]),
             np.concatenate([n_imp, n_imp]), np.concatenate([s_imp, s_imp]))
    sign = np.concatenate([np.ones(batch, dtype=np.int8), -np.ones(batch, dtype=np.int8)])
    _fix(child, child_params, np.arange(2 * batch), np.concatenate([branching.layer, branching.layer]),
         np.concatenate([branching.neuron, branching.neuron]), sign)
    return child, child_params


def tighten_children(
    chain: ReluChain, region: alpha_crown.Region, child: alpha_crown.Relaxation, split_layer: np.ndarray
) -> tuple[alpha_crown.Relaxation, np.ndarray]:
    """Children's pre-activation bounds above ``split_layer`` (per child: its lowest newly fixed
    phase), re-computed by back-substitution (DeepPoly) over ``region``'s box (a batch of one; its
    first ``chain.input_size`` variables are the network's inputs) with their own bounds as known
    bounds (the split phases among them) and intersected with those; and which children these bounds
    show empty.

    Sound because every bound of ``child`` holds on its constrained region, and DeepPoly with known
    bounds is valid for every input of the box that meets them; a bound tighter than its parent's
    makes the children's relaxation (and so every bound computed from it) tighter.
    """
    layers = len(chain.weights) - 1
    lower = [a.copy() for a in child.lower]
    upper = [a.copy() for a in child.upper]
    empty = np.zeros(child.batch, dtype=bool)
    box_lower, box_upper = region.lower[:, : chain.input_size], region.upper[:, : chain.input_size]
    for layer in np.unique(split_layer):
        if layer + 1 >= layers:
            continue  # split in the last hidden layer: no hidden bound above it changes
        rows = np.flatnonzero(split_layer == layer)
        known_lower, known_upper = [a[rows] for a in child.lower], [a[rows] for a in child.upper]
        fresh = deeppoly_bounds(chain, np.repeat(box_lower, rows.size, axis=0), np.repeat(box_upper, rows.size, axis=0),
                                known_lower, known_upper, first=int(layer) + 1)
        for j in range(int(layer) + 1, layers):
            lo, hi = alpha_crown.ordered(np.maximum(known_lower[j], fresh.pre_lower[j]), np.minimum(known_upper[j], fresh.pre_upper[j]))
            lower[j][rows], upper[j][rows] = lo, hi
        empty[rows] = fresh.infeasible
    tightened = alpha_crown.Relaxation(lower, upper, child.split, child.batch)
    return tightened, empty | tightened.infeasible()


def optimise_intermediate(
    chain: ReluChain, region: alpha_crown.Region, relaxation: alpha_crown.Relaxation, iterations: int, deadline: float | None = None
) -> tuple[alpha_crown.Relaxation, np.ndarray]:
    """Sub-problems' unstable pre-activation bounds (every hidden layer but the first, whose bounds
    the box fixes) bounded again with optimised slopes and multipliers of every bound below, the
    splits among them (:func:`alpha_crown.tighten_intermediate` with beta, ``iterations`` steps a layer),
    intersected with theirs; and which sub-problems these bounds show empty. ``region`` has one
    row per sub-problem. Past ``deadline`` what is not re-bounded keeps its bounds.

    Sound for the reason every optimised bound is: any slopes and multipliers in range give a valid
    bound on the sub-problem's constrained region. Much tighter there than DeepPoly's (which
    :func:`tighten_children` gives every child): on MNIST 256x4 property 9, a sub-problem 6 splits
    deep has 143 unstable ReLUs in the last hidden layer and a bound of -2.3 with DeepPoly's
    bounds; 49 and -0.86 after 5 steps, 36 and -0.37 after 10.

    The ascent starts from heuristic slopes and no multipliers every time, so its steps are larger
    than a warm-started one's (:data:`REOPTIMISE_LR_ALPHA`, :data:`REOPTIMISE_LR_BETA`).
    """
    settings = alpha_crown.OptimiseSettings(iterations=iterations, lr_alpha=REOPTIMISE_LR_ALPHA, lr_beta=REOPTIMISE_LR_BETA,
                                      restrict=True)
    tightened = alpha_crown.tighten_intermediate(chain, region, relaxation, settings, layers=range(1, len(chain.weights) - 1),
                                           with_beta=True, deadline=deadline)
    return tightened, tightened.infeasible()


def _put(relaxation: alpha_crown.Relaxation, index: np.ndarray, part: alpha_crown.Relaxation) -> alpha_crown.Relaxation:
    """``relaxation`` with sub-problems ``index`` replaced by ``part``'s (in place)."""
    for target, source in zip(relaxation.lower + relaxation.upper, part.lower + part.upper):
        target[index] = source
    return relaxation


def phases_of(relaxation: alpha_crown.Relaxation, index: int) -> np.ndarray:
    """Per ReLU in chain order: 1 active, 0 inactive (by split or bounds), -1 free, for sub-problem ``index``."""
    parts = []
    for lo, hi in zip(relaxation.lower, relaxation.upper):
        phase = np.full(lo.shape[1], -1, dtype=np.int8)
        phase[lo[index] >= 0] = 1
        phase[hi[index] <= 0] = 0
        parts.append(phase)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int8)


@dataclass
class RootSolution:
    """The optimised bounds of the targets on their whole region (the search's first sub-problem)."""

    values: np.ndarray  # (T,)
    params: alpha_crown.Parameters  # (1, T, ...)
    vertices: np.ndarray  # (T, n_v): per target the box point minimising its bound

    @property
    def value(self) -> float:
        return float(self.values.min())


def _objectives(targets: list[Disjunction], num_v: int) -> alpha_crown.Objective:
    """The targets' rows as one per-batch objective (entry ``t``: target ``t``)."""
    return alpha_crown.Objective.stacked([t.objective(num_v) for t in targets])


def bound_root(
    chain: ReluChain, targets: list[Disjunction], region: alpha_crown.Region, root: RootBounds, options: SolverOptions
) -> RootSolution:
    """Optimise every target's bound on the whole region (no splits), one item per target."""
    layers = len(chain.weights) - 1
    count = len(targets)
    objective = _objectives(targets, region.lower.shape[1])
    zeros = np.zeros(count, dtype=np.int64)
    relaxation, items_region = root.relaxation.take(zeros), region.take(zeros)
    params = alpha_crown.initial_parameters(relaxation, 1, layers, items_region, with_beta=True)
    params.weights = alpha_crown.uniform_weights(count, 1, objective)
    settings = _settings(options, ROOT_ITERATIONS, root=True)
    value, params, p = alpha_crown.optimise(chain, items_region, relaxation, objective, params, settings)
    gather = lambda a: None if a is None else a[:, 0][None]  # noqa: E731  (T, 1, ...) -> (1, T, ...)
    joint = alpha_crown.Parameters(
        [gather(a) for a in params.alpha], None if params.beta is None else [gather(b) for b in params.beta],
        gather(params.gamma), gather(params.weights),
    )
    return RootSolution(value[:, 0].astype(np.float64), joint, p.vertex[:, 0, :].copy())


def _settings(options: SolverOptions, iterations: int, root: bool = False) -> alpha_crown.OptimiseSettings:
    """Step sizes: heuristic slopes at the root need large steps; warm-started children small ones
    (large Adam steps from a good start lose the bound for dozens of iterations)."""
    return alpha_crown.OptimiseSettings(
        iterations=iterations,
        lr_alpha=LR_ALPHA * (10.0 if root else 1.0),
        lr_beta=LR_BETA,
        lr_gamma=LR_BETA,
        stop_above=options.tolerances.prune_margin,
        restrict=True,
    )


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
) -> SearchOutcome:
    """Search the region for a point satisfying one of ``targets`` (see the module docstring).

    ``region`` is a batch of one (the targets' box and the query's input rows); ``root`` holds
    bounds valid on it; ``confirm(v, t)`` confirms a candidate of target ``t`` with onnxruntime;
    ``leaf_solver(t, lower, upper, phases)`` decides target ``t`` on a leaf exactly (Reluplex with
    fixed phases), or returns None when the leaf is too large for it (the sub-problem is then split
    further); ``start`` is the root bound if :func:`bound_root` already computed it; ``progress``
    receives where the search stands; ``tree``, when given, records the proof of the single target
    (docs/certificates.md: every split, and each leaf's evidence: its bound's parameters or the LP's
    Farkas multipliers). Recording a proof turns off what a proof could not show: implied phases,
    Reluplex leaves and sharing among processes. A ``sat`` outcome names its target in ``disjunct``.
    """
    if tree is not None and len(targets) != 1:
        raise ValueError("a proof tree records the search of a single target")
    search = _Search(chain, targets, region, options, statistics, deadline, confirm, leaf_solver, rng, progress, tree)
    return search.run(root, start)


class _Stop(Exception):
    """Ends the search with an outcome (sat, timeout, unknown)."""

    def __init__(self, outcome: SearchOutcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


class _Search:
    """The state of one box's branch and bound over its targets (see :func:`relu_bab_search`)."""

    def __init__(self, chain, targets, region, options, statistics, deadline, confirm, leaf_solver, rng, progress, tree=None):
        self.chain, self.targets, self.region, self.options = chain, targets, region, options
        self.tree = tree
        self.offsets = np.cumsum([0] + [w_shape[0] for w_shape in (lops_shape(w) for w in chain.weights[:-1])])
        self.stats, self.deadline, self.confirm, self.leaf_solver = statistics, deadline, confirm, leaf_solver
        self.rng = rng or np.random.default_rng(options.attack.seed)
        self.progress = progress or Throttle(None)
        self.num_v = region.lower.shape[1]
        self.n_x = chain.input_size
        self.layers = len(chain.weights) - 1
        self.objective = _objectives(targets, self.num_v)
        self.margin = options.tolerances.prune_margin
        self.pool = _Pool()
        self.undecided: list[str] = []
        self.started = time.monotonic()
        self.lp_seconds = 0.0
        self.proven = 0.0  # the share of the search tree refuted (a sub-problem at depth d weighs 2^-d)
        self.settings = _settings(options, ITERATIONS)
        self.rounds = 0
        self.seconds_per_item = 0.0
        # children re-bounded above their split: on deep networks a split in the first open layer
        # tightens every layer above it, which the branching scores (parent's bounds) do not see
        self.tighten = tree is None and tightens_children(chain, options)
        # deep networks: every few splits a child's intermediate bounds are optimised again (with the
        # splits' multipliers) instead of DeepPoly's, far tighter, at a cost; done as the child is made,
        # so its own bound (and whether it is refuted at once) gains from them
        deep = self.tighten and rebounds_deep_network(chain, options)
        self.reoptimise = deep
        # branching looks for ReLUs in the earliest layer with an unstable one on such networks (a split
        # there tightens every layer above it), in every layer otherwise (on shallow networks the last
        # hidden layer's splits are the ones that count)
        self.earliest = deep

    def batch_region(self, size: int) -> alpha_crown.Region:
        r = self.region
        return alpha_crown.Region(np.repeat(r.lower, size, axis=0), np.repeat(r.upper, size, axis=0), r.rows, r.rhs)

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _Stop(SearchOutcome("timeout", reason="time budget exhausted in ReLU branch and bound"))

    def report(self, force: bool = False) -> None:
        if self.progress.due() or (force and self.progress):
            values = self.pool.view("value")
            best = float(values.min()) if values.size else None
            self.progress.report("relu-bab", self.stats.subproblems, self.pool.size, self.proven, best, force=force)

    # ------------------------------------------------------------------ the search
    def run(self, root: RootBounds, start: RootSolution | None) -> SearchOutcome:
        relaxation = root.relaxation
        if relaxation.infeasible()[0]:
            return SearchOutcome("unsat")
        if start is None:
            start = bound_root(self.chain, self.targets, self.region, root, self.options)
        self.stats.subproblems += 1
        try:
            self.settle(relaxation, start.params, start.values[None, :], start.vertices[None, :, :],
                        np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
        except _Stop as stop:
            return stop.outcome
        if self.options.parallel.jobs > 1 and self.pool.size and self.tree is None:
            outcome = run_shared(self, self.options.parallel.jobs, self.deadline, self.progress, "relu-bab")
        else:
            outcome = self.work(float("inf")) or self.finish()
        self.report(force=True)
        return outcome

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
                self.branch(self.select(batch))
                if self.options.falsify and self.num_v == self.n_x and self.pool.size and self.rounds % ATTACK_EVERY == 0:
                    self.attack()
                self.seconds_per_item = 0.5 * self.seconds_per_item + 0.5 * (time.monotonic() - started) / batch
                self.report()
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

    def reset_statistics(self) -> None:
        """In a worker process: count from zero (the caller keeps what was counted before the fork)."""
        self.stats = Statistics()
        self.proven = 0.0
        self.undecided = []
        self.progress = Throttle(None)

    def select(self, batch: int) -> dict[str, np.ndarray]:
        """Take ``batch`` sub-problems: the lowest bounds, or the deepest when memory runs short."""
        cap = MEMORY_MB * 2**20
        pool = self.pool
        if pool.nbytes > 1.5 * cap:
            raise _Stop(SearchOutcome(
                "unknown", reason=f"the sub-problem pool outgrew its memory cap ({MEMORY_MB} MB)"
            ))
        key = -pool.view("depth") if pool.nbytes > cap else pool.view("value")
        index = np.argpartition(key, batch - 1)[:batch] if batch < pool.size else np.arange(pool.size)
        return pool.pop(index)

    def item_batch(self, relaxation: alpha_crown.Relaxation, items: Items):
        """The items' region, relaxation and objective (a batch of ``items.size``)."""
        return self.batch_region(items.size), relaxation.take(items.owner), self.objective.take(items.target)

    def branch(self, arrays: dict[str, np.ndarray]) -> None:
        """Split every sub-problem of ``arrays`` once; bound and settle the children."""
        chain, options, stats, margin = self.chain, self.options, self.stats, self.margin
        relaxation, params = _unpack(arrays, self.layers)
        batch = relaxation.batch
        open_targets = arrays["values"] <= margin
        items = Items.of(open_targets)
        region, item_relaxation, objective = self.item_batch(relaxation, items)
        item_params = _item_params(params, items)
        p = alpha_crown.bound(chain, region, item_relaxation, objective, item_params)
        branching = choose_branch(chain, region, item_relaxation, item_params, p, items, BRANCH_CANDIDATES,
                                  margin, implied=self.tree is None, earliest=self.earliest)
        child, child_params = _children(relaxation, params, branching)
        depth = np.concatenate([arrays["depth"], arrays["depth"]]) + 1
        node = np.zeros(2 * batch, dtype=np.int64)
        if self.tree is not None:
            relus = self.offsets[branching.layer] + branching.neuron
            for b in range(batch):
                node[b], node[batch + b] = self.tree.add_relu_split(int(arrays["node"][b]), int(relus[b]))
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
        if self.tree is not None:
            open_ |= child.infeasible()  # a proof shows an empty child by its bound, not by crossed bounds
        else:
            open_ &= ~child.infeasible()
        # new intermediate bounds for the open children: every few splits optimised again (see __init__),
        # DeepPoly's above the split for the others
        due = open_ & (depth % REOPTIMISE_EVERY == 0) if self.reoptimise else np.zeros_like(open_)
        if self.tighten and np.any(open_ & ~due):
            keep = np.flatnonzero(open_ & ~due)
            lowest = branching.layer.copy()  # the lowest layer with a phase newly fixed, per parent
            np.minimum.at(lowest, branching.implied[0], branching.implied[1])
            tightened, empty = tighten_children(chain, self.region, child.take(keep), np.concatenate([lowest, lowest])[keep])
            child = _put(child, keep, tightened)
            open_[keep[empty]] = False
        if np.any(due):
            keep = np.flatnonzero(due)
            tightened, empty = optimise_intermediate(chain, self.batch_region(keep.size), child.take(keep),
                                                     REOPTIMISE_ITERATIONS, self.deadline)
            child = _put(child, keep, tightened)
            open_[keep[empty]] = False
        self.proven += float(np.sum(0.5 ** depth[~open_]))
        if self.tree is not None and np.any(~open_):
            # children the branching bound refutes: leaves whose evidence is their parent's parameters
            dead = np.flatnonzero(~open_)
            self.record_bound_leaves(node[dead], child.take(dead), child_params.take(dead))
        keep = np.flatnonzero(open_)
        stats.subproblems += keep.size
        if keep.size == 0:
            return
        child, child_params, depth, child_open = child.take(keep), child_params.take(keep), depth[keep], child_open[keep]
        if self.tree is not None:
            child_open[:] = True  # a proof's child is bounded (an empty one shows by its bound)
        values = np.full(child_open.shape, np.inf)
        vertices = np.zeros(child_open.shape + (self.num_v,))
        live = np.flatnonzero(child_open.any(axis=1))
        if live.size:
            sub = Items.of(child_open[live])
            sub = Items(live[sub.owner], sub.target, sub.first)
            region, item_relaxation, objective = self.item_batch(child, sub)
            value, item_params, cp = alpha_crown.optimise(chain, region, item_relaxation, objective, _item_params(child_params, sub), self.settings)
            _scatter_params(child_params, sub, item_params)
            values[sub.owner, sub.target] = value[:, 0]
            vertices[sub.owner, sub.target] = cp.vertex[:, 0, :]
        self.settle(child, child_params, values, vertices, depth, node[keep])

    def record_bound_leaves(self, nodes, relaxation: alpha_crown.Relaxation, params: alpha_crown.Parameters) -> None:
        """Bound evidence: the parameters with which each leaf's own bound is positive (one target)."""
        k = relaxation.batch
        alpha = np.concatenate([a[:, 0, :] for a in params.alpha], axis=1) if params.alpha else np.zeros((k, 0))
        beta = np.concatenate([b[:, 0] for b in params.beta], axis=1) if params.beta else np.zeros((k, 0, 2))
        unstable = np.concatenate(relaxation.unstable(), axis=1) if relaxation.lower else np.zeros((k, 0), bool)
        rows = self.targets[0].rhs.size
        weights = params.weights[:, 0, :rows] if rows else np.zeros((k, 0))
        gamma = None if params.gamma is None else params.gamma[:, 0, :]
        self.tree.add_bound_leaves(nodes, weights, gamma, alpha, np.maximum(beta, 0.0), unstable)

    def settle(self, relaxation, params, values, vertices, depth, node) -> None:
        """Bounded sub-problems (``values`` (B, T), +inf where a target is refuted; ``vertices``
        (B, T, n_v)): refuted ones are dropped, candidates checked, the exact LP run where it is due,
        leaves decided, the rest pooled."""
        chain, options, stats = self.chain, self.options, self.stats
        open_targets = values <= self.margin
        alive = open_targets.any(axis=1)
        self.proven += float(np.sum(0.5 ** depth[~alive]))
        if self.tree is not None and np.any(~alive):
            dead = np.flatnonzero(~alive)
            self.record_bound_leaves(node[dead], relaxation.take(dead), params.take(dead))
        if not np.any(alive):
            return
        keep = np.flatnonzero(alive)
        relaxation, params = relaxation.take(keep), params.take(keep)
        values, depth, vertices, node, open_targets = values[keep], depth[keep], vertices[keep], node[keep], open_targets[keep]
        for t in range(len(self.targets)):
            self.candidates(vertices[open_targets[:, t], t], t)
        linear = relaxation.unstable_counts() == 0
        # the exact LP: every linear sub-problem (the LP is the sub-problem itself), and deep ones the
        # bounds have not closed while the LP keeps within its share of the time
        deep = (depth >= LP_DEPTH) & (LP_DEPTH > 0)
        for b in np.flatnonzero(linear | deep):
            for t in np.flatnonzero(open_targets[b]):
                self.check_time()
                if not linear[b] and LP_SHARE * (time.monotonic() - self.started) < self.lp_seconds:
                    continue
                lp_started = time.monotonic()
                target = self.targets[t]
                outcome = solve_triangle_lp(
                    chain, self.region, relaxation, int(b), target.rows, target.rhs,
                    options.tolerances.feasibility, options.tolerances.pivot, start=vertices[b, t], deadline=self.deadline,
                )
                self.lp_seconds += time.monotonic() - lp_started
                stats.lp_calls += 1
                stats.pivots += outcome.pivots
                if outcome.status == REFUTED and (self.tree is None or outcome.farkas is not None):
                    open_targets[b, t] = False
                    stats.lp_refuted += 1
                    if self.tree is not None:
                        self.tree.add_lp_leaf(int(node[b]), *outcome.farkas)
                elif outcome.status == CANDIDATE:
                    self.candidates(outcome.inputs[None, :], t)
        # a linear sub-problem whose LP point onnxruntime did not confirm, or one split too deep,
        # goes to Reluplex with its phases fixed
        refuted = ~open_targets.any(axis=1)
        leaf = ~refuted & (linear | (depth >= options.bab.leaf_depth))
        reluplex = leaf
        if self.tree is not None:
            # a proof has no Reluplex leaves: a linear region the LP did not refute is left undecided,
            # a deep one is split further
            leaf = leaf & linear
            reluplex = np.zeros_like(leaf)
            self.undecided.extend(["a linear sub-problem's LP point was not confirmed (no certificate for it)"] * int(leaf.sum()))
        for b in np.flatnonzero(reluplex):
            phases = phases_of(relaxation, int(b))
            for t in np.flatnonzero(open_targets[b]):
                self.check_time()
                outcome = self.leaf_solver(int(t), self.region.lower[0], self.region.upper[0], phases)
                if outcome is None:  # too large for Reluplex: split further
                    leaf[b] = False
                    break
                stats.leaves += 1
                if outcome.status == "sat":
                    raise _Stop(SearchOutcome("sat", outcome.inputs, disjunct=int(t)))
                if outcome.status == "timeout":
                    raise _Stop(SearchOutcome("timeout", reason=outcome.reason))
                if outcome.status == "unsat":
                    open_targets[b, t] = False
                else:
                    self.undecided.append(outcome.reason or outcome.status)
            refuted[b] = leaf[b] and not open_targets[b].any()
        self.proven += float(np.sum(0.5 ** depth[refuted]))
        rest = np.flatnonzero(~leaf & ~refuted)
        if rest.size:
            values = np.where(open_targets, values, np.inf)
            self.pool.push(_pack(relaxation.take(rest), params.take(rest), values[rest], depth[rest], node[rest]))

    def candidates(self, points: np.ndarray, t: int) -> None:
        found = _check_vertices(self.chain, self.targets[t], points, self.n_x, lambda v: self.confirm(v, t), self.stats)
        if found is not None:
            raise _Stop(SearchOutcome("sat", found, disjunct=t))

    def attack(self) -> None:
        """PGD from the pool's most promising sub-problems, for the target each one's bound is lowest for."""
        k = min(ATTACK_STARTS, self.pool.size)
        values = self.pool.view("value")
        index = np.argpartition(values, k - 1)[:k] if k < self.pool.size else np.arange(self.pool.size)
        hardest = self.pool.view("values")[index].argmin(axis=1)
        for t in np.unique(hardest):
            rows = index[hardest == t]
            found = _attack_from_pool(
                self.chain, self.targets[t], self.region, self.pool, rows, int(t), self.layers, self.objective, self.rng,
                self.options, lambda v, t=t: self.confirm(v, int(t)), self.stats,
            )
            if found is not None:
                raise _Stop(SearchOutcome("sat", found, disjunct=int(t)))


def _check_vertices(chain, target: Disjunction, points: np.ndarray, n_x: int, confirm, statistics) -> np.ndarray | None:
    """Evaluate the bounds' minimising points; confirm the first few that satisfy the rows."""
    if points.shape[0] == 0:
        return None
    y = chain.evaluate(points[:, :n_x])
    margins = np.concatenate([points, y], axis=1) @ target.rows.T - target.rhs
    worst = margins.max(axis=1) if margins.shape[1] else np.zeros(points.shape[0])
    statistics.candidates_checked += points.shape[0]
    for i in np.argsort(worst)[:4]:
        if worst[i] <= 0:
            if confirm(points[i]):
                return points[i]
            statistics.candidates_rejected += 1
    return None


def _attack_from_pool(chain, target, region, pool, index, t, layers, objective, rng, options, confirm, statistics):
    """PGD on target ``t`` from the bound-minimising points of the pool's sub-problems ``index``."""
    k = index.size
    arrays = {name: a[index] for name, a in pool.arrays.items()}
    relaxation, params = _unpack(arrays, layers)
    items = Items(np.arange(k), np.full(k, t), np.arange(k))
    sub_region = region.take(np.zeros(k, dtype=np.int64))
    p = alpha_crown.bound(chain, sub_region, relaxation, objective.take(items.target), _item_params(params, items))
    starts = p.vertex[:, 0, :]
    starts = starts + rng.normal(0.0, 0.05, starts.shape) * (region.upper - region.lower)
    lower, upper = region.lower[0], region.upper[0]
    points, values = attack(chain, lower, upper, target.rows, target.rhs, rng, starts=starts, steps=options.attack.steps)
    statistics.falsification_samples += points.shape[0] * options.attack.steps
    for i in np.argsort(values)[:4]:
        if values[i] <= 0 and confirm(points[i]):
            return points[i]
    return None
