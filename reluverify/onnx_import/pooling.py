"""Pooling operators: AveragePool, GlobalAveragePool, MaxPool.

Average pooling is a grouped convolution (one channel per group) followed, where windows
hold different numbers of elements, by their divisors. Max pooling is lowered exactly to
ReLUs (see :func:`op_maxpool`).
"""

from __future__ import annotations

import numpy as np

from reluverify import linear_ops as lo
from reluverify.errors import NetworkError
from reluverify.network import ActivationNode
from reluverify.onnx_import.convolution import window_geometry
from reluverify.onnx_import.registry import need, operator
from reluverify.onnx_import.values import (
    MAX_TENSOR_ELEMENTS,
    Linear,
    apply_op,
    as_float,
    shape_of,
    to_linear,
    traced,
)

_WINDOW = ("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides")


def _pool_attrs(attrs, where, rank: int) -> list[int]:
    kernel = [int(k) for k in attrs["kernel_shape"]]
    if len(kernel) != rank - 2 or min(kernel, default=1) < 1 or len(kernel) not in (1, 2):
        raise NetworkError(f"{where}: kernel_shape {kernel} does not fit a 1-D or 2-D pool over a rank-{rank} tensor")
    if int(attrs.get("storage_order", 0)) != 0:
        raise NetworkError(f"{where}: storage_order 1 is not supported")
    return kernel


def _pool_apply(tracer, x, op, shape, where):
    """A pooling operator (a Conv, or a Conv then its divisors) on each item of the leading axis."""
    out_spatial = (op.out_shape if isinstance(op, lo.Conv) else op.ops[0].out_shape)[1:]
    out_shape = (shape[0], shape[1]) + tuple(out_spatial)
    if not traced(x):
        return lo.forward(op, as_float(x).reshape(shape[0], -1)).reshape(out_shape)
    return apply_op(tracer, x, lo.repeat(op, shape[0]), out_shape, where)


@operator("AveragePool", attributes=(*_WINDOW, "count_include_pad"))
def op_averagepool(tracer, inputs, attrs, where):
    """AveragePool as a convolution with groups = channels (``count_include_pad`` sets the divisors)."""
    x = need(inputs, 0, where)
    shape = shape_of(x)
    kernel = _pool_attrs(attrs, where, len(shape))
    strides, pads, dilations, extra = window_geometry(shape, kernel, attrs, where, pool=True)
    nd = len(kernel)
    channels = shape[1]
    total_pads = [p + (extra[i - nd] if i >= nd else 0) for i, p in enumerate(pads)]
    ones = np.ones((1, 1) + tuple(kernel))
    counter = lo.Conv(ones, (1,) + tuple(shape[2:]), strides, total_pads, dilations)
    if int(attrs.get("count_include_pad", 0)):
        # the elements inside the declared padding count; those of ceil_mode's extra padding do not
        padded = tuple(d + pads[i] + pads[i + nd] for i, d in enumerate(shape[2:]))
        counter = lo.Conv(ones, (1,) + padded, strides, [0] * nd + extra, dilations)
        count = counter.forward(np.ones((1, int(np.prod(padded)))))[0]
    else:
        count = counter.forward(np.ones((1, int(np.prod(shape[2:])))))[0]
    if np.any(count <= 0):
        raise NetworkError(f"{where}: a pooling window holds no input element")
    if np.all(count == count[0]):
        op = lo.Conv(np.full((channels, 1) + tuple(kernel), 1.0 / count[0]), shape[1:], strides, total_pads, dilations,
                     channels)
    else:
        summed = lo.Conv(np.ones((channels, 1) + tuple(kernel)), shape[1:], strides, total_pads, dilations, channels)
        op = lo.compose(lo.diagonal(np.tile(1.0 / count, channels)), summed)
    return [_pool_apply(tracer, x, op, shape, where)]


