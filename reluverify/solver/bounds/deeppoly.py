"""DeepPoly and symbolic interval bounds of every ReLU layer, batched over many input boxes.

Three passes, each sound for every input in the box (and, when given, every input whose
pre-activations respect ``known`` bounds), each returning :class:`LayerBounds`:

* :func:`forward_bounds` -- symbolic interval propagation (ReluVal/Neurify style): every
  neuron carries a linear lower and a linear upper function of the network input;
  unstable ReLUs are relaxed by the chord above and a line ``alpha * z`` below
  (:mod:`~reluverify.solver.bounds.relaxation`). Cost per layer is two matrix products of width
  ``inputs + 1``, cheap when inputs are few; ``refine`` re-bounds the neurons it leaves unstable
  by back-substitution.
* :func:`deeppoly_bounds` -- layer by layer, interval arithmetic and then back-substitution to the
  input (DeepPoly) for the unstable neurons: cost grows with the unstable neurons, not the inputs.
* :func:`interval_bounds` -- plain interval arithmetic.

Shapes: ``lower``/``upper`` are (B, n) for B boxes; per-layer bounds are lists of (B, n_l).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify import linear_ops as lops
from reluverify.network import ReluChain
from reluverify.solver.bounds.relaxation import chord, lines, lower_slope


@dataclass
class LayerBounds:
    """Concrete bounds of every ReLU layer's pre-activation and of the outputs, per box.

    ``infeasible[b]`` is True when the ``known`` bounds contradict the propagated ones on
    box ``b`` (some lower bound exceeds its upper bound): that box holds no input at all.
    """

    pre_lower: list[np.ndarray]
    pre_upper: list[np.ndarray]
    out_lower: np.ndarray
    out_upper: np.ndarray
    infeasible: np.ndarray

    def take(self, index) -> "LayerBounds":
        """The bounds of the boxes ``index`` selects (a mask or indices)."""
        return LayerBounds([lo[index] for lo in self.pre_lower], [hi[index] for hi in self.pre_upper],
                           self.out_lower[index], self.out_upper[index], self.infeasible[index])

    def unstable_counts(self) -> np.ndarray:
        """Number of ReLUs whose phase is not fixed, per box."""
        total = np.zeros(self.out_lower.shape[0], dtype=np.int64)
        for lo, hi in zip(self.pre_lower, self.pre_upper):
            total += np.sum((lo < 0) & (hi > 0), axis=1)
        return total


def _crossed(lb: np.ndarray, ub: np.ndarray, tolerance: float) -> np.ndarray:
    """Per box: some lower bound exceeds its upper bound by more than round-off (relative to their
    size), so no input of the box meets them (bounds (width, B))."""
    return np.any(lb > ub + tolerance * (1.0 + np.abs(lb) + np.abs(ub)), axis=0)


def _concretise(coef: np.ndarray, const: np.ndarray, mid: np.ndarray, rad: np.ndarray, sign: float) -> np.ndarray:
    """min (sign=-1) or max (sign=+1) over the box ``mid +- rad`` of ``coef @ x + const``.

    ``coef`` is (width, B, n), ``const`` (width, B), ``mid``/``rad`` (B, n); the result is (width, B).
    """
    centre = np.einsum("wbn,bn->wb", coef, mid)
    spread = np.einsum("wbn,bn->wb", np.abs(coef), rad)
    return centre + sign * spread + const


def forward_bounds(
    chain: ReluChain,
    lower: np.ndarray,
    upper: np.ndarray,
    known_lower: list[np.ndarray] | None = None,
    known_upper: list[np.ndarray] | None = None,
    tolerance: float = 1e-9,
    refine: bool = False,
) -> LayerBounds:
    """Symbolic interval propagation; ``known_*`` are optional extra pre-activation bounds per layer.

    Internally each layer's lower and upper functions are kept as coefficient arrays of
    shape (width, B, n) so that every affine layer is two plain matrix products (centre and
    radius form: ``W (L+U)/2 +- |W| (U-L)/2``).

    With ``refine``, the neurons that the forward pass leaves unstable are re-bounded by
    back-substitution to the input (DeepPoly), which is tighter; stable neurons need no
    refinement because their ReLU is relaxed exactly anyway.
    """
    lower = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    upper = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    batch, n = lower.shape
    mid = 0.5 * (lower + upper)
    rad = 0.5 * (upper - lower)
    eye = np.broadcast_to(np.eye(n)[:, None, :], (n, batch, n))
    lo_coef, up_coef = eye, eye
    lo_const = up_const = np.zeros((n, batch))
    pre_lower, pre_upper, relaxations = [], [], []
    infeasible = np.zeros(batch, dtype=bool)
    depth = len(chain.weights)
    h_lo, h_hi = lower.T, upper.T  # interval bounds of the layer input, (width, B)
    for layer, (w, b) in enumerate(zip(chain.weights, chain.biases)):
        width_in = lops.shape(w)[1]
        abs_w = lops.abs_bound(w)
        centre = _left(w, (0.5 * (lo_coef + up_coef)).reshape(width_in, -1)).reshape(-1, batch, n)
        spread = _left(abs_w, (0.5 * (up_coef - lo_coef)).reshape(width_in, -1)).reshape(-1, batch, n)
        centre_k = _left(w, 0.5 * (lo_const + up_const)) + b[:, None]
        spread_k = _left(abs_w, 0.5 * (up_const - lo_const))
        z_lo_coef, z_up_coef = centre - spread, centre + spread
        z_lo_const, z_up_const = centre_k - spread_k, centre_k + spread_k
        lb = _concretise(z_lo_coef, z_lo_const, mid, rad, -1.0)
        ub = _concretise(z_up_coef, z_up_const, mid, rad, +1.0)
        # interval arithmetic is sometimes tighter than the symbolic bound: keep the better of both
        interval_centre = _left(w, 0.5 * (h_lo + h_hi)) + b[:, None]
        interval_radius = _left(abs_w, 0.5 * (h_hi - h_lo))
        lb = np.maximum(lb, interval_centre - interval_radius)
        ub = np.minimum(ub, interval_centre + interval_radius)
        if layer == depth - 1:
            return LayerBounds(pre_lower, pre_upper, lb.T.copy(), ub.T.copy(), infeasible)
        lb, ub = _clamp_known(lb, ub, layer, known_lower, known_upper)
        if refine and layer > 0:
            lb, ub = _refine_unstable(chain, layer, lb, ub, relaxations, mid, rad)
        if known_lower is not None or known_upper is not None:
            infeasible |= _crossed(lb, ub, tolerance)
            ub = np.maximum(ub, lb)
        pre_lower.append(lb.T.copy())
        pre_upper.append(ub.T.copy())
        if refine:
            relaxations.append(lines(pre_lower[-1], pre_upper[-1]))
        h_lo, h_hi = np.maximum(lb, 0.0), np.maximum(ub, 0.0)
        # relax relu on the upper function: chord over [max(lb, min U), ub]
        min_up = _concretise(z_up_coef, z_up_const, mid, rad, -1.0)
        slope_up, shift_up = chord(np.maximum(lb, min_up), ub)
        slope_up = np.where(ub <= 0, 0.0, slope_up)  # an empty range ([0, 0]): the zero line
        up_coef = z_up_coef * slope_up[:, :, None]
        up_const = z_up_const * slope_up + shift_up
        # relax relu on the lower function: alpha * L(x), alpha from the lower function's range
        max_lo = _concretise(z_lo_coef, z_lo_const, mid, rad, +1.0)
        alpha = np.where((lb < 0) & (max_lo <= 0), 0.0, lower_slope(lb, ub))
        lo_coef = z_lo_coef * alpha[:, :, None]
        lo_const = z_lo_const * alpha
    raise AssertionError("unreachable: a chain has at least one layer")


BOX_BLOCK = 32
"""Boxes back-substituted together: the (boxes, rows, width) coefficient arrays of a block stay in the
processor's cache, which makes the element-wise relaxation steps about a fifth faster on ACAS Xu than one
pass over a few hundred boxes (each box's bounds are the same either way) ..."""

BLOCK_BYTES = 256 * 2**20
"""... and fewer boxes, and fewer neurons per box, where a block's coefficient arrays and their
temporaries would take more than this (wide layers: images, convolutions)."""


def _refine_unstable(chain, layer, lb, ub, relaxations, mid, rad, chunk: int = 1024):
    """Back-substitution bounds for the unstable neurons of ``layer`` (lb/ub are (width, B)), at most
    ``chunk`` neurons per box and ``BOX_BLOCK`` boxes at a time, fewer where a block would exceed
    ``BLOCK_BYTES`` (memory stays bounded on wide layers and large batches).

    ``relaxations[prev]`` is :func:`~reluverify.solver.bounds.relaxation.lines` of layer ``prev``'s
    pre-activation bounds, (B, n_prev) each."""
    batch = lb.shape[1]
    unstable = (lb < 0) & (ub > 0)  # (width, B)
    counts = unstable.sum(axis=0)
    k = int(counts.max()) if counts.size else 0
    if k == 0:
        return lb, ub
    widest = max(lops.shape(chain.weights[prev])[1] for prev in range(layer + 1))
    per_row = 4 * 8 * widest  # a coefficient row and the element-wise temporaries made from it
    chunk = max(1, min(chunk, BLOCK_BYTES // (2 * per_row)))
    block = max(1, min(BOX_BLOCK, BLOCK_BYTES // (2 * min(k, chunk) * per_row)))
    if batch > block:
        blocks = [
            _refine_unstable(chain, layer, lb[:, s : s + block], ub[:, s : s + block],
                             [tuple(a[s : s + block] for a in r) for r in relaxations],
                             mid[s : s + block], rad[s : s + block], chunk)
            for s in range(0, batch, block)
        ]
        return np.concatenate([b[0] for b in blocks], axis=1), np.concatenate([b[1] for b in blocks], axis=1)
    # per box, the indices of its unstable neurons (padded with repeats of a valid index)
    order_all = np.argsort(~unstable.T, axis=1, kind="stable")[:, :k]  # (B, k)
    valid_all = np.take_along_axis(unstable.T, order_all, axis=1)
    w, b = chain.weights[layer], chain.biases[layer]
    lb, ub = lb.copy(), ub.copy()
    lb_view, ub_view = lb.T, ub.T  # (B, width) views
    cols = np.arange(batch)[:, None]
    for first in range(0, k, chunk):
        order, valid = order_all[:, first : first + chunk], valid_all[:, first : first + chunk]
        size = order.shape[1]
        rows = lops.rows(w, order.reshape(-1)).reshape(order.shape + (-1,))  # (B, size, n_prev)
        coef = np.concatenate([rows, -rows], axis=1)  # lower bounds of z and of -z
        const = np.concatenate([b[order], -b[order]], axis=1)
        for prev in range(layer - 1, -1, -1):
            alpha, slope, intercept = relaxations[prev]
            # a negative coefficient takes the chord (slope, intercept), a positive one alpha * z
            const = const + np.matmul(np.minimum(coef, 0.0), intercept[:, :, None])[:, :, 0]
            coef = coef * np.where(coef < 0.0, slope[:, None, :], alpha[:, None, :])
            wp = chain.weights[prev]
            const = const + coef @ chain.biases[prev]
            coef = lops.backward(wp, coef.reshape(-1, lops.shape(wp)[0])).reshape(batch, 2 * size, lops.shape(wp)[1])
        low = np.einsum("brn,bn->br", coef, mid) - np.einsum("brn,bn->br", np.abs(coef), rad) + const
        new_lb, new_ub = low[:, :size], -low[:, size:]
        lb_view[cols, order] = np.where(valid, np.maximum(lb_view[cols, order], new_lb), lb_view[cols, order])
        ub_view[cols, order] = np.where(valid, np.minimum(ub_view[cols, order], new_ub), ub_view[cols, order])
    return lb, ub


def _left(w, matrix: np.ndarray) -> np.ndarray:
    """``w @ matrix`` for a dense or structured weight and a matrix of column vectors (in, k)."""
    if lops.is_dense(w):
        return w @ matrix
    return lops.forward(w, matrix.T).T


def _clamp_known(lb, ub, layer, known_lower, known_upper):
    """Layer ``layer``'s bounds (neurons x batch) intersected with the known bounds, where given."""
    if known_lower is not None and known_lower[layer] is not None:
        lb = np.maximum(lb, np.asarray(known_lower[layer]).T)
    if known_upper is not None and known_upper[layer] is not None:
        ub = np.minimum(ub, np.asarray(known_upper[layer]).T)
    return lb, ub


def deeppoly_bounds(chain: ReluChain, lower: np.ndarray, upper: np.ndarray, known_lower=None, known_upper=None,
                    tolerance: float = 1e-9, first: int = 0) -> LayerBounds:
    """Layer by layer: interval arithmetic from the previous layer's bounds, then back-substitution to
    the input (DeepPoly) for the neurons it leaves unstable.

    The same bounds as :func:`forward_bounds` with ``refine`` up to the relaxation of the forward
    symbolic pass, at a cost that grows with the number of unstable neurons rather than with the
    number of inputs: the choice for networks with many inputs (images), where symbolic forward
    coefficients would be (neurons x inputs) per layer.

    Hidden layers below ``first`` take the known bounds as they are (which must then be given for them):
    nothing below a changed bound needs computing again.
    """
    lower = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    upper = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    batch = lower.shape[0]
    mid, rad = 0.5 * (lower + upper), 0.5 * (upper - lower)
    pre_lower, pre_upper, relaxations = [], [], []
    infeasible = np.zeros(batch, dtype=bool)
    h_lo, h_hi = lower, upper
    depth = len(chain.weights)
    for layer, (w, b) in enumerate(zip(chain.weights, chain.biases)):
        if layer < min(first, depth - 1):  # taken as known (width, B)
            lb, ub = np.asarray(known_lower[layer], dtype=np.float64).T, np.asarray(known_upper[layer], dtype=np.float64).T
        else:
            centre = lops.forward(w, 0.5 * (h_lo + h_hi)) + b
            radius = lops.forward(lops.abs_bound(w), 0.5 * (h_hi - h_lo))
            lb, ub = (centre - radius).T, (centre + radius).T  # (width, B)
            if layer == depth - 1:
                if layer > 0:  # the outputs too: back-substitution is tighter than intervals
                    free_lb, free_ub = _refine_unstable(chain, layer, np.full_like(lb, -np.inf), np.full_like(ub, np.inf),
                                                        relaxations, mid, rad)
                    lb, ub = np.maximum(lb, free_lb), np.minimum(ub, free_ub)
                return LayerBounds(pre_lower, pre_upper, lb.T.copy(), ub.T.copy(), infeasible)
            lb, ub = _clamp_known(lb, ub, layer, known_lower, known_upper)
            if layer > 0:
                lb, ub = _refine_unstable(chain, layer, lb, ub, relaxations, mid, rad)
        if known_lower is not None or known_upper is not None:
            infeasible |= _crossed(lb, ub, tolerance)
            ub = np.maximum(ub, lb)
        pre_lower.append(lb.T.copy())
        pre_upper.append(ub.T.copy())
        relaxations.append(lines(pre_lower[-1], pre_upper[-1]))
        h_lo, h_hi = np.maximum(lb, 0.0).T, np.maximum(ub, 0.0).T
    raise AssertionError("unreachable: a chain has at least one layer")


def interval_bounds(chain: ReluChain, lower: np.ndarray, upper: np.ndarray) -> LayerBounds:
    """Plain interval arithmetic (looser, cheaper for wide inputs); same result type."""
    lo = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    hi = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    pre_lower, pre_upper = [], []
    for layer, (w, b) in enumerate(zip(chain.weights, chain.biases)):
        mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
        c = lops.forward(w, mid) + b
        r = lops.forward(lops.abs_bound(w), rad)
        z_lo, z_hi = c - r, c + r
        if layer == len(chain.weights) - 1:
            return LayerBounds(pre_lower, pre_upper, z_lo, z_hi, np.zeros(lo.shape[0], dtype=bool))
        pre_lower.append(z_lo)
        pre_upper.append(z_hi)
        lo, hi = np.maximum(z_lo, 0.0), np.maximum(z_hi, 0.0)
    raise AssertionError("unreachable")
