"""Differential bounds: how much a ReLU chain's outputs can differ between two close inputs.

A *pair region* (one per batch item) holds the pairs ``(x1, x2)`` with ``x1`` in a box ``B1``, ``x2`` in
a box ``B2`` and ``d = x2 - x1`` in a box ``Δ`` (and, for the L1 norm, ``||d||_1 <= radius``). For a
domain ``D`` and a radius ``delta``, :func:`pair_region` makes the region of ``x1`` in a sub-box of
``D``: ``B2`` is ``B1`` grown by ``delta`` within ``D``, ``Δ`` the differences that keep ``x2`` in ``D``.

The bound works on differences, so it shrinks with ``delta`` rather than with the box of ``x1``:

* per hidden layer, the pre-activations of both copies are bounded on their own boxes (DeepPoly), and
  ``z2`` also by ``z1 + dz``;
* ``dz_0 = W_0 d`` exactly, ``dz_j = W_j dh_{j-1}``, ``dy = W_L dh_{L-1}`` (the biases cancel), with
  ``dh = relu(z1 + dz) - relu(z1)`` between two lines in ``dz``
  (:func:`~reluverify.solver.bounds.relaxation.difference_lines`);
* a row over ``dz_k`` (or ``dy``) is back-substituted through those lines down to ``d`` (the lower
  line where its coefficient is non-negative, the upper one elsewhere) and minimised over ``Δ``
  (and the L1 ball), layer by layer for the lines' ranges, then for the outputs.

Sound for every pair of the region: each line holds wherever the bounds it was made from hold, and
the minimum of a linear function over a box (or ball) containing the pairs' differences is at most
its value at any of them. The bounds are the tighter where both copies' phases are fixed: in a box
on which no ReLU changes phase within ``delta``, the output difference is exactly ``J d``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify import linear_ops as lops
from reluverify.network import ReluChain
from reluverify.solver.bounds.deeppoly import LayerBounds, deeppoly_bounds
from reluverify.solver.bounds.relaxation import difference_lines


@dataclass(frozen=True)
class PairRegion:
    """Pairs ``x1`` in ``[lower1, upper1]``, ``x2`` in ``[lower2, upper2]``, ``d = x2 - x1`` in
    ``[d_lower, d_upper]`` (all (B, n)) and, when ``l1_radius`` is given, ``||d||_1 <= l1_radius``."""

    lower1: np.ndarray
    upper1: np.ndarray
    lower2: np.ndarray
    upper2: np.ndarray
    d_lower: np.ndarray
    d_upper: np.ndarray
    l1_radius: float | None = None

    @property
    def batch(self) -> int:
        return self.lower1.shape[0]

    def take(self, index) -> "PairRegion":
        return PairRegion(self.lower1[index], self.upper1[index], self.lower2[index], self.upper2[index],
                          self.d_lower[index], self.d_upper[index], self.l1_radius)


def pair_region(lower: np.ndarray, upper: np.ndarray, domain_lower: np.ndarray, domain_upper: np.ndarray,
                delta: float, norm: str = "inf", d_lower: np.ndarray | None = None,
                d_upper: np.ndarray | None = None) -> PairRegion:
    """The pairs of ``D = [domain_lower, domain_upper]`` at distance at most ``delta`` (L-inf or L1) whose
    first point lies in the box ``[lower, upper]`` (B, n) (a sub-box of ``D``) and, when given, whose
    difference ``x2 - x1`` lies in the box ``[d_lower, d_upper]`` (B, n). A region without pairs has some
    ``d_lower > d_upper`` or ``lower2 > upper2``."""
    lower, upper = np.atleast_2d(lower), np.atleast_2d(upper)
    cut_lower = -delta if d_lower is None else np.maximum(-delta, d_lower)
    cut_upper = delta if d_upper is None else np.minimum(delta, d_upper)
    d_lower = np.maximum(cut_lower, domain_lower - upper)
    d_upper = np.minimum(cut_upper, domain_upper - lower)
    lower2 = np.maximum(lower + cut_lower, domain_lower)
    upper2 = np.minimum(upper + cut_upper, domain_upper)
    return PairRegion(lower, upper, lower2, upper2, d_lower, d_upper, float(delta) if norm == "1" else None)


@dataclass
class DifferenceBounds:
    """Bounds of ``y(x2) - y(x1)`` over each pair region: ``lower``/``upper`` (B, m); per hidden layer
    the bounds of ``z(x2) - z(x1)`` (``layers``: (lower, upper), (B, n_j) each); ``upper_coef``
    (B, m, n): the linear upper bound's coefficients over ``d`` (its maximiser over ``Δ`` is a likely
    worst difference)."""

    lower: np.ndarray
    upper: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    upper_coef: np.ndarray


def _minimum(coef: np.ndarray, const: np.ndarray, region: PairRegion) -> np.ndarray:
    """Lower bound of ``coef @ d + const`` (B, R, n), (B, R) over the region's differences."""
    mid = 0.5 * (region.d_lower + region.d_upper)
    rad = 0.5 * (region.d_upper - region.d_lower)
    low = np.einsum("brn,bn->br", coef, mid) - np.einsum("brn,bn->br", np.abs(coef), rad) + const
    if region.l1_radius is not None:  # the L1 ball: min of coef @ d over ||d||_1 <= r is -r max|coef|
        low = np.maximum(low, const - region.l1_radius * np.abs(coef).max(axis=2, initial=0.0))
    return low