@operator("GlobalAveragePool")
def op_globalaveragepool(tracer, inputs, attrs, where):
    x = need(inputs, 0, where)
    shape = shape_of(x)
    if len(shape) not in (3, 4):
        raise NetworkError(f"{where}: GlobalAveragePool of a rank-{len(shape)} tensor (1-D and 2-D are supported)")
    kernel = tuple(shape[2:])
    op = lo.Conv(np.full((shape[1], 1) + kernel, 1.0 / int(np.prod(kernel))), shape[1:], groups=shape[1])
    return [_pool_apply(tracer, x, op, shape, where)]


def _selection_like(value: Linear) -> bool:
    return all(isinstance(w, (lo.IndexMap, lo.Sparse)) or
               (isinstance(w, np.ndarray) and w.size <= lo.FOLD_LIMIT) for _, _, w in value.terms)


def _nonnegative(tracer, value: Linear) -> bool:
    """True when the value is a non-negative combination of ReLU outputs plus a non-negative constant."""
    if np.any(value.bias < 0):
        return False
    for node, _, w in value.terms:
        target = tracer.nodes[node]
        if not (isinstance(target, ActivationNode) and target.kind == "relu"):
            return False
        if isinstance(w, lo.IndexMap):
            if w.scale is not None and np.any(w.scale < 0):
                return False
        elif isinstance(w, lo.Sparse):
            if np.any(w.values < 0):
                return False
        elif not (isinstance(w, np.ndarray) and np.all(w >= 0)):
            return False
    return True


def _relu_layer(tracer, value: Linear, units: int, where: str) -> int:
    """Close ``value`` (``units`` elements) into an affine node and a ReLU over it; the ReLU's node index."""
    tracer.fresh(ActivationNode("relu", tracer.close(tracer.normalise(value, where), where), units), (units,))
    return len(tracer.nodes) - 1


def _window_indices(shape, kernel, strides, pads, dilations, extra, where):
    """Each output's window as indices into the flat input (padding repeats a real value), and the output shape."""
    nd = len(kernel)
    index = np.arange(int(np.prod(shape))).reshape(shape)
    width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nd] + extra[i]) for i in range(nd)]
    index = np.pad(index, width, constant_values=-1)  # padding marked -1
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if any(index.shape[2 + i] < eff[i] for i in range(nd)):
        raise NetworkError(f"{where}: the pooling window is larger than the padded input")
    windows = np.lib.stride_tricks.sliding_window_view(index, eff, axis=tuple(range(2, 2 + nd)))
    windows = windows[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
                      + tuple(slice(None, None, d) for d in dilations)]
    out_shape = windows.shape[: 2 + nd]
    windows = windows.reshape(-1, int(np.prod(kernel)))
    valid = windows >= 0
    if not np.all(valid.any(axis=1)):
        raise NetworkError(f"{where}: a pooling window holds no input element")
    first = windows[np.arange(windows.shape[0]), valid.argmax(axis=1)]
    return np.where(valid, windows, first[:, None]), out_shape  # max(a, a) = a


def _unit_sum(outputs: int, units: int, offset: int, signs: tuple[float, ...]):
    """Per output ``r``: ``sum_k signs[k] * unit[(offset + k) * outputs + r]``, an (outputs x units) operator."""
    rows = np.arange(outputs)
    cols = [(offset + k) * outputs + rows for k in range(len(signs))]
    values = [np.full(outputs, s) for s in signs]
    return lo.Sparse(np.tile(rows, len(signs)), np.concatenate(cols), np.concatenate(values), (outputs, units))


