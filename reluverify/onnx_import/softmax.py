"""Softmax and LogSoftmax anywhere in a graph (attention, a network whose outputs are probabilities).

Over an axis of ``n`` elements, with ``d_ij = z_j - z_i`` (affine in the input),

    softmax(z)_i    = 1 / sum_j exp(d_ij)      = reciprocal(sum_j exp(d_ij)),
    logsoftmax(z)_i = -log(sum_j exp(d_ij)),

the form that bound propagation for transformers uses: the differences are bounded more tightly
than the scores themselves, the term ``j = i`` is exactly ``exp(0) = 1``, and the sum is at least 1,
so the reciprocal and the log are taken far from their poles. It costs ``n`` exponentials per output
element (one activation node of ``n^2`` values per softmax row).

``axis`` follows the opset: from opset 13 the one axis (default -1); before, the input is read as a
matrix whose rows are the axes from ``axis`` on (default 1), flattened. A final Softmax of a
classifier may instead be dropped for delta-local robustness (:mod:`.final_softmax`); when it is
not, it is traced here like any other.
"""

from __future__ import annotations

import numpy as np

from reluverify.errors import NetworkError
from reluverify.onnx_import.activations import activation
from reluverify.onnx_import.reductions import reduce_axes
from reluverify.onnx_import.registry import need, operator
from reluverify.onnx_import.values import add, as_float, move, scale, traced


def _rows(tracer, attrs, shape: tuple[int, ...], where: str) -> tuple[tuple[int, ...], int]:
    """The shape with the softmax axis last (flattened from ``axis`` on before opset 13), and that axis."""
    rank = len(shape)
    axis = int(attrs.get("axis", -1 if tracer.opset >= 13 else 1))
    if not -rank <= axis < max(rank, 1):
        raise NetworkError(f"{where}: axis {axis} does not fit a rank-{rank} tensor")
    axis %= max(rank, 1)
    if tracer.opset >= 13:
        return shape, axis
    return tuple(shape[:axis]) + (int(np.prod(shape[axis:])),), axis


def _sum_of_exponentials(tracer, v, attrs, where: str):
    """``sum_j exp(z_j - z_i)`` over the softmax axis, in the shape of ``v`` (axis last), and how to
    put a tensor of that layout back into ``v``'s shape."""
    shape = tuple(v.shape)
    rows, axis = _rows(tracer, attrs, shape, where)
    if tracer.opset >= 13:
        last = move(v, lambda t: np.moveaxis(t, axis + 1, -1))
        moved = tuple(np.moveaxis(np.empty(shape), axis, -1).shape)

        def back(out):
            return move(out, lambda t: np.moveaxis(t, -1, axis + 1)) if traced(out) else np.moveaxis(out, -1, axis)
    else:
        last = v.reshaped(rows)
        moved = rows

        def back(out):
            return out.reshaped(shape) if traced(out) else np.reshape(out, shape)
    n = moved[-1]
    pairs = moved + (n,)
    # d[..., i, j] = z[..., j] - z[..., i]
    later = move(last, lambda t: np.ascontiguousarray(np.broadcast_to(t[..., None, :], t.shape[:1] + pairs)))
    earlier = move(last, lambda t: np.ascontiguousarray(np.broadcast_to(t[..., :, None], t.shape[:1] + pairs)))
    differences = add(tracer, later, earlier, where, sign=-1.0)
    exponentials = activation(tracer, [differences], where, "exp")[0]
    return reduce_axes(tracer, exponentials, [len(pairs) - 1], keepdims=False, mean=False, where=where), back


def _constant(kind: str, z: np.ndarray, attrs, opset: int) -> np.ndarray:
    shape = z.shape
    axis = int(attrs.get("axis", -1 if opset >= 13 else 1)) % max(len(shape), 1)
    rows = z if opset >= 13 else z.reshape(shape[:axis] + (-1,))
    a = axis if opset >= 13 else rows.ndim - 1
    shifted = rows - rows.max(axis=a, keepdims=True)
    log_total = np.log(np.exp(shifted).sum(axis=a, keepdims=True))
    out = shifted - log_total if kind == "LogSoftmax" else np.exp(shifted - log_total)
    return out.reshape(shape)


def _softmax(tracer, inputs, attrs, where: str, kind: str):
    v = need(inputs, 0, where)
    if not traced(v):
        return [_constant(kind, as_float(v), attrs, tracer.opset)]
    total, back = _sum_of_exponentials(tracer, v, attrs, where)
    if kind == "Softmax":
        return [back(activation(tracer, [total], where, "reciprocal")[0])]
    return [back(scale(activation(tracer, [total], where, "log")[0], -1.0))]


@operator("Softmax", attributes=("axis",))
def op_softmax(tracer, inputs, attrs, where):
    return _softmax(tracer, inputs, attrs, where, "Softmax")


@operator("LogSoftmax", attributes=("axis",))
def op_logsoftmax(tracer, inputs, attrs, where):
    return _softmax(tracer, inputs, attrs, where, "LogSoftmax")
