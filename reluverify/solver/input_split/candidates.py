"""Counterexample candidates in bounded boxes: each box's centre and, per alive target, the vertex that
minimises the linear lower bound of the target's tightest row (:func:`try_candidates`); and a short
gradient attack inside the boxes closest to holding a target (:func:`attack_open_boxes`). A candidate
counts only once ``confirm`` has confirmed it."""

from __future__ import annotations

from typing import Callable

import numpy as np

from reluverify.solver import falsify
from reluverify.solver.input_split.boxes import Bounded
from reluverify.solver.input_split.problem import Problem
from reluverify.solver.result import Statistics

ATTACK_BOXES = 32
"""A gradient attack runs inside this many open boxes, those closest to holding a target ..."""
ATTACK_STEPS = 60
"""... with this many steps."""

Confirm = Callable[[np.ndarray, int], bool]


def vertex_points(coef, tight, lo, hi):
    """Per box and target, the vertex of the box that minimises the linear lower bound of the target's
    tightest row: (B, D, n)."""
    vertex_coef = np.take_along_axis(coef, tight[:, :, None], axis=1)  # (B, D, n)
    return np.where(vertex_coef > 0, lo[:, None, :], hi[:, None, :])


def try_candidates(problem: Problem, bounded: Bounded, tight: np.ndarray, statistics: Statistics,
                   confirm: Confirm) -> tuple[np.ndarray, int] | None:
    """The first confirmed candidate among the boxes' centres and vertices (``tight``: each target's
    tightest row per box), as (inputs, target position); None if none is confirmed."""
    boxes, n, rows, rhs = bounded.boxes, problem.n, problem.rows, problem.rhs
    lo, hi, alive = boxes.lower, boxes.upper, boxes.alive
    batch, d = alive.shape
    vertices = vertex_points(bounded.coef, tight, lo, hi)
    centres = 0.5 * (lo + hi)
    points = np.concatenate([centres[:, None, :], vertices], axis=1)  # (B, 1 + D, n)
    flat = points.reshape(-1, n)
    y = problem.chain.evaluate(flat)
    margins = flat @ rows[:, :n].T + y @ rows[:, n:].T - rhs  # (P, R)
    # target k holds at a point when all of its rows are <= 0
    holds = ~((margins > 0)[:, None, :] & problem.owner_matrix[None, :, :]).any(axis=2)  # (P, D)
    holds = holds.reshape(batch, 1 + d, d) & alive[:, None, :]
    statistics.candidates_checked += flat.shape[0]
    hits = np.argwhere(holds)
    for b, p, k in hits[:16]:
        x = points[b, p]
        if confirm(x, int(k)):
            return x, int(k)
        statistics.candidates_rejected += 1
    return None


def attack_open_boxes(problem: Problem, bounded: Bounded, vertices: np.ndarray, rng: np.random.Generator,
                      statistics: Statistics, confirm: Confirm) -> tuple[np.ndarray, int] | None:
    """A short gradient attack inside the open boxes that come closest to holding a target (the
    lowest bound on its rows' violation), each started from the vertex that minimises the target's
    tightest row (``vertices`` (B, D, n)): counterexamples in thin regions that the candidates at
    centres and vertices miss. The first confirmed point, as in :func:`try_candidates`."""
    owner_matrix, lo, hi = problem.owner_matrix, bounded.boxes.lower, bounded.boxes.upper
    bound = np.where(owner_matrix[None, :, :], bounded.lower[:, None, :], -np.inf).max(axis=2)  # (B, D)
    bound = np.where(bounded.boxes.alive, bound, np.inf)
    best_target = bound.argmin(axis=1)
    score = bound[np.arange(lo.shape[0]), best_target]
    boxes = np.argsort(score)[:ATTACK_BOXES]
    boxes = boxes[np.isfinite(score[boxes])]
    if boxes.size == 0:
        return None
    target = best_target[boxes]
    starts = vertices[boxes, target]
    mask = owner_matrix[target]  # each start attacks its own target's rows
    points, values = falsify.attack(problem.chain, lo[boxes], hi[boxes], problem.rows, problem.rhs, rng,
                                    starts=starts, steps=ATTACK_STEPS, mask=mask)
    statistics.candidates_checked += boxes.size
    # a clear violation only: on a near-tie the attack stops at float noise below the threshold, where
    # the exact answer may be unsat (such points would be sat only within the confirm tolerance)
    clear = -1e-7 * (1.0 + np.abs(problem.rhs).max(initial=0.0))
    for k in np.argsort(values)[:4]:
        if values[k] > clear:
            break
        if confirm(points[k], int(target[k])):
            return points[k], int(target[k])
        statistics.candidates_rejected += 1
    return None