@operator("MaxPool", attributes=(*_WINDOW, "storage_order"))
def op_maxpool(tracer, inputs, attrs, where):
    """MaxPool, exactly, as ReLUs: a binary tree of ``max(a, b) = relu(a - b) + relu(b) [- relu(-b)]``.

    The window's values are paired level by level (``ceil(log2 k)`` ReLU layers for a window
    of ``k`` values); every level is one affine node and one ReLU node over the previous
    level's units only, so a network stays a ReLU chain. ``b`` passes as ``relu(b)`` when
    the pooled tensor is known non-negative (a ReLU's output: those units are stable),
    else as ``relu(b) - relu(-b)``. A pooled tensor that is not a selection of earlier
    values (a convolution's output) is first split into ``relu(x), relu(-x)`` units, so
    every level's weights are sparse. Cost per output value: about ``2k`` units (``3k``
    for a signed input, plus ``2`` per pooled value for the split).
    """
    if int(attrs["_outputs"]) > 1:
        raise NetworkError(f"{where}: the Indices output of MaxPool is not supported")
    x = need(inputs, 0, where)
    shape = shape_of(x)
    kernel = _pool_attrs(attrs, where, len(shape))
    strides, pads, dilations, extra = window_geometry(shape, kernel, attrs, where, pool=True)
    size = int(np.prod(shape))
    windows, out_shape = _window_indices(shape, kernel, strides, pads, dilations, extra, where)
    if not traced(x):
        return [as_float(x).ravel()[windows].max(axis=1).reshape(out_shape)]
    outputs = windows.shape[0]
    if int(np.prod(out_shape)) * (3 * windows.shape[1] + 2) > MAX_TENSOR_ELEMENTS:
        raise NetworkError(f"{where}: the max pooling needs too many ReLUs")
    value = to_linear(x)
    signed = not _nonnegative(tracer, value)
    if windows.shape[1] > 1 and not _selection_like(value):
        # split x = relu(x) - relu(-x) so that the levels below combine sparse selections
        both = Linear(tuple((n, k, lo.vstack([w, lo.scaled(w, -1.0)])) for n, k, w in value.terms),
                      np.concatenate([value.bias.ravel(), -value.bias.ravel()]))
        node = _relu_layer(tracer, both, 2 * size, where)
        split = lo.Sparse(np.r_[np.arange(size), np.arange(size)], np.arange(2 * size),
                          np.r_[np.ones(size), -np.ones(size)], (size, 2 * size))
        value = Linear(((node, 2 * size, split),), np.zeros(size))
    # the columns: per output, its window's values, as selections of the current space
    space = value  # an affine function of the current units (x's sources first)
    columns = [lo.IndexMap(windows[:, j], size) for j in range(windows.shape[1])]
    while len(columns) > 1:
        pairs = [(columns[i], columns[i + 1]) for i in range(0, len(columns) - 1, 2)]
        odd = [columns[-1]] if len(columns) % 2 else []
        parts = []  # rows of the level's pre-activations, as operators on the current space
        for a, b in pairs:
            parts.append(lo.add(a, lo.scaled(b, -1.0)))  # relu(a - b)
            parts.append(b)  # relu(b)
            if signed:
                parts.append(lo.scaled(b, -1.0))  # relu(-b)
        for c in odd:
            parts.append(c)
            if signed:
                parts.append(lo.scaled(c, -1.0))
        stacked = lo.Sparse(*_stack_sparse(parts))
        units = lo.shape(stacked)[0]
        node = _relu_layer(tracer, space.map(stacked, (units,)), units, where)
        # the new columns: max of each pair (u0 + u1 [- u2]), the odd one (u0 [- u1]), over the level's units
        pair, single = ((1.0, 1.0, -1.0), (1.0, -1.0)) if signed else ((1.0, 1.0), (1.0,))
        columns, offset = [], 0
        for signs in [pair] * len(pairs) + [single] * len(odd):
            columns.append(_unit_sum(outputs, units, offset, signs))
            offset += len(signs)
        space = Linear.of_node(node, units, (units,))
    return [space.map(columns[0], out_shape)]


def _stack_sparse(parts: list) -> tuple:
    """Rows of IndexMap/Sparse operators one after another, as coordinate arrays."""
    rows_, cols, vals, offset = [], [], [], 0
    for part in parts:
        s = part.to_sparse() if isinstance(part, lo.IndexMap) else part
        rows_.append(s.row_index + offset)
        cols.append(s.col_index)
        vals.append(s.values)
        offset += lo.shape(part)[0]
    return np.concatenate(rows_), np.concatenate(cols), np.concatenate(vals), (offset, lo.shape(parts[0])[1])
