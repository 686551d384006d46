"""Looking for counterexamples during the search: the points that minimise the bounds, and gradient
attacks started from the pool's most promising sub-problems.

Invariant: nothing is returned that ``confirm`` (onnxruntime on the original query) did not accept;
a point that only satisfies the rows on the network in float64 is a candidate, never an answer.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from reluverify.network import ReluChain
from reluverify.solver.bounds import alpha_crown
from reluverify.solver.falsify import attack
from reluverify.solver.options import SolverOptions
from reluverify.solver.relu_bab.pool import Pool, unpack
from reluverify.solver.relu_bab.targets import Disjunction, Items, item_params
from reluverify.solver.result import Statistics

ATTACK_STARTS = 16
"""An attack starts from this many sub-problems, those with the lowest bounds."""


def check_vertices(
    chain: ReluChain, target: Disjunction, points: np.ndarray, n_x: int, confirm, statistics: Statistics
) -> np.ndarray | None:
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


def attack_pool(
    chain: ReluChain, targets: list[Disjunction], region: alpha_crown.Region, pool: Pool, layers: int,
    objective: alpha_crown.Objective, rng: np.random.Generator, options: SolverOptions,
    confirm: Callable[[np.ndarray, int], bool], statistics: Statistics,
) -> tuple[np.ndarray, int] | None:
    """PGD from the pool's :data:`ATTACK_STARTS` most promising sub-problems, each for the target its
    bound is lowest for; a confirmed counterexample and its target, or None."""
    k = min(ATTACK_STARTS, pool.size)
    values = pool.view("value")
    index = np.argpartition(values, k - 1)[:k] if k < pool.size else np.arange(pool.size)
    hardest = pool.view("values")[index].argmin(axis=1)
    for t in np.unique(hardest):
        rows = index[hardest == t]
        found = attack_from_pool(chain, targets[t], region, pool, rows, int(t), layers, objective, rng, options,
                                 lambda v, t=t: confirm(v, int(t)), statistics)
        if found is not None:
            return found, int(t)
    return None


def attack_from_pool(chain, target, region, pool, index, t, layers, objective, rng, options, confirm, statistics):
    """PGD on target ``t`` from the bound-minimising points of the pool's sub-problems ``index``."""
    k = index.size
    arrays = {name: a[index] for name, a in pool.arrays.items()}
    relaxation, params = unpack(arrays, layers)
    items = Items(np.arange(k), np.full(k, t), np.arange(k))
    sub_region = region.take(np.zeros(k, dtype=np.int64))
    p = alpha_crown.bound(chain, sub_region, relaxation, objective.take(items.target), item_params(params, items))
    starts = p.vertex[:, 0, :]
    starts = starts + rng.normal(0.0, 0.05, starts.shape) * (region.upper - region.lower)
    lower, upper = region.lower[0], region.upper[0]
    points, values = attack(chain, lower, upper, target.rows, target.rhs, rng, starts=starts, steps=options.attack.steps)
    statistics.falsification_samples += points.shape[0] * options.attack.steps
    for i in np.argsort(values)[:4]:
        if values[i] <= 0 and confirm(points[i]):
            return points[i]
    return None