def _substitute(weights: list, lines: list, rows: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (B, R, n_top) over ``dz_top`` (``top`` = number of hidden layers for the outputs) rewritten as
    a lower bound ``coef @ d + const`` through the difference lines of the layers below."""
    batch, count = rows.shape[:2]
    const = np.zeros((batch, count))
    coef = rows
    for j in range(top - 1, -1, -1):
        coef = lops.backward(weights[j + 1], coef.reshape(batch * count, -1)).reshape(batch, count, -1)  # over dh_j
        a_lo, c_lo, a_up, c_up = lines[j]
        positive = coef >= 0
        const = const + np.einsum("brn,brn->br", coef, np.where(positive, c_lo[:, None, :], c_up[:, None, :]))
        coef = coef * np.where(positive, a_lo[:, None, :], a_up[:, None, :])  # over dz_j
    coef = lops.backward(weights[0], coef.reshape(batch * count, -1)).reshape(batch, count, -1)  # over d
    return coef, const


def difference_bounds(chain: ReluChain, region: PairRegion, first: LayerBounds | None = None,
                      second: LayerBounds | None = None) -> DifferenceBounds:
    """Bounds of ``y(x2) - y(x1)`` over each pair of ``region`` (see the module docstring); ``first`` and
    ``second`` are the chain's layer bounds on the two boxes when already known."""
    first = first if first is not None else deeppoly_bounds(chain, region.lower1, region.upper1)
    second = second if second is not None else deeppoly_bounds(chain, region.lower2, region.upper2)
    weights = list(chain.weights)
    batch, hidden = region.batch, len(weights) - 1
    lines, layers = [], []
    for k in range(hidden):
        size = lops.shape(weights[k])[0]
        eye = np.eye(size)
        rows = np.broadcast_to(np.concatenate([eye, -eye])[None], (batch, 2 * size, size))
        coef, const = _substitute(weights, lines, rows, k)
        low = _minimum(coef, const, region)
        l1, u1 = first.pre_lower[k], first.pre_upper[k]
        l2, u2 = second.pre_lower[k], second.pre_upper[k]
        dl = np.maximum(low[:, :size], l2 - u1)
        du = np.minimum(-low[:, size:], u2 - l1)
        du = np.maximum(du, dl)  # round-off only: the region holds pairs
        l2, u2 = np.maximum(l2, l1 + dl), np.minimum(u2, u1 + du)
        layers.append((dl, du))
        lines.append(difference_lines(l1, u1, l2, np.maximum(u2, l2), dl, du))
    outputs = lops.shape(weights[-1])[0]
    eye = np.eye(outputs)
    rows = np.broadcast_to(np.concatenate([eye, -eye])[None], (batch, 2 * outputs, outputs))
    coef, const = _substitute(weights, lines, rows, hidden)
    low = _minimum(coef, const, region)
    lower = np.maximum(low[:, :outputs], second.out_lower - first.out_upper)
    upper = np.minimum(-low[:, outputs:], second.out_upper - first.out_lower)
    return DifferenceBounds(lower, np.maximum(upper, lower), layers, -coef[:, outputs:, :])
