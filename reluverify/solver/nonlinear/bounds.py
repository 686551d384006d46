"""Sound bounds over a general DAG :class:`~reluverify.network.Network`, batched over input boxes.

Every node of the network gets concrete bounds ``lower[k] <= value_k(x) <= upper[k]`` (arrays of
shape (B, size), one row per box) that hold for every ``x`` in the box -- and, when ``known``
bounds are given for some nodes (the clamps of a relaxation split), for every ``x`` in the box
whose node values respect them: the *domain* of the box. Two methods, intersected:

* **interval** (IBP): affine maps by centre and radius, activations by their (increasing)
  value at the ends, products by the four corners;
* **symbolic** (CROWN / DeepPoly back-substitution): for every node that feeds a nonlinear
  node, the rows ``+-e_j`` are substituted backwards through the DAG down to the input, each
  activation and product replaced by its linear relaxation
  (:mod:`~reluverify.solver.nonlinear.relaxations`) on the bounds already found for its
  operands; the resulting linear function of ``x`` is minimised over the box. Affine nodes with
  several sources and inputs read by many nodes are handled by accumulating the coefficients of
  every node before it is expanded (reverse topological order).

:func:`row_bounds` does the same back-substitution for linear rows over the input and the output
(a disjunct's rows), returning the linear lower bound as a function of ``x`` and its minimum
over the box. ReLU nodes are relaxed too (the triangle relaxation): the bounds are sound but not
exact for ReLUs; the search in :mod:`~reluverify.solver.nonlinear.search` splits boxes (and
relaxation intervals) until they are.

Floating point: relaxation lines carry their own safety margin; concrete bounds are widened by
``WIDEN`` relative after every node, and every minimum of a linear bound over a box by
``ROW_WIDEN`` times the size of its terms, so the float64 round-off of the matrix products (about
1e-16 relative) cannot make them exclude a true value. Non-finite bounds are allowed (they never
prune anything).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify import linear_ops as lo_ops
from reluverify.network import ActivationNode, AffineNode, Network, ProductNode
from reluverify.solver.nonlinear.relaxations import (
    activation_interval,
    activation_relaxation,
    product_interval,
    product_relaxation,
    relu_relaxation,
    S_SHAPED,
    s_shaped_lines,
    s_shaped_plan,
)

SYMBOLIC_ENTRIES = 1 << 24
"""Multipliers back-substituted at once for a node's symbolic bounds (rows x widest node x boxes, 128 MiB
of float64): a wider node's units are bounded in chunks, each the same computation on fewer rows."""
WIDEN = 1e-12
ROW_WIDEN = 1e-11
EMPTY_TOLERANCE = 1e-9
"""A domain is empty when some node's lower bound exceeds its upper by more than this (relative)."""


class Layout:
    """The *relaxed* nodes (inputs of activations, operands of products) laid out as one flat vector.

    Clamps of relaxation splits are stored per box as flat arrays over this layout;
    ``slices[node]`` is the node's part.
    """

    def __init__(self, network: Network) -> None:
        relaxed: set[int] = set()
        for node in network.nodes[1:]:
            if isinstance(node, ActivationNode):
                relaxed.add(node.source)
            elif isinstance(node, ProductNode):
                relaxed.update((node.left, node.right))
        self.nodes = tuple(sorted(relaxed))
        self.slices: dict[int, slice] = {}
        offset = 0
        for k in self.nodes:
            size = network.nodes[k].size
            self.slices[k] = slice(offset, offset + size)
            offset += size
        self.size = offset
        self.owner = np.concatenate([np.full(network.nodes[k].size, k) for k in self.nodes]) if self.nodes else np.zeros(0, int)


