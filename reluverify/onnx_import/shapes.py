"""Shape and data-movement operators: Identity, Dropout, Constant, Flatten, Reshape, Squeeze,
Unsqueeze, Transpose, Shape, Cast, Concat, Slice, Gather, Split.

On a traced value these only move data (a reshape keeps the function as it is, the others
are index maps, see :func:`~reluverify.onnx_import.values.move`); on constants -- the shape
arithmetic of exported graphs -- they are evaluated with numpy.
"""

from __future__ import annotations

import math

import numpy as np

from reluverify import linear_ops as lo
from reluverify import onnx_proto
from reluverify.errors import NetworkError
from reluverify.onnx_import.registry import LEGACY, const, need, operator
from reluverify.onnx_import.values import (
    MAX_TENSOR_ELEMENTS,
    Affine,
    Linear,
    Value,
    align,
    as_float,
    elements,
    move,
    reshape,
    shape_of,
    to_linear,
    traced,
)


@operator("Identity")
def op_identity(tracer, inputs, attrs, where):
    return [inputs[0]]


@operator("Dropout", attributes=("ratio", "seed", "is_test", *LEGACY))
def op_dropout(tracer, inputs, attrs, where):
    if len(inputs) > 2 and inputs[2] is not None and np.any(const(inputs[2], where, "training_mode")):
        raise NetworkError(f"{where}: dropout in training mode is not supported")
    return [need(inputs, 0, where)]


@operator("Constant", attributes=("value", "value_float", "value_int", "value_floats", "value_ints"))
def op_constant(tracer, inputs, attrs, where):
    if "value" in attrs:
        return [onnx_proto.to_array(attrs["value"])]
    for key in ("value_float", "value_int"):
        if key in attrs:
            return [np.array(attrs[key])]
    for key in ("value_floats", "value_ints"):
        if key in attrs:
            return [np.array(list(attrs[key]))]
    raise NetworkError(f"{where}: unsupported Constant attribute {sorted(attrs)}")


