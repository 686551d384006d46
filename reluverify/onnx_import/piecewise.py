"""Piecewise-linear operators as ReLU combinations, exactly: Clip, LeakyRelu, Max, Min, Abs.

* ``Clip(x, lo, hi) = lo + relu(x - lo) - relu(x - hi)`` (one ReLU with only ``lo``: ``lo + relu(x - lo)``,
  one with only ``hi``: ``hi - relu(hi - x)``); bounds must be constants;
* ``LeakyRelu(x) = alpha * x + (1 - alpha) * relu(x)``, for any ``alpha``;
* ``Max(a, b) = b + relu(a - b)`` and ``Min(a, b) = a - relu(a - b)``, broadcast, over two or more inputs
  pairwise;
* ``Abs(x) = 2 relu(x) - x``.

Each ReLU closes its argument into an affine node followed by an
:class:`~reluverify.network.ActivationNode` (as :mod:`.activations` does); the terms outside the ReLU
are skip connections. On constants the operators are evaluated with numpy.
"""

from __future__ import annotations

import numpy as np

from reluverify.errors import NetworkError
from reluverify.network import ActivationNode
from reluverify.onnx_import.registry import LEGACY, const, need, operator
from reluverify.onnx_import.values import add, as_float, scale, shape_of, traced


def relu(tracer, v, where: str):
    """The traced ``relu(v)`` of a traced value ``v``: a new affine node and a ReLU over it."""
    source = tracer.close(v, where)
    return tracer.fresh(ActivationNode("relu", source, tracer.nodes[source].size), shape_of(v))


def _bound(inputs, attrs, where: str, position: int, name: str) -> float | None:
    """Clip's ``min`` or ``max``: the input at ``position`` (opset 11 on) or the attribute; None when absent."""
    if len(inputs) > position and inputs[position] is not None:
        array = np.asarray(const(inputs[position], where, name))
        if array.size != 1:
            raise NetworkError(f"{where}: {name} must be a scalar, not of shape {array.shape}")
        value = float(array.ravel()[0])
    elif name in attrs:
        value = float(attrs[name])
    else:
        return None
    if np.isnan(value):
        raise NetworkError(f"{where}: {name} is NaN")
    return None if np.isinf(value) else value


@operator("Clip", attributes=("min", "max", *LEGACY))
def op_clip(tracer, inputs, attrs, where):
    x = need(inputs, 0, where)
    low, high = _bound(inputs, attrs, where, 1, "min"), _bound(inputs, attrs, where, 2, "max")
    if not traced(x):
        out = as_float(x)
        out = out if low is None else np.maximum(out, low)
        out = out if high is None else np.minimum(out, high)
        return [out.astype(np.asarray(x).dtype)]
    if low is not None and high is not None:
        if low > high:  # ONNX: min(max(x, lo), hi) = hi everywhere
            return [add(tracer, scale(x, 0.0), np.float64(high), where)]
        above_low = relu(tracer, add(tracer, x, np.float64(-low), where), where)
        above_high = relu(tracer, add(tracer, x, np.float64(-high), where), where)
        return [add(tracer, add(tracer, above_low, above_high, where, sign=-1.0), np.float64(low), where)]
    if low is not None:
        return [add(tracer, relu(tracer, add(tracer, x, np.float64(-low), where), where), np.float64(low), where)]
    if high is not None:
        below_high = relu(tracer, add(tracer, np.float64(high), x, where, sign=-1.0), where)
        return [add(tracer, np.float64(high), below_high, where, sign=-1.0)]
    return [x]


@operator("LeakyRelu", attributes=("alpha", *LEGACY))
def op_leakyrelu(tracer, inputs, attrs, where):
    x = need(inputs, 0, where)
    alpha = float(attrs.get("alpha", 0.01))
    if not traced(x):
        z = as_float(x)
        return [np.where(z >= 0, z, alpha * z)]
    if alpha == 1.0:
        return [x]
    return [add(tracer, scale(x, alpha), scale(relu(tracer, x, where), 1.0 - alpha), where)]


def _extreme(tracer, inputs, where: str, larger: bool):
    values = [v for v in inputs if v is not None]
    if not values:
        raise NetworkError(f"{where}: expected at least 1 input")
    out = values[0]
    for v in values[1:]:
        if not traced(out) and not traced(v):
            out = np.maximum(out, v) if larger else np.minimum(out, v)
            continue
        gap = relu(tracer, add(tracer, out, v, where, sign=-1.0), where)  # relu(a - b)
        out = add(tracer, v, gap, where) if larger else add(tracer, out, gap, where, sign=-1.0)
    return [out]


@operator("Max", attributes=LEGACY)
def op_max(tracer, inputs, attrs, where):
    return _extreme(tracer, inputs, where, larger=True)


@operator("Min", attributes=LEGACY)
def op_min(tracer, inputs, attrs, where):
    return _extreme(tracer, inputs, where, larger=False)


@operator("Abs", attributes=LEGACY)
def op_abs(tracer, inputs, attrs, where):
    """``|x| = 2 relu(x) - x``: one ReLU, exact."""
    x = need(inputs, 0, where)
    if not traced(x):
        return [np.abs(x)]
    return [add(tracer, scale(relu(tracer, x, where), 2.0), x, where, sign=-1.0)]
