"""Selection operators on traced tensors: Expand and Where (with a constant condition).

Both are linear and exact: Expand broadcasts (an index map); Where with a constant condition is
``x * mask + y * (1 - mask)`` (a constant side contributes ``where(mask, x, 0)``). A condition that
depends on the input is refused. Constant uses are normally folded before tracing (:mod:`.folding`);
here they are evaluated with numpy. :func:`selected` also serves :mod:`.resizing`.
"""

from __future__ import annotations

import numpy as np

from reluverify.onnx_import.registry import const, need, operator
from reluverify.onnx_import.values import (
    Affine,
    add,
    as_float,
    elements,
    move,
    multiply,
    shape_of,
    to_linear,
    traced,
)


def selected(tracer, v, out_shape, fn, where):
    """``move(v, fn)`` in the form the size rule picks for a result of ``out_shape``."""
    if isinstance(v, Affine) and tracer.structured(v, elements(out_shape), where):
        v = to_linear(v)
    return move(v, fn)


@operator("Expand")
def op_expand(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    target = tuple(int(d) for d in np.ravel(const(inputs[1] if len(inputs) > 1 else None, where, "the shape input")))
    out_shape = tuple(np.broadcast_shapes(shape_of(v), target))
    if not traced(v):
        return [np.broadcast_to(np.asarray(v), out_shape).copy()]
    lifted = (1,) * (len(out_shape) - len(shape_of(v))) + shape_of(v)  # the lower rank padded with leading 1s
    return [selected(tracer, v, out_shape,
                      lambda t: np.broadcast_to(t.reshape((t.shape[0],) + lifted), (t.shape[0],) + out_shape), where)]


@operator("Where")
def op_where(tracer, inputs, attrs, where):
    condition = np.asarray(const(need(inputs, 0, where), where, "the condition")).astype(bool)
    x, y = need(inputs, 1, where), need(inputs, 2, where)
    if not traced(x) and not traced(y):
        return [np.where(condition, x, y)]
    shape = tuple(np.broadcast_shapes(condition.shape, shape_of(x), shape_of(y)))
    mask = np.broadcast_to(condition, shape)

    def side(v, keep):
        if traced(v):
            return multiply(tracer, v, keep.astype(np.float64), where)
        return np.where(keep, np.broadcast_to(as_float(v), shape), 0.0)

    return [add(tracer, side(x, mask), side(y, ~mask), where)]