@operator("Flatten", attributes=("axis",))
def op_flatten(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    shape = shape_of(v)
    axis = int(attrs.get("axis", 1))
    if axis < 0:
        axis += len(shape)
    outer = int(np.prod(shape[:axis])) if axis > 0 else 1
    return [reshape(v, (outer, elements(shape[axis:])))]


@operator("Reshape", attributes=("allowzero", *LEGACY))
def op_reshape(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    target = [int(d) for d in const(inputs[1] if len(inputs) > 1 else None, where, "the shape input").ravel()]
    shape = shape_of(v)
    allow_zero = int(attrs.get("allowzero", 0))
    resolved = []
    for i, d in enumerate(target):
        if d == 0 and not allow_zero:
            resolved.append(shape[i])
        else:
            resolved.append(d)
    total = elements(shape)
    if resolved.count(-1) > 1:
        raise NetworkError(f"{where}: more than one -1 in the target shape")
    if -1 in resolved:
        known = int(np.prod([d for d in resolved if d != -1])) if len(resolved) > 1 else 1
        if known == 0 or total % known:
            raise NetworkError(f"{where}: cannot reshape {shape} to {target}")
        resolved[resolved.index(-1)] = total // known
    if int(np.prod(resolved)) != total:
        raise NetworkError(f"{where}: cannot reshape {shape} ({total} elements) to {tuple(resolved)}")
    return [reshape(v, tuple(resolved))]


def _axes_arg(inputs, attrs, where, position=1):
    if len(inputs) > position and inputs[position] is not None:
        return [int(a) for a in const(inputs[position], where, "axes").ravel()]
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    return None


@operator("Squeeze", attributes=("axes",))
def op_squeeze(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    shape = shape_of(v)
    axes = _axes_arg(inputs, attrs, where)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = [a + len(shape) if a < 0 else a for a in axes]
    for a in axes:
        if shape[a] != 1:
            raise NetworkError(f"{where}: cannot squeeze axis {a} of size {shape[a]}")
    return [reshape(v, tuple(d for i, d in enumerate(shape) if i not in axes))]


@operator("Unsqueeze", attributes=("axes",))
def op_unsqueeze(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    shape = list(shape_of(v))
    axes = _axes_arg(inputs, attrs, where)
    if axes is None:
        raise NetworkError(f"{where}: Unsqueeze needs axes")
    rank = len(shape) + len(axes)
    for a in sorted(a + rank if a < 0 else a for a in axes):
        shape.insert(a, 1)
    return [reshape(v, tuple(shape))]


@operator("Transpose", attributes=("perm",))
def op_transpose(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    rank = len(shape_of(v))
    perm = list(attrs.get("perm", list(range(rank))[::-1]))
    return [move(v, lambda t: np.transpose(t, [0] + [p + 1 for p in perm]))]


@operator("Shape", attributes=("start", "end"))
def op_shape(tracer, inputs, attrs, where):
    shape = np.array(shape_of(need(inputs, 0, where)), dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return [shape[start:end]]


@operator("Cast", attributes=("to", "saturate"))
def op_cast(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    dtype = onnx_proto.numpy_dtype(int(attrs["to"]))
    if traced(v):
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise NetworkError(f"{where}: a cast to {np.dtype(dtype).name} of a tensor that depends on the network "
                               "input is not supported (it rounds)")
        return [v]
    return [np.asarray(v).astype(dtype)]


@operator("Concat", attributes=("axis",))
def op_concat(tracer, inputs, attrs, where):
    values = [v for v in inputs if v is not None]
    axis = int(attrs["axis"])
    if not any(traced(v) for v in values):
        return [np.concatenate([np.asarray(v) for v in values], axis=axis)]
    rank = len(shape_of(values[0]))
    axis = axis + rank if axis < 0 else axis
    total = sum(elements(shape_of(v)) for v in values)
    table_size = sum(v.table_size(total) if traced(v) else 0 for v in values)
    if any(isinstance(v, Linear) for v in values) or table_size > tracer.limit or total > MAX_TENSOR_ELEMENTS:
        if total > MAX_TENSOR_ELEMENTS:
            raise NetworkError(f"{where}: the traced tensor would be too large ({total} elements)")
        return [_concat_structured(values, axis)]
    # bring every part over the same sources
    template = None
    for v in values:
        if traced(v):
            template = v if template is None else align(template, v)[0]
    parts = []
    for v in values:
        if traced(v):
            _, v = align(template, v)  # template holds every source: v over template's order
            parts.append(v.table)
        else:
            table = np.zeros((template.table.shape[0],) + np.shape(v))
            table[0] = as_float(v)
            parts.append(table)
    return [Affine(template.sources, np.concatenate(parts, axis=axis + 1))]


def _concat_structured(values: list, axis: int) -> Linear:
    """Concatenation of structured parts: their operators stacked, then the order of ``axis`` restored."""
    shapes = [tuple(shape_of(v)) for v in values]
    sizes = [elements(s) for s in shapes]
    starts = np.cumsum([0] + sizes)
    order = np.concatenate(
        [np.arange(starts[k], starts[k + 1]).reshape(shapes[k]) for k in range(len(values))], axis=axis
    )
    parts = [to_linear(v) if traced(v) else None for v in values]
    nodes: dict[int, int] = {}
    for part in parts:
        if part is not None:
            for node, size, _ in part.terms:
                nodes.setdefault(node, size)
    perm = lo.IndexMap(order.ravel(), int(starts[-1]))
    terms = []
    for node, size in nodes.items():
        grid = {}
        for k, part in enumerate(parts):
            for n, _, w in part.terms if part is not None else ():
                if n == node:
                    grid[(k, 0)] = w
        terms.append((node, size, lo.compose(perm, lo.blocks(sizes, [size], grid))))
    biases = [p.bias if p is not None else as_float(v) for p, v in zip(parts, values)]
    return Linear(tuple(terms), np.concatenate([np.asarray(b, dtype=np.float64) for b in biases], axis=axis))


def _slice(v: Value, index: tuple) -> Value:
    return move(v, lambda t: t[(slice(None),) + index])


@operator("Slice", attributes=("starts", "ends", "axes"))
def op_slice(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    shape = shape_of(v)
    if tracer.opset < 10:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = [int(s) for s in const(inputs[1], where, "starts").ravel()]
        ends = [int(s) for s in const(inputs[2], where, "ends").ravel()]
        axes = (
            [int(a) for a in const(inputs[3], where, "axes").ravel()]
            if len(inputs) > 3 and inputs[3] is not None
            else list(range(len(starts)))
        )
        steps = (
            [int(s) for s in const(inputs[4], where, "steps").ravel()]
            if len(inputs) > 4 and inputs[4] is not None
            else [1] * len(starts)
        )
    index = [slice(None)] * len(shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = a + len(shape) if a < 0 else a
        big = 2**62
        s = max(min(s, big), -big)
        e = max(min(e, big), -big)
        index[a] = slice(s, e, st)
    return [_slice(v, tuple(index))]


@operator("Gather", attributes=("axis",))
def op_gather(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    idx = np.asarray(const(inputs[1], where, "indices")).astype(np.int64)
    axis = int(attrs.get("axis", 0))
    shape = shape_of(v)
    axis = axis + len(shape) if axis < 0 else axis
    idx = np.where(idx < 0, idx + shape[axis], idx)
    if isinstance(v, Affine) and tracer.structured(v, elements(shape[:axis] + idx.shape + shape[axis + 1 :]), where):
        v = to_linear(v)
    return [move(v, lambda t: np.take(t, idx, axis=axis + 1))]


@operator("Split", attributes=("axis", "split", "num_outputs"))
def op_split(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    shape = shape_of(v)
    axis = int(attrs.get("axis", 0))
    axis = axis + len(shape) if axis < 0 else axis
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = [int(s) for s in const(inputs[1], where, "split").ravel()]
    elif "split" in attrs:
        sizes = [int(s) for s in attrs["split"]]
    else:
        parts = int(attrs.get("num_outputs", 0)) or int(attrs["_outputs"])
        chunk = math.ceil(shape[axis] / parts)
        sizes = [min(chunk, shape[axis] - i * chunk) for i in range(parts)]
    outs, start = [], 0
    for size in sizes:
        index = [slice(None)] * len(shape)
        index[axis] = slice(start, start + size)
        outs.append(_slice(v, tuple(index)))
        start += size
    return outs

