"""Pairs of close inputs whose outputs differ most: the search for witnesses of Def. 2's violations.

A pair is parametrised as ``(x1, d)`` with ``x2 = x1 + d``: ``x1`` in the domain ``D``, ``d`` in the
ball ``||d|| <= delta`` (L-inf or L1) and ``x2`` in ``D``, so every point the search visits is a pair
of the property (sampling ``x1`` and ``x2`` independently almost never is). For one output ``l`` the
objective is ``y_l(x1 + d) - y_l(x1)``, ascended by projected sign-gradient steps from many starts:
random ``x1``, with ``d`` at the ball's vertices (where a locally linear network's difference is
largest). Only a proposal: a pair is reported after its outputs are confirmed by onnxruntime.
"""

from __future__ import annotations

import numpy as np

from reluverify import linear_ops as lops
from reluverify.network import ReluChain


def project_l1(d: np.ndarray, radius: float) -> np.ndarray:
    """The Euclidean projection of each row of ``d`` onto the L1 ball of ``radius`` (Duchi et al. 2008)."""
    inside = np.abs(d).sum(axis=1) <= radius
    if np.all(inside):
        return d
    magnitude = np.abs(d)
    ordered = -np.sort(-magnitude, axis=1)
    cumulative = np.cumsum(ordered, axis=1) - radius
    index = np.arange(1, d.shape[1] + 1)
    count = (ordered - cumulative / index > 0).sum(axis=1)
    theta = cumulative[np.arange(d.shape[0]), np.maximum(count, 1) - 1] / np.maximum(count, 1)
    projected = np.sign(d) * np.maximum(magnitude - theta[:, None], 0.0)
    return np.where(inside[:, None], d, projected)


def project(x1: np.ndarray, d: np.ndarray, lower: np.ndarray, upper: np.ndarray, delta: float,
            norm: str) -> tuple[np.ndarray, np.ndarray]:
    """``x1`` into ``D``, then ``d`` into the ball and into ``D - x1`` (so that ``x1 + d`` lies in ``D``)."""
    x1 = np.clip(x1, lower, upper)
    d = np.clip(d, -delta, delta) if norm == "inf" else project_l1(d, delta)
    return x1, np.clip(d, lower - x1, upper - x1)


def _gradient(chain: ReluChain, x: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs at ``x`` (P, m) and the gradient of output ``output[p]`` at each point (P, n)."""
    y, pre = chain.forward(x)
    grad = np.zeros((x.shape[0], y.shape[1]))
    grad[np.arange(x.shape[0]), output] = 1.0
    grad = lops.backward(chain.weights[-1], grad)
    for layer in range(len(pre) - 1, -1, -1):
        grad = lops.backward(chain.weights[layer], grad * (pre[layer] > 0))
    return y, grad


def difference(chain: ReluChain, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """``y(x2) - y(x1)`` per pair (P, m)."""
    return chain.evaluate(x2) - chain.evaluate(x1)


def pair_attack(chain: ReluChain, lower: np.ndarray, upper: np.ndarray, delta: float, norm: str,
                x1: np.ndarray, d: np.ndarray, output: np.ndarray, steps: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ascend ``y_l(x1 + d) - y_l(x1)``, ``l = output[p]``, from the starts ``(x1, d)`` (P, n) each: the
    best pair of each start (``x1``, ``x2``) and its difference in that output (P,)."""
    x1, d = project(x1, d, lower, upper, delta, norm)
    rows = np.arange(x1.shape[0])
    best1, best2 = x1.copy(), x1 + d
    best = difference(chain, best1, best2)[rows, output]
    width = upper - lower
    for step in range(steps):
        y1, g1 = _gradient(chain, x1, output)
        y2, g2 = _gradient(chain, x1 + d, output)
        value = y2[rows, output] - y1[rows, output]
        better = value > best
        best = np.where(better, value, best)
        best1[better], best2[better] = x1[better], (x1 + d)[better]
        size = 0.1 * (1.0 - step / steps) ** 2 + 1e-3
        # x1 moves the pair along the domain; d turns towards the direction that opens the difference
        x1 = x1 + size * width * np.sign(g2 - g1)
        d = d + 0.5 * delta * np.sign(g2) if norm == "inf" else d + delta * g2 / np.maximum(np.abs(g2).sum(axis=1, keepdims=True), 1e-300)
        x1, d = project(x1, d, lower, upper, delta, norm)
    value = difference(chain, x1, x1 + d)[rows, output]
    better = value > best
    best1[better], best2[better] = x1[better], (x1 + d)[better]
    return best1, best2, np.where(better, value, best)


def within(x1: np.ndarray, x2: np.ndarray, lower: np.ndarray, upper: np.ndarray, delta: float,
           norm: str) -> np.ndarray:
    """``x2`` (P, n) moved so that, in float64 as computed, it lies in ``D`` and ``|x2 - x1| <= delta``
    (L-inf: each coordinate) or ``sum |x2 - x1| <= delta`` (L1): ``x1 + d`` may overshoot the radius by
    a rounding step, and a pair of the property must not."""
    x2 = np.clip(x2, lower, upper)
    if norm == "inf":
        for _ in range(4):  # each step moves a coordinate one float towards x1
            over = np.abs(x2 - x1) > delta
            if not np.any(over):
                break
            x2 = np.where(over, np.nextafter(x2, x1), x2)
        return np.where(np.abs(x2 - x1) > delta, x1, x2)
    for _ in range(4):
        over = np.abs(x2 - x1).sum(axis=1) > delta
        if not np.any(over):
            break
        x2 = np.where(over[:, None], x1 + (x2 - x1) * (1.0 - 1e-12), x2)
    return np.where((np.abs(x2 - x1).sum(axis=1) > delta)[:, None], x1, x2)


def vertex_starts(rng: np.random.Generator, lower: np.ndarray, upper: np.ndarray, delta: float, norm: str,
                  count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` starts: ``x1`` uniform in ``D``, ``d`` a random vertex of the ball (sign vectors times
    ``delta`` for L-inf, ``+-delta`` on one coordinate for L1), projected into ``D``."""
    n = lower.shape[0]
    x1 = rng.uniform(lower, upper, size=(count, n))
    if norm == "inf":
        d = delta * rng.choice([-1.0, 1.0], size=(count, n))
    else:
        d = np.zeros((count, n))
        d[np.arange(count), rng.integers(0, n, count)] = delta * rng.choice([-1.0, 1.0], size=count)
    return project(x1, d, lower, upper, delta, norm)
