"""Children of a split: both phases of the chosen ReLU (and the implied phases) fixed, and their
pre-activation bounds computed again with their splits.

A child's bounds start as its parent's, with the split neuron's clamped to its phase. On networks
of at most :data:`TIGHTEN_MAX_RELUS` ReLUs the bounds above the split are computed again:
DeepPoly with the child's bounds as known bounds (:func:`tighten_children`), or on networks of 3 or
more hidden layers, every :data:`REOPTIMISE_EVERY` splits, an optimised bound with the splits'
multipliers (:func:`optimise_intermediate`), far tighter, at a cost that pays on deep networks only.

Invariant: the two children of a sub-problem partition its constrained region (``z >= 0`` or
``z <= 0``), and every bound of a child holds on its constrained region; so a child shown empty by
its bounds holds no counterexample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify.network import ReluChain
from reluverify.solver.bounds import alpha_crown
from reluverify.solver.bounds.deeppoly import deeppoly_bounds
from reluverify.solver.options import SolverOptions
from reluverify.solver.relu_bab.ascent import reoptimise_settings
from reluverify.solver.relu_bab.branching import Branching
from reluverify.solver.relu_bab.targets import repeat_region

TIGHTEN_MAX_RELUS = 2048
"""Children get new pre-activation bounds on networks with at most this many ReLUs (on larger CNNs
a batch of children costs seconds to re-bound)."""
REOPTIMISE_ITERATIONS = 7
"""Steps a layer of the re-optimised intermediate bounds ..."""
REOPTIMISE_EVERY = 2
"""... which a child gets when its depth is a multiple of this (in place of DeepPoly's)."""


def tightens_children(chain: ReluChain, options: SolverOptions) -> bool:
    """Whether a search's children get new pre-activation bounds (:data:`TIGHTEN_MAX_RELUS`; not when
    a proof is recorded: the checker recomputes only the root's)."""
    return not options.proof and chain.num_relus <= TIGHTEN_MAX_RELUS


def rebounds_deep_network(chain: ReluChain, options: SolverOptions) -> bool:
    """Children get new bounds on a network with 3 or more hidden layers: there the re-bounding is
    most of the work, which the ``auto`` choices of branching layer, joint search and
    re-optimisation follow."""
    return tightens_children(chain, options) and len(chain.weights) - 1 >= 3


@dataclass(frozen=True)
class NewBounds:
    """How one search's children get new intermediate bounds: DeepPoly's above their split
    (``tighten``), and on deep networks re-optimised every :data:`REOPTIMISE_EVERY` splits
    (``reoptimise``). Done as a child is made, so its own bound (and whether it is refuted at once)
    gains from them."""

    tighten: bool
    reoptimise: bool

    @staticmethod
    def of(chain: ReluChain, options: SolverOptions, proof: bool) -> "NewBounds":
        # a proof's children keep their parent's bounds, clamped by their phases (what the checker computes)
        tighten = not proof and tightens_children(chain, options)
        return NewBounds(tighten, tighten and rebounds_deep_network(chain, options))

    def apply(
        self, chain: ReluChain, region: alpha_crown.Region, child: alpha_crown.Relaxation, open_: np.ndarray,
        depth: np.ndarray, branching: Branching, deadline: float | None,
    ) -> tuple[alpha_crown.Relaxation, np.ndarray]:
        """The open children (``open_``, per child of :func:`make_children`) with new bounds (in place),
        and which children are still open (those the new bounds show empty are not)."""
        open_ = open_.copy()
        due = open_ & (depth % REOPTIMISE_EVERY == 0) if self.reoptimise else np.zeros_like(open_)
        if self.tighten and np.any(open_ & ~due):
            keep = np.flatnonzero(open_ & ~due)
            lowest = branching.layer.copy()  # the lowest layer with a phase newly fixed, per parent
            np.minimum.at(lowest, branching.implied[0], branching.implied[1])
            tightened, empty = tighten_children(chain, region, child.take(keep), np.concatenate([lowest, lowest])[keep])
            child = put(child, keep, tightened)
            open_[keep[empty]] = False
        if np.any(due):
            keep = np.flatnonzero(due)
            tightened, empty = optimise_intermediate(chain, repeat_region(region, keep.size), child.take(keep),
                                                     REOPTIMISE_ITERATIONS, deadline)
            child = put(child, keep, tightened)
            open_[keep[empty]] = False
        return child, open_


def fix(relaxation: alpha_crown.Relaxation, params: alpha_crown.Parameters, rows, layer, neuron, sign) -> None:
    """Split ``neuron`` of ``layer`` in sub-problems ``rows`` to phase ``sign`` (+1/-1), in place."""
    for j in np.unique(layer):
        sel = layer == j
        r, i, s = rows[sel], neuron[sel], sign[sel]
        relaxation.split[j][r, i] = s
        relaxation.lower[j][r, i] = np.where(s > 0, np.maximum(relaxation.lower[j][r, i], 0.0), relaxation.lower[j][r, i])
        relaxation.upper[j][r, i] = np.where(s < 0, np.minimum(relaxation.upper[j][r, i], 0.0), relaxation.upper[j][r, i])
        # the neuron's bound multipliers stay: with its bound clamped to 0 they weigh the split itself


def make_children(relaxation: alpha_crown.Relaxation, params: alpha_crown.Parameters, branching: Branching):
    """Both children of every sub-problem (first all active ones, then all inactive ones), with the
    implied phases fixed in both; each starts from a copy of its parent's bounds and parameters."""
    batch = relaxation.batch
    both = np.concatenate([np.arange(batch), np.arange(batch)])
    child = relaxation.take(both)
    child = alpha_crown.Relaxation(
        [a.copy() for a in child.lower], [a.copy() for a in child.upper], [a.copy() for a in child.split], child.batch
    )
    child_params = params.take(both).copy()
    b_imp, l_imp, n_imp, s_imp = branching.implied
    if b_imp.size:
        fix(child, child_params, np.concatenate([b_imp, b_imp + batch]), np.concatenate([l_imp, l_imp]),
            np.concatenate([n_imp, n_imp]), np.concatenate([s_imp, s_imp]))
    sign = np.concatenate([np.ones(batch, dtype=np.int8), -np.ones(batch, dtype=np.int8)])
    fix(child, child_params, np.arange(2 * batch), np.concatenate([branching.layer, branching.layer]),
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
    :func:`tighten_children` gives every child). The ascent starts from heuristic slopes and no
    multipliers every time (:func:`~reluverify.solver.relu_bab.ascent.reoptimise_settings`).
    """
    tightened = alpha_crown.tighten_intermediate(chain, region, relaxation, reoptimise_settings(iterations),
                                                 layers=range(1, len(chain.weights) - 1), with_beta=True, deadline=deadline)
    return tightened, tightened.infeasible()


def put(relaxation: alpha_crown.Relaxation, index: np.ndarray, part: alpha_crown.Relaxation) -> alpha_crown.Relaxation:
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
