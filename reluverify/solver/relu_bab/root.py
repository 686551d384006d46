"""The root of a search: the pre-activation bounds on the whole region, and every target's optimised
bound there (the search's first sub-problem).

Invariant: the root's bounds hold for every input of the region (the layer bounds they start from
are sound, and any slopes give sound tightened ones); the disjuncts of one box share them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from reluverify.network import ReluChain
from reluverify.solver.bounds import alpha_crown
from reluverify.solver.options import SolverOptions
from reluverify.solver.relu_bab.ascent import bound_settings, intermediate_settings
from reluverify.solver.relu_bab.targets import Disjunction, objectives


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
        relaxation = alpha_crown.tighten_intermediate(chain, region, relaxation, intermediate_settings(), deadline=deadline,
                                                      record=record)
    return RootBounds(relaxation, time.monotonic() - started, record or [])


@dataclass
class RootSolution:
    """The optimised bounds of the targets on their whole region (the search's first sub-problem)."""

    values: np.ndarray  # (T,)
    params: alpha_crown.Parameters  # (1, T, ...)
    vertices: np.ndarray  # (T, n_v): per target the box point minimising its bound

    @property
    def value(self) -> float:
        return float(self.values.min())


def bound_root(
    chain: ReluChain, targets: list[Disjunction], region: alpha_crown.Region, root: RootBounds, options: SolverOptions
) -> RootSolution:
    """Optimise every target's bound on the whole region (no splits), one item per target."""
    layers = len(chain.weights) - 1
    count = len(targets)
    objective = objectives(targets, region.lower.shape[1])
    zeros = np.zeros(count, dtype=np.int64)
    relaxation, items_region = root.relaxation.take(zeros), region.take(zeros)
    params = alpha_crown.initial_parameters(relaxation, 1, layers, items_region, with_beta=True)
    params.weights = alpha_crown.uniform_weights(count, 1, objective)
    value, params, p = alpha_crown.optimise(chain, items_region, relaxation, objective, params,
                                            bound_settings(options, root=True))
    gather = lambda a: None if a is None else a[:, 0][None]  # noqa: E731  (T, 1, ...) -> (1, T, ...)
    joint = alpha_crown.Parameters(
        [gather(a) for a in params.alpha], None if params.beta is None else [gather(b) for b in params.beta],
        gather(params.gamma), gather(params.weights),
    )
    return RootSolution(value[:, 0].astype(np.float64), joint, p.vertex[:, 0, :].copy())
