"""Counterexample proposals on a general DAG: uniform sampling and a projected gradient attack.

The *violation* of a point ``v`` for a target ``rows @ [v; y] <= rhs`` is
``max_r (rows_r @ [v; N(v)] - rhs_r)``: the target holds where it is <= 0. Everything here only
*proposes* points; nothing is reported before onnxruntime confirms it
(:mod:`reluverify.solver.confirm`). Gradients come from
:mod:`~reluverify.solver.nonlinear.gradient` (numpy reverse mode).

Batches mix targets: each point carries its own rows (padded with rows that never bind,
``0 <= +inf``) and its own box.
"""

from __future__ import annotations

import numpy as np

from reluverify.network import Network
from reluverify.solver.nonlinear.gradient import input_gradient


def stack_rows(rows_list: list[np.ndarray], rhs_list: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Targets' rows padded to one count: (T, R, width) and (T, R); a padding row ``0 <= inf`` never binds."""
    count = max(max(r.shape[0] for r in rows_list), 1)
    width = rows_list[0].shape[1]
    rows = np.zeros((len(rows_list), count, width))
    rhs = np.full((len(rows_list), count), np.inf)
    for t, (r, b) in enumerate(zip(rows_list, rhs_list)):
        rows[t, : r.shape[0]] = r
        rhs[t, : r.shape[0]] = b
    return rows, rhs


def margins(network: Network, points: np.ndarray, outputs: np.ndarray, rows: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``rows @ [v; y] - rhs`` per point: rows (P, R, width) or (R, width) -> (P, R)."""
    full = np.concatenate([points, outputs], axis=1)
    if rows.ndim == 2:
        return full @ rows.T - rhs
    with np.errstate(invalid="ignore"):
        return np.einsum("prw,pw->pr", rows, full) - rhs


def relative_violations(points: np.ndarray, outputs: np.ndarray, rows: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Each point's largest ``(row @ [v; y] - rhs) / (1 + |row| @ |[v; y]| + |rhs|)`` (P,).

    The scale of :func:`reluverify.solver.confirm.confirm`'s tolerance: a point whose relative
    violation is at most that tolerance may be confirmed, even if it misses a row by round-off.
    """
    full = np.concatenate([points, outputs], axis=1)
    if rows.ndim == 2:
        rows = np.broadcast_to(rows[None], (full.shape[0],) + rows.shape)
        rhs = np.broadcast_to(rhs[None], (full.shape[0],) + rhs.shape)
    finite = np.isfinite(rhs)
    bound = np.where(finite, rhs, 0.0)
    margin = np.einsum("prw,pw->pr", rows, full) - bound
    scale = 1.0 + np.einsum("prw,pw->pr", np.abs(rows), np.abs(full)) + np.abs(bound)
    value = np.where(finite, margin / scale, -np.inf)
    return value.max(axis=1) if value.shape[1] else np.full(full.shape[0], -np.inf)


def violations(network: Network, points: np.ndarray, rows: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """The violation of every point (P,) for its rows (see the module docstring)."""
    return margins(network, points, network.evaluate_all(points)[-1], rows, rhs).max(axis=1)


def pgd(
    network: Network,
    starts: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    rows: np.ndarray,
    rhs: np.ndarray,
    steps: int,
    goal: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """Projected sign-gradient descent of each point's violation inside its own box.

    ``starts``, ``lower``, ``upper`` are (P, n); ``rows`` (P, R, width), ``rhs`` (P, R). A point
    stops once its violation is below ``-goal`` (a margin that survives float32 round-off).
    Returns the best point of each start and its violation.
    """
    n = network.input_size
    x = np.clip(starts, lower, upper)
    width = upper - lower
    best_x, best_v = x.copy(), np.full(x.shape[0], np.inf)
    index = np.arange(x.shape[0])
    for step in range(steps + 1):
        values = network.evaluate_all(x)
        m = margins(network, x, values[-1], rows, rhs)
        worst = m.argmax(axis=1)
        value = m[index, worst]
        better = value < best_v
        best_v = np.where(better, value, best_v)
        best_x[better] = x[better]
        active = best_v > -goal
        if step == steps or not np.any(active):
            break
        chosen = rows[index, worst]  # (P, width)
        grad = input_gradient(network, values, chosen[:, n:]) + chosen[:, :n]
        size = 0.25 * (1.0 - step / steps) ** 2 + 2e-3
        moved = np.clip(x - size * width * np.sign(grad), lower, upper)
        x = np.where(active[:, None], moved, x)
    return best_x, best_v
