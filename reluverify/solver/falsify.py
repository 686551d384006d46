"""Cheap counterexample search before (and during) the proof: sampling and a gradient attack.

A *conjunctive target* is ``rows @ [x; y] <= rhs`` over the network inputs ``x`` and outputs
``y``; its *violation* at x is ``max_r (rows_r @ [x; N(x)] - rhs_r)``. A point with
violation <= 0 satisfies it. Every function here only proposes points; nothing is
reported until :mod:`reluverify.solver.confirm` has checked it with onnxruntime.
"""

from __future__ import annotations

import numpy as np

from reluverify import linear_ops as lops
from reluverify.network import ReluChain


def violations(chain: ReluChain, x: np.ndarray, rows: np.ndarray, rhs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Violation of each point (batch,) -- <= 0 means the target holds there.

    ``mask`` (batch, rows), when given, selects the rows of each point's own target.
    """
    n = chain.input_size
    y = chain.evaluate(x)
    margins = x @ rows[:, :n].T + y @ rows[:, n:].T - rhs
    if mask is not None:
        margins = np.where(mask, margins, -np.inf)
    return margins.max(axis=1) if margins.shape[1] else np.full(x.shape[0], -np.inf)


def _violation_gradient(chain: ReluChain, x: np.ndarray, rows: np.ndarray, rhs: np.ndarray, mask: np.ndarray | None = None):
    """Violation and its (sub)gradient with respect to x, batched (``mask`` as in :func:`violations`)."""
    n = chain.input_size
    y, pre = chain.forward(x)
    margins = x @ rows[:, :n].T + y @ rows[:, n:].T - rhs
    if mask is not None:
        margins = np.where(mask, margins, -np.inf)
    worst = np.argmax(margins, axis=1)
    grad = rows[worst, n:]  # (B, m): d violation / d y
    grad = lops.backward(chain.weights[-1], grad)
    for layer in range(len(pre) - 1, -1, -1):
        grad = grad * (pre[layer] > 0)
        grad = lops.backward(chain.weights[layer], grad)
    grad = grad + rows[worst, :n]
    return margins[np.arange(x.shape[0]), worst], grad


def random_samples(rng: np.random.Generator, lower: np.ndarray, upper: np.ndarray, count: int) -> np.ndarray:
    """Uniform samples in the box, plus its centre and (for few inputs) its corners."""
    n = lower.shape[0]
    points = [0.5 * (lower + upper)[None, :]]
    if n <= 8:
        corners = np.array(np.meshgrid(*[[0.0, 1.0]] * n)).reshape(n, -1).T
        points.append(lower + corners * (upper - lower))
    points.append(rng.uniform(lower, upper, size=(count, n)))
    return np.concatenate(points, axis=0)


def attack(
    chain: ReluChain,
    lower: np.ndarray,
    upper: np.ndarray,
    rows: np.ndarray,
    rhs: np.ndarray,
    rng: np.random.Generator,
    starts: np.ndarray | None = None,
    restarts: int = 8,
    steps: int = 60,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Projected sign-gradient descent on the violation from several starts (PGD).

    Returns the best point of every start and its violation; the search of a start stops
    as soon as its violation is negative. With ``mask`` (starts, rows), each start attacks
    its own target (several disjuncts attacked in one batch).
    """
    n = lower.shape[0]
    width = upper - lower
    if starts is None:
        starts = np.concatenate([0.5 * (lower + upper)[None, :], rng.uniform(lower, upper, size=(max(restarts - 1, 0), n))])
    x = np.clip(starts, lower, upper)
    best_x = x.copy()
    best_v = np.full(x.shape[0], np.inf)
    for step in range(steps):
        value, grad = _violation_gradient(chain, x, rows, rhs, mask)
        improved = value < best_v
        best_v = np.where(improved, value, best_v)
        best_x[improved] = x[improved]
        active = best_v >= 0
        if not np.any(active):
            break
        size = 0.25 * (1.0 - step / steps) ** 2 + 1e-3
        x = np.where(active[:, None], np.clip(x - size * width * np.sign(grad), lower, upper), x)
    value = violations(chain, x, rows, rhs, mask)
    improved = value < best_v
    best_v = np.where(improved, value, best_v)
    best_x[improved] = x[improved]
    return best_x, best_v


def polish(
    chain: ReluChain,
    x: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    rows: np.ndarray,
    rhs: np.ndarray,
    steps: int = 20,
) -> np.ndarray:
    """Small gradient steps that push a boundary point strictly inside the target (if it can)."""
    point = x[None, :].copy()
    if rows.shape[0] == 0:
        return point[0]  # a target without rows holds everywhere: nothing to push
    best, best_v = point.copy(), violations(chain, point, rows, rhs)[0]
    size = 1e-6 * (1.0 + np.abs(upper - lower))
    for _ in range(steps):
        value, grad = _violation_gradient(chain, point, rows, rhs)
        norm = np.abs(grad).max()
        if norm == 0:
            break
        point = np.clip(point - size * grad / norm, lower, upper)
        v = violations(chain, point, rows, rhs)[0]
        if v < best_v:
            best, best_v = point.copy(), v
        size = size * 2.0
    return best[0]
