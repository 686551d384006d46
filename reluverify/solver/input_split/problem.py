"""What one input-splitting search decides: the network, its targets (disjuncts) with their rows stacked,
the input rows every target shares, and the optimised bounds that refute targets on a batch of boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify.linear_ops import shape as lops_shape
from reluverify.network import ReluChain
from reluverify.solver.bounds import alpha_crown
from reluverify.solver.bounds.deeppoly import LayerBounds
from reluverify.solver.input_split.parameters import ParameterLayout
from reluverify.solver.options import SolverOptions

WEIGHT_ITERATIONS = 10
"""A conjunction's rows, weighted, are back-substituted as one row; this many ascent steps choose the
weights (and the input rows' multipliers) per box."""


@dataclass(frozen=True)
class Target:
    """One disjunct as seen by the search: rows over ``[x; y]`` and right-hand sides."""

    index: int  # the disjunct's index in the query
    rows: np.ndarray
    rhs: np.ndarray


class Problem:
    """The targets of one search over the network ``chain``: their rows stacked (``rows`` (R, n + m),
    ``rhs`` (R,)), ``owner_matrix`` (D, R) marking each target's rows, and ``input_rows`` = (A, b),
    constraints ``A x <= b`` shared by every target (or None)."""

    def __init__(self, chain: ReluChain, targets: list[Target], options: SolverOptions,
                 input_rows: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.chain, self.targets, self.options, self.input_rows = chain, targets, options, input_rows
        self.n = chain.input_size
        self.rows = np.vstack([t.rows for t in targets])
        self.rhs = np.concatenate([t.rhs for t in targets])
        owner = np.concatenate([np.full(t.rhs.shape[0], k) for k, t in enumerate(targets)])
        self.owner_matrix = owner[None, :] == np.arange(len(targets))[:, None]  # (D, R)
        self.conjunctions = bool((self.owner_matrix.sum(axis=1) > 1).any())
        self.layer_sizes = [lops_shape(w)[0] for w in chain.weights[:-1]]
        self.layout = ParameterLayout(self.layer_sizes, 0 if input_rows is None else input_rows[0].shape[0],
                                      max((t.rhs.size for t in targets), default=0))

    def tightest_rows(self, lower: np.ndarray) -> np.ndarray:
        """Per box and target, the target's row whose lower bound (``lower`` (B, R)) is largest: (B, D)."""
        return np.where(self.owner_matrix[None, :, :], lower[:, None, :], -np.inf).argmax(axis=2)

    def optimised_refutations(self, lo, hi, alive, layer_bounds: LayerBounds, slopes: bool = True, warm=None):
        """The alive targets that optimised linear bounds (:mod:`~reluverify.solver.bounds.alpha_crown`: the rows'
        weights, input-row multipliers and, with ``slopes``, slopes and bound multipliers) refute on
        each box: a (B, D) mask, and per target the weights (k, R) and input-row multipliers (k, r)
        of its refuted boxes, in box order.

        ``warm`` = (packed (B, D, P), mask (B, D)), with ``slopes``: the ascent of a box and target in
        the mask starts from its packed parameters (any parameters give a sound bound, these only
        steer the ascent); the parameters each ascent ended with are written back into ``packed`` and
        the mask (where the target is not refuted)."""
        options = self.options
        refuted = np.zeros(alive.shape, dtype=bool)
        weights, gammas = [None] * len(self.targets), [None] * len(self.targets)
        relaxation = alpha_crown.Relaxation(layer_bounds.pre_lower, layer_bounds.pre_upper, size=lo.shape[0])
        rows, rhs = self.input_rows if self.input_rows is not None else (None, None)
        settings = alpha_crown.OptimiseSettings(iterations=options.input_split.alpha_iterations or 10,
                                                stop_above=options.tolerances.prune_margin)
        if not slopes:
            settings = alpha_crown.OptimiseSettings(iterations=WEIGHT_ITERATIONS, lr_alpha=0.0,
                                                    lr_beta=0.0, stop_above=options.tolerances.prune_margin)
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
            hit = value[:, 0] > options.tolerances.prune_margin
            refuted[boxes[hit], position] = True
            if warm is not None:
                warm[0][boxes, position] = self.layout.pack(best)
                warm[1][boxes, position] = ~hit
            weights[position] = best.weights[hit, 0, :]
            gammas[position] = None if best.gamma is None else best.gamma[hit, 0, :]
        return refuted, weights, gammas