@dataclass
class DagBounds:
    """Concrete bounds of every node per box, the relaxations used, and which domains are empty."""

    lower: list[np.ndarray]
    upper: list[np.ndarray]
    relaxations: dict
    empty: np.ndarray  # (B,) bool

    def flat(self, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
        """The bounds of the relaxed nodes as (B, layout.size) arrays."""
        if not layout.nodes:
            b = self.empty.shape[0]
            return np.zeros((b, 0)), np.zeros((b, 0))
        return (
            np.concatenate([self.lower[k] for k in layout.nodes], axis=1),
            np.concatenate([self.upper[k] for k in layout.nodes], axis=1),
        )


@dataclass
class RowBounds:
    """``rows @ [x; N(x)] - rhs >= coef @ x + const >= lower`` on each box's domain."""

    lower: np.ndarray  # (B, R)
    coef: np.ndarray  # (B, R, n)
    const: np.ndarray  # (B, R)
    multipliers: dict  # node -> (B, R, size): the rows' coefficients at each nonlinear node (when recorded)


def minimise(coef: np.ndarray, const: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``min over the box of coef @ x + const``: coef (B, R, n), const (B, R), boxes (B, n) -> (B, R).

    Lowered by ``WIDEN`` times the size of the terms, so that round-off cannot lift it above a true value.
    """
    mid = 0.5 * (lower + upper)
    rad = 0.5 * (upper - lower)
    magnitude = np.abs(coef)
    value = np.einsum("brn,bn->br", coef, mid) - np.einsum("brn,bn->br", magnitude, rad) + const
    size = np.einsum("brn,bn->br", magnitude, np.abs(mid) + rad) + np.abs(const)
    return value - ROW_WIDEN * (1.0 + size)


def _per_row(a: np.ndarray) -> np.ndarray:
    """A relaxation array shared by all rows (B, s) or chosen per row (B, R, s), as (B, 1 or R, s)."""
    return a[:, None, :] if a.ndim == 2 else a


def _scaled_sum(multiplier: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``sum_j multiplier[..., j] * offset[..., j]`` with ``0 * inf = 0``: (B, R, s) and (B, [R,] s) -> (B, R)."""
    offset = _per_row(offset)
    if np.all(np.isfinite(offset)):
        return np.einsum("brs,brs->br", multiplier, np.broadcast_to(offset, multiplier.shape))
    with np.errstate(invalid="ignore"):
        terms = multiplier * offset
    return np.where(multiplier == 0, 0.0, terms).sum(axis=2)


def back_substitute(
    network: Network, relaxations: dict, start: int, multiplier: np.ndarray, record: bool = False
) -> tuple[np.ndarray, np.ndarray, dict]:
    """A linear lower bound ``coef @ x + const`` of ``multiplier @ value_start`` over the domain.

    ``multiplier`` is (B, R, size of node ``start``); ``relaxations[k]`` holds arrays of shape
    (B, size) shared by all rows, or (B, R, size) chosen per row. Returns coef (B, R, n),
    const (B, R) and, when ``record``, the multipliers reached at every nonlinear node.
    """
    batch, rows = multiplier.shape[:2]
    pending: dict[int, np.ndarray] = {start: multiplier}
    const = np.zeros((batch, rows))
    seen: dict[int, np.ndarray] = {}
    for k in range(start, 0, -1):
        lam = pending.pop(k, None)
        if lam is None:
            continue
        node = network.nodes[k]
        if isinstance(node, AffineNode):
            const += lam @ node.bias
            for source, weight in zip(node.sources, node.weights):
                _accumulate(pending, source, _backward(weight, lam))
            continue
        if record:
            seen[k] = lam
        pos, neg = np.maximum(lam, 0.0), np.minimum(lam, 0.0)
        relax = relaxations[k]
        if isinstance(node, ActivationNode):
            const += _scaled_sum(pos, relax.lower_offset) + _scaled_sum(neg, relax.upper_offset)
            _accumulate(pending, node.source, pos * _per_row(relax.lower_slope) + neg * _per_row(relax.upper_slope))
        else:
            const += _scaled_sum(pos, relax.lower_offset) + _scaled_sum(neg, relax.upper_offset)
            _accumulate(pending, node.left, pos * _per_row(relax.lower_x) + neg * _per_row(relax.upper_x))
            _accumulate(pending, node.right, pos * _per_row(relax.lower_y) + neg * _per_row(relax.upper_y))
    coef = pending.get(0)
    if coef is None:
        coef = np.zeros((batch, rows, network.input_size))
    return coef, const, seen


def _accumulate(pending: dict, node: int, lam: np.ndarray) -> None:
    if node in pending:
        pending[node] = pending[node] + lam
    else:
        pending[node] = lam


def node_bounds(
    network: Network,
    lower: np.ndarray,
    upper: np.ndarray,
    layout: Layout | None = None,
    known_lower: np.ndarray | None = None,
    known_upper: np.ndarray | None = None,
    symbolic: bool = True,
    rounds: int = 0,
) -> DagBounds:
    """Bounds of every node on each box (B, n); ``known_*`` (B, layout.size) clamp the relaxed nodes.

    ``rounds`` > 0 re-linearises the symbolic bounds of the relaxed nodes that many times
    (see :func:`linearised_row_bounds`).
    """
    lower = np.atleast_2d(np.asarray(lower, dtype=np.float64))
    upper = np.atleast_2d(np.asarray(upper, dtype=np.float64))
    layout = layout or Layout(network)
    relaxed = set(layout.nodes)
    batch = lower.shape[0]
    lo: list[np.ndarray] = [lower]
    hi: list[np.ndarray] = [upper]
    relaxations: dict = {}
    plans: dict = {}
    empty = np.zeros(batch, dtype=bool)
    for k, node in enumerate(network.nodes[1:], start=1):
        if isinstance(node, AffineNode):
            if all(np.all(np.isfinite(lo[s])) and np.all(np.isfinite(hi[s])) for s in node.sources):
                centre = np.broadcast_to(node.bias, (batch, node.size)).copy()
                radius = np.zeros((batch, node.size))
                for source, weight in zip(node.sources, node.weights):
                    centre += _forward(weight, 0.5 * (lo[source] + hi[source]))
                    radius += _forward_abs(weight, 0.5 * (hi[source] - lo[source]))
                node_lo, node_hi = centre - radius, centre + radius
            else:
                node_lo, node_hi = _open_affine(node, lo, hi, batch)
        elif isinstance(node, ActivationNode):
            relaxations[k] = activation_relaxation(node.kind, lo[node.source], hi[node.source])
            node_lo, node_hi = activation_interval(node.kind, lo[node.source], hi[node.source])
        else:
            a, b, c, d = lo[node.left], hi[node.left], lo[node.right], hi[node.right]
            relaxations[k] = product_relaxation(a, b, c, d)
            node_lo, node_hi = product_interval(a, b, c, d)
        if k in relaxed and symbolic and not isinstance(node, ActivationNode):
            widest = max(network.nodes[j].size for j in range(k + 1))
            per = max(1, SYMBOLIC_ENTRIES // max(1, 2 * batch * widest))
            for start in range(0, node.size, per):  # one chunk (the identity) unless the node is wide
                units = np.arange(start, min(node.size, start + per))
                if units.size == node.size:
                    eye = np.eye(node.size)
                else:
                    eye = np.zeros((units.size, node.size))
                    eye[np.arange(units.size), units] = 1.0
                multiplier = np.broadcast_to(np.concatenate([eye, -eye])[None], (batch, 2 * units.size, node.size))
                coef, const, _ = back_substitute(network, relaxations, k, multiplier)
                with np.errstate(invalid="ignore"):
                    found = minimise(coef, const, lower, upper)
                found = np.where(np.isnan(found), -np.inf, found)
                if rounds:
                    _, _, found = _relinearise(
                        network, lo, hi, lower, upper, k, multiplier, 0.0, 0.0, coef, const, found, rounds, plans
                    )
                node_lo[:, units] = np.maximum(node_lo[:, units], found[:, : units.size])
                node_hi[:, units] = np.minimum(node_hi[:, units], -found[:, units.size :])
        node_lo = node_lo - WIDEN * (1.0 + np.abs(node_lo))
        node_hi = node_hi + WIDEN * (1.0 + np.abs(node_hi))
        if known_lower is not None and k in relaxed:
            part = layout.slices[k]
            node_lo = np.maximum(node_lo, known_lower[:, part])
            node_hi = np.minimum(node_hi, known_upper[:, part])
        crossed = node_lo > node_hi + EMPTY_TOLERANCE * (1.0 + np.abs(node_lo) + np.abs(node_hi))
        empty |= crossed.any(axis=1)
        node_hi = np.maximum(node_hi, node_lo)
        lo.append(node_lo)
        hi.append(node_hi)
    return DagBounds(lo, hi, relaxations, empty)


def _open_affine(node: AffineNode, lo: list, hi: list, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of an affine node some of whose sources have infinite bounds (``0 * inf = 0``:
    a zero weight ignores an infinite source; any other weight passes the infinity on)."""
    node_lo = np.broadcast_to(node.bias, (batch, node.size)).copy()
    node_hi = node_lo.copy()
    reach_lo = np.zeros((batch, node.size))  # > 0 where the lower bound is -inf
    reach_hi = np.zeros((batch, node.size))
    for source, weight in zip(node.sources, node.weights):
        a, b = lo[source], hi[source]
        fa, fb = np.where(np.isfinite(a), a, 0.0), np.where(np.isfinite(b), b, 0.0)  # the finite parts
        if not lo_ops.is_dense(weight):  # no signs at hand: centre and radius, either side open on reach
            centre, radius = _forward(weight, 0.5 * (fa + fb)), _forward_abs(weight, 0.5 * (fb - fa))
            node_lo += centre - radius
            node_hi += centre + radius
            touched = _forward_abs(weight, (~(np.isfinite(a) & np.isfinite(b))).astype(np.float64))
            reach_lo += touched
            reach_hi += touched
            continue
        pos, neg = np.maximum(weight, 0.0), np.minimum(weight, 0.0)
        node_lo += fa @ pos.T + fb @ neg.T
        node_hi += fb @ pos.T + fa @ neg.T
        low_open, high_open = (a == -np.inf).astype(np.float64), (b == np.inf).astype(np.float64)
        reach_lo += low_open @ (pos > 0).T + high_open @ (neg < 0).T
        reach_hi += high_open @ (pos > 0).T + low_open @ (neg < 0).T
    return np.where(reach_lo > 0, -np.inf, node_lo), np.where(reach_hi > 0, np.inf, node_hi)


def _forward(weight, x: np.ndarray) -> np.ndarray:
    """``x @ weight.T`` (x (B, in)); a dense weight by numpy's product itself, a structured one by its operator."""
    return x @ weight.T if lo_ops.is_dense(weight) else lo_ops.forward(weight, x)


def _forward_abs(weight, x: np.ndarray) -> np.ndarray:
    """``x @ |weight|.T`` for ``x >= 0`` (an upper bound of it for a structured weight: ``abs_bound``)."""
    return x @ np.abs(weight).T if lo_ops.is_dense(weight) else lo_ops.forward(lo_ops.abs_bound(weight), x)


def _backward(weight, lam: np.ndarray) -> np.ndarray:
    """``lam @ weight`` for multipliers ``lam`` of any leading shape."""
    if lo_ops.is_dense(weight):
        return lam @ weight
    out, into = lo_ops.shape(weight)
    return lo_ops.backward(weight, lam.reshape(-1, out)).reshape(lam.shape[:-1] + (into,))


def row_bounds(
    network: Network,
    bounds: DagBounds,
    lower: np.ndarray,
    upper: np.ndarray,
    rows: np.ndarray,
    rhs: np.ndarray,
    record: bool = False,
) -> RowBounds:
    """Lower bounds of ``rows @ [x; N(x)] - rhs`` on each box's domain; ``rows`` is (R, n + m)."""
    n = network.input_size
    batch = lower.shape[0]
    multiplier = np.broadcast_to(rows[None, :, n:], (batch,) + rows[:, n:].shape)
    coef, const, seen = back_substitute(network, bounds.relaxations, len(network.nodes) - 1, multiplier, record)
    coef = coef + rows[None, :, :n]
    const = const - rhs[None, :]
    with np.errstate(invalid="ignore"):
        value = minimise(coef, const, lower, upper)
    value = np.where(np.isnan(value), -np.inf, value)
    return RowBounds(value, coef, const, seen)


def linearised_row_bounds(
    network: Network,
    bounds: DagBounds,
    lower: np.ndarray,
    upper: np.ndarray,
    rows: np.ndarray,
    rhs: np.ndarray,
    rounds: int = 2,
) -> RowBounds:
    """:func:`row_bounds`, then ``rounds`` of re-linearisation at each row's minimising vertex.

    Every round evaluates the network at the vertex of the box that minimises each row's current
    linear bound, and relaxes every activation and product *for that row* so that its lines
    touch the function where the network's values at that vertex are (tangent points; the
    McCormick plane closer to the product there). Every choice is sound on the domain, so each
    round gives a valid bound; the best one per row is kept.
    """
    best = row_bounds(network, bounds, lower, upper, rows, rhs)
    n = network.input_size
    batch = lower.shape[0]
    multiplier = np.broadcast_to(rows[None, :, n:], (batch,) + rows[:, n:].shape)
    last = len(network.nodes) - 1
    coef, const, value = _relinearise(
        network, bounds.lower, bounds.upper, lower, upper, last, multiplier, rows[None, :, :n], -rhs[None, :],
        best.coef, best.const, best.lower, rounds,
    )
    return RowBounds(value, coef, const, best.multipliers)


def _relinearise(network, lo, hi, lower, upper, start, multiplier, input_part, offset, coef, const, value, rounds, plans=None):
    """Rounds of per-row re-linearisation of ``multiplier @ value_start + input_part @ x + offset``.

    ``coef``, ``const``, ``value`` are the bound so far (including the input part and offset);
    returns the best (coef, const, value) per row.
    """
    n = network.input_size
    batch, count = value.shape
    plans = {} if plans is None else plans
    for _ in range(rounds):
        vertex = np.where(coef > 0, lower[:, None, :], upper[:, None, :])
        points = network.evaluate_all(vertex.reshape(-1, n)) if start == len(network.nodes) - 1 else _prefix(network, vertex.reshape(-1, n), start)
        values = [v.reshape(batch, count, -1) for v in points]
        relaxations = _relaxations_at(network, lo, hi, values, start + 1, plans)
        new_coef, new_const, _ = back_substitute(network, relaxations, start, multiplier)
        new_coef = new_coef + input_part
        new_const = new_const + offset
        with np.errstate(invalid="ignore"):
            new_value = minimise(new_coef, new_const, lower, upper)
        new_value = np.where(np.isnan(new_value), -np.inf, new_value)
        better = new_value > value
        if not np.any(better):
            break
        value = np.where(better, new_value, value)
        coef = np.where(better[:, :, None], new_coef, coef)
        const = np.where(better, new_const, const)
    return coef, const, value


def _prefix(network: Network, x: np.ndarray, upto: int) -> list[np.ndarray]:
    """Values of nodes ``0..upto`` for a batch (the rest of the network is not computed)."""
    return network.evaluate_all(x, upto=upto)


def _relaxations_at(network: Network, lo, hi, values: list[np.ndarray], upto: int, plans: dict) -> dict:
    """Per-row relaxations of the nodes before ``upto`` touching the functions at ``values`` (each (B, R, size)).

    ``plans`` caches the sigmoid/tanh case analysis of each node (its interval does not change).
    """
    out = {}
    for k, node in enumerate(network.nodes[:upto]):
        if isinstance(node, ActivationNode):
            l, u = lo[node.source][:, None, :], hi[node.source][:, None, :]
            point = values[node.source]
            if node.kind == "relu":
                out[k] = relu_relaxation(l, u, point)
            elif node.kind in S_SHAPED:
                if k not in plans:
                    plans[k] = s_shaped_plan(node.kind, l, u)
                out[k] = s_shaped_lines(plans[k], point, point)
            else:
                out[k] = activation_relaxation(node.kind, l, u, point, point)
        elif isinstance(node, ProductNode):
            lx, ux = lo[node.left][:, None, :], hi[node.left][:, None, :]
            ly, uy = lo[node.right][:, None, :], hi[node.right][:, None, :]
            x, y = np.clip(values[node.left], lx, ux), np.clip(values[node.right], ly, uy)
            # the plane with the smaller gap at (x, y): (x - lx)(y - ly) against (ux - x)(uy - y), ...
            lower_weight = ((x - lx) * (y - ly) <= (ux - x) * (uy - y)).astype(np.float64)
            upper_weight = ((x - lx) * (uy - y) <= (ux - x) * (y - ly)).astype(np.float64)
            out[k] = product_relaxation(lx, ux, ly, uy, lower_weight, upper_weight)
    return out
