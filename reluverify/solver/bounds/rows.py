"""Linear bounds of rows over the outputs and inputs of a ReLU chain, given its layer bounds.

* :func:`row_lower_bounds` -- a backward (CROWN/DeepPoly) pass from linear rows over the outputs and
  inputs: a linear lower bound of each row as a function of the input, and its minimum over the box;
* :func:`gradient_magnitude` -- interval bounds of a row's gradient (input splitting's choice of
  dimension);
* :func:`dual_lower_bound` and :func:`conjunction_lower_bound` -- lower bounds of linear functions
  over a box with extra rows, or of the maximum of several (a conjunction), by weak duality.

Each is sound for every input in the box whose pre-activations lie in the given
:class:`~reluverify.solver.bounds.deeppoly.LayerBounds`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify import linear_ops as lops
from reluverify.network import ReluChain
from reluverify.solver.bounds.relaxation import lines
from reluverify.solver.bounds.deeppoly import LayerBounds


@dataclass
class RowBounds:
    """Lower bounds of rows on each box.

    ``coef @ x + const`` is a linear lower bound valid on the box; ``lower`` is at least its
    minimum (it also takes interval bounds at intermediate layers, which can be tighter).
    """

    lower: np.ndarray  # (B, R)
    coef: np.ndarray  # (B, R, n)
    const: np.ndarray  # (B, R)


def row_lower_bounds(
    chain: ReluChain,
    lower: np.ndarray,
    upper: np.ndarray,
    layer_bounds: LayerBounds,
    out_rows: np.ndarray,
    in_rows: np.ndarray | None = None,
    rhs: np.ndarray | None = None,
) -> RowBounds:
    """Lower bounds of ``out_rows @ y + in_rows @ x - rhs`` over each box (backward pass).

    ``out_rows`` is (R, m) over the chain outputs, ``in_rows`` (R, n) over its inputs.
    """
    lower = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    upper = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    batch, n = lower.shape
    rows = out_rows.shape[0]
    last = chain.weights[-1]
    coef = np.broadcast_to(lops.backward(last, out_rows), (batch, rows, lops.shape(last)[1]))
    const = np.broadcast_to(out_rows @ chain.biases[-1], (batch, rows)).copy()
    if rhs is not None:
        const -= rhs
    # the rows' input part is known exactly; its minimum over the box joins every intermediate bound
    mid, rad = 0.5 * (lower + upper), 0.5 * (upper - lower)
    input_part = 0.0
    if in_rows is not None:
        input_part = (mid @ in_rows.T - rad @ np.abs(in_rows).T)[:, :]
    best = np.full((batch, rows), -np.inf)
    for layer in range(len(chain.weights) - 2, -1, -1):
        lo, hi = layer_bounds.pre_lower[layer], layer_bounds.pre_upper[layer]
        # interval bound at this layer: relu outputs lie in [relu(lo), relu(hi)]
        f_lo, f_hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
        pos, neg = np.maximum(coef, 0.0), np.minimum(coef, 0.0)
        at_layer = np.matmul(pos, f_lo[:, :, None])[:, :, 0] + np.matmul(neg, f_hi[:, :, None])[:, :, 0]
        best = np.maximum(best, at_layer + const + input_part)
        alpha, slope, intercept = lines(lo, hi)
        # a negative coefficient takes the chord (slope, intercept), a positive one alpha * z
        const = const + np.matmul(neg, intercept[:, :, None])[:, :, 0]
        coef = coef * np.where(coef < 0.0, slope[:, None, :], alpha[:, None, :])
        const = const + coef @ chain.biases[layer]
        w = chain.weights[layer]
        coef = lops.backward(w, coef.reshape(-1, lops.shape(w)[0])).reshape(batch, rows, lops.shape(w)[1])
    if in_rows is not None:
        coef = coef + in_rows[None, :, :]
    low = np.einsum("brn,bn->br", coef, mid) - np.einsum("brn,bn->br", np.abs(coef), rad) + const
    # every bound is valid; report the best (the linear form stays the input-level one)
    return RowBounds(np.maximum(low, best), coef, const)


def gradient_magnitude(chain: ReluChain, layer_bounds: LayerBounds, out_rows: np.ndarray, in_rows: np.ndarray) -> np.ndarray:
    """Upper bounds of ``|d row / d x_i|`` over each box (interval back-propagation, as ReluVal).

    ``out_rows`` is (B, K, m) and ``in_rows`` (B, K, n): K rows per box. Active ReLUs pass the
    gradient, inactive ones block it, unstable ones scale it by an unknown factor in [0, 1].
    Returns (B, K, n); multiplied by the box widths it is ReluVal's *smear*, the estimate of
    how much each input dimension can move the row.
    """
    b0, k0 = out_rows.shape[:2]
    centre = lops.backward(chain.weights[-1], out_rows.reshape(b0 * k0, -1)).reshape(b0, k0, -1)  # exact w.r.t. the last hidden layer
    radius = np.zeros_like(centre)
    for layer in range(len(chain.weights) - 2, -1, -1):
        lo, hi = layer_bounds.pre_lower[layer], layer_bounds.pre_upper[layer]
        active = (lo >= 0)[:, None, :]
        unstable = ((lo < 0) & (hi > 0))[:, None, :]
        g_lo, g_hi = centre - radius, centre + radius
        # multiply the interval [g_lo, g_hi] by the mask: 1 (active), 0 (inactive), [0, 1] (unstable)
        new_lo = np.where(active, g_lo, np.where(unstable, np.minimum(g_lo, 0.0), 0.0))
        new_hi = np.where(active, g_hi, np.where(unstable, np.maximum(g_hi, 0.0), 0.0))
        centre, radius = 0.5 * (new_lo + new_hi), 0.5 * (new_hi - new_lo)
        w = chain.weights[layer]
        b, k, width = centre.shape
        centre = lops.backward(w, centre.reshape(-1, width)).reshape(b, k, -1)
        radius = lops.backward(lops.abs_bound(w), radius.reshape(-1, width)).reshape(b, k, -1)
    return np.abs(centre + in_rows) + radius


def dual_lower_bound(
    coef: np.ndarray,
    const: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    rows: np.ndarray,
    rhs: np.ndarray,
    iterations: int = 40,
) -> np.ndarray:
    """A lower bound of ``coef @ x + const`` over ``box ∩ {rows @ x <= rhs}`` (Lagrangian dual).

    For every ``lam >= 0``, ``min_{x in box} (coef + lam @ rows) @ x - lam @ rhs + const`` is a
    valid lower bound (weak duality); ``lam`` is improved by projected subgradient ascent and the
    best bound seen is returned, so the result is sound however few iterations run. It recovers
    what a box alone loses, e.g. the coupling ``|x1 - x2| <= delta`` of two network copies.
    Shapes: ``coef`` (B, R, n), ``const`` (B, R), ``lower``/``upper`` (B, n), ``rows`` (m, n).
    """
    lo, hi = lower[:, None, :], upper[:, None, :]
    lam = np.zeros(coef.shape[:2] + (rows.shape[0],))
    scale = np.abs(coef).max(axis=2, keepdims=True) / max(float(np.abs(rows).max()), 1e-300)
    best = np.full(coef.shape[:2], -np.inf)
    for k in range(iterations):
        shifted = coef + lam @ rows
        vertex = np.where(shifted > 0, lo, hi)
        value = np.einsum("brn,brn->br", shifted, vertex) - lam @ rhs + const
        best = np.maximum(best, value)
        gradient = vertex @ rows.T - rhs  # d value / d lam at this vertex
        lam = np.maximum(lam + scale * gradient / np.sqrt(k + 1.0), 0.0)  # any lam is sound; steps ~ 1/sqrt(k)
    return best


def conjunction_lower_bound(
    coef: np.ndarray,
    const: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    owner: np.ndarray,
    iterations: int = 30,
) -> np.ndarray:
    """A lower bound of ``max_{r in d} (coef_r @ x + const_r)`` over each box, per conjunction ``d``.

    A disjunct (a conjunction of rows ``row_r <= 0``) has no solution in a box when this is
    positive, even where no single row is positive throughout the box: for every ``lam`` on the
    simplex over the conjunction's rows, ``min_{x in box} sum_r lam_r (coef_r @ x + const_r)``
    bounds the maximum from below (weak duality), so the result is sound whatever ``lam`` the
    exponentiated-gradient ascent reaches; the single rows (``lam`` a vertex) are included.
    Shapes: ``coef`` (B, R, n), ``const`` (B, R), ``lower``/``upper`` (B, n), ``owner`` (D, R)
    boolean; returns (B, D).
    """
    mid, rad = 0.5 * (lower + upper), 0.5 * (upper - lower)
    single = np.einsum("brn,bn->br", coef, mid) - np.einsum("brn,bn->br", np.abs(coef), rad) + const  # (B, R)
    best = np.where(owner[None, :, :], single[:, None, :], -np.inf).max(axis=2)  # (B, D)
    for d in np.flatnonzero(owner.sum(axis=1) > 1):
        rows = np.flatnonzero(owner[d])
        c, k = coef[:, rows, :], const[:, rows]  # (B, r, n), (B, r)
        lam = np.full(k.shape, 1.0 / rows.size)
        for step in range(iterations):
            combined = np.einsum("br,brn->bn", lam, c)
            vertex = np.where(combined > 0, lower, upper)  # the box corner minimising the combination
            values = np.einsum("brn,bn->br", c, vertex) + k  # each row at that corner
            best[:, d] = np.maximum(best[:, d], np.einsum("br,br->b", lam, values))
            spread = values.max(axis=1, keepdims=True) - values.min(axis=1, keepdims=True)
            rate = 2.0 / ((spread + 1e-12) * np.sqrt(step + 1.0))
            # ascent on the simplex: weight moves towards the rows that are largest at the corner
            lam = lam * np.exp(np.clip(rate * (values - values.max(axis=1, keepdims=True)), -50.0, 0.0))
            lam /= lam.sum(axis=1, keepdims=True)
    return best
