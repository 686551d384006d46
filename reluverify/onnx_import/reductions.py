"""Reduction operators: ReduceSum and ReduceMean (linear, exact).

The axes come from the ``axes`` attribute (older opsets) or the second input (ReduceSum from
opset 13, ReduceMean from opset 18); negative axes count from the end; no axes reduce every axis,
or nothing with ``noop_with_empty_axes``. On a traced tensor the reduction is one sparse operator
(each output sums, or averages, the elements of its group) applied in the form the size rule picks;
on a constant it is evaluated with numpy.
"""

from __future__ import annotations

import numpy as np

from reluverify import linear_ops as lo
from reluverify.errors import NetworkError
from reluverify.onnx_import.registry import const, need, operator
from reluverify.onnx_import.values import apply_op, elements, shape_of, traced

_ATTRIBUTES = ("axes", "keepdims", "noop_with_empty_axes")


def _axes(inputs, attrs, where: str, rank: int) -> list[int] | None:
    """The reduced axes, non-negative and sorted; None for 'no reduction' (empty axes with noop)."""
    if len(inputs) > 1 and inputs[1] is not None:
        axes = [int(a) for a in np.ravel(const(inputs[1], where, "axes"))]
    else:
        axes = [int(a) for a in attrs.get("axes", [])]
    if not axes:
        return None if int(attrs.get("noop_with_empty_axes", 0)) else list(range(rank))
    resolved = sorted({a + rank if a < 0 else a for a in axes})
    if any(not 0 <= a < rank for a in resolved):
        raise NetworkError(f"{where}: axes {axes} do not fit a rank-{rank} tensor")
    return resolved


def reduce(tracer, inputs, attrs, where: str, mean: bool):
    """The sum (``mean``: the average) of the first input over the node's axes."""
    v = need(inputs, 0, where)
    axes = _axes(inputs, attrs, where, len(shape_of(v)))
    if axes is None:
        return [v]
    return [reduce_axes(tracer, v, axes, bool(int(attrs.get("keepdims", 1))), mean, where)]


def reduce_axes(tracer, v, axes: list[int], keepdims: bool, mean: bool, where: str):
    """The sum (``mean``: the average) of ``v`` over ``axes`` (non-negative, sorted)."""
    shape = shape_of(v)
    kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
    out_shape = kept if keepdims else tuple(d for i, d in enumerate(shape) if i not in axes)
    count = elements([shape[a] for a in axes])
    if not traced(v):
        total = np.sum(np.asarray(v), axis=tuple(axes), keepdims=keepdims)
        return total / count if mean else total
    size = elements(shape)
    target = np.broadcast_to(np.arange(elements(kept)).reshape(kept), shape).ravel()
    weight = 1.0 / count if mean and count else 1.0
    op = lo.Sparse(target, np.arange(size), np.full(size, weight), (elements(kept), size))
    return apply_op(tracer, v, op, out_shape, where)


@operator("ReduceSum", attributes=_ATTRIBUTES)
def op_reducesum(tracer, inputs, attrs, where):
    return reduce(tracer, inputs, attrs, where, mean=False)


@operator("ReduceMean", attributes=_ATTRIBUTES)
def op_reducemean(tracer, inputs, attrs, where):
    return reduce(tracer, inputs, attrs, where, mean=True)
