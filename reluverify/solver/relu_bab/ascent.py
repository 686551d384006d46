"""How the search optimises its bounds: the iteration counts and Adam step sizes of every ascent,
kept together (:class:`~reluverify.solver.bounds.alpha_crown.OptimiseSettings`).

Four ascents: the root's intermediate bounds, the root's bound of every target, each new pair of
children's bounds (warm-started from their parent's parameters), and the re-optimised intermediate
bounds of children on deep networks (started cold every time). Whatever they reach is sound: any
parameters in range give a valid bound, so these numbers trade time for tightness only.
"""

from __future__ import annotations

from reluverify.solver.bounds import alpha_crown
from reluverify.solver.options import SolverOptions

INTERMEDIATE_ITERATIONS = 20
"""Steps per hidden layer for the root's intermediate bounds (the engine's default step sizes)."""
ROOT_ITERATIONS = 60
"""Steps of the root bound (slopes, row weights, input-row multipliers) ..."""
ROOT_LR_ALPHA_FACTOR = 10.0
"""... whose slopes start from the heuristic ones and take steps this many times larger than a
warm-started child's."""
ITERATIONS = 10
"""Steps of each new pair of children (warm-started from their parent) ..."""
LR_ALPHA = 0.01
"""... with this step size for the slopes (alpha): large Adam steps from a good start lose the bound
for dozens of iterations ..."""
LR_BETA = 0.05
"""... and this one for the split and input-row multipliers (beta, gamma)."""
REOPTIMISE_LR_ALPHA, REOPTIMISE_LR_BETA = 0.3, 0.2
"""Step sizes of the re-optimised intermediate bounds, which start cold (heuristic slopes, no
multipliers) every time and so take larger steps than a warm-started ascent."""


def intermediate_settings() -> alpha_crown.OptimiseSettings:
    """The root's intermediate bounds, layer by layer."""
    return alpha_crown.OptimiseSettings(iterations=INTERMEDIATE_ITERATIONS)


def bound_settings(options: SolverOptions, root: bool = False) -> alpha_crown.OptimiseSettings:
    """A target's bound: at the root (heuristic slopes: large steps), or a child's (warm-started:
    small ones); the ascent stops once every row is refuted by ``tolerances.prune_margin``."""
    return alpha_crown.OptimiseSettings(
        iterations=ROOT_ITERATIONS if root else ITERATIONS,
        lr_alpha=LR_ALPHA * (ROOT_LR_ALPHA_FACTOR if root else 1.0),
        lr_beta=LR_BETA,
        lr_gamma=LR_BETA,
        stop_above=options.tolerances.prune_margin,
        restrict=True,
    )


def reoptimise_settings(iterations: int) -> alpha_crown.OptimiseSettings:
    """Children's intermediate bounds optimised again, ``iterations`` steps a layer."""
    return alpha_crown.OptimiseSettings(iterations=iterations, lr_alpha=REOPTIMISE_LR_ALPHA,
                                        lr_beta=REOPTIMISE_LR_BETA, restrict=True)
