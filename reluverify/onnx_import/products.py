"""Operators that multiply input-dependent tensors: Mul and Div of two traced tensors, the matrix
product of two traced tensors (attention), and Pow.

Everything here is built from the IR's :class:`~reluverify.network.ProductNode` (the elementwise
product of two traced vectors) and activations, so that the nonlinear engine bounds it with the
relaxations it has for those:

* ``a * b`` -- broadcast both to the common shape, one product node (``x * x`` of one tensor: the
  ``square`` activation, whose relaxation knows it is never negative);
* ``a / b`` with ``b`` traced -- ``a * reciprocal(b)`` (``b``'s interval must avoid 0 for the bound to
  be finite; where it does not, the bounds say nothing and the query stays unknown);
* ``A @ B`` with both traced, ``A`` of shape ``(..., m, k)`` and ``B`` of shape ``(..., k, n)`` -- the
  ``m n k`` products ``A[..., i, t] B[..., t, j]`` in one product node (each operand gathered into
  that layout by an index map), then the sum over ``t``; batch axes broadcast as in numpy, a 1-D
  operand is a row (left) or a column (right) as in numpy;
* ``Pow(x, e)`` with a constant exponent -- ``e = 1``: ``x``; ``0``: ones; ``2``: ``square(x)``; another
  integer ``e >= 3``: square-and-multiply (``x^3 = x * square(x)``, ``x^4 = square(square(x))``, ...);
  ``0.5``: ``sqrt(x)``; a negative one of these: the ``reciprocal`` of the positive power. A constant
  base ``b > 0`` to a traced exponent is ``exp(ln(b) x)``. Other exponents are refused by name.
"""

from __future__ import annotations

import numpy as np

from reluverify.errors import NetworkError
from reluverify.network import ProductNode
from reluverify.onnx_import.activations import activation
from reluverify.onnx_import.reductions import reduce_axes
from reluverify.onnx_import.registry import const, need, operator
from reluverify.onnx_import.values import Value, as_float, move, multiply, scale, shape_of, traced


def product(tracer, a, b, where: str):
    """The elementwise product of two traced tensors: a new ProductNode over both, closed."""
    shape = np.broadcast_shapes(a.shape, b.shape)
    left = tracer.close(a.broadcast(shape), where)
    right = tracer.close(b.broadcast(shape), where)
    size = tracer.nodes[left].size
    return tracer.fresh(ProductNode(left, right, size), shape)


def times(tracer, a: Value, b: Value, where: str) -> Value:
    """``a * b`` of any two values (constant, or traced); ``x * x`` of one traced tensor is ``square(x)``."""
    if traced(a) and a is b:
        return activation(tracer, [a], where, "square")[0]
    if traced(a) and traced(b):
        return product(tracer, a, b, where)
    if not traced(a) and not traced(b):
        return a * b
    if traced(b):
        a, b = b, a
    return multiply(tracer, a, as_float(b), where)


def divide_by_traced(tracer, a: Value, b, where: str) -> Value:
    """``a / b`` for a traced ``b``: ``a * reciprocal(b)``."""
    inverse = activation(tracer, [b], where, "reciprocal")[0]
    return times(tracer, a, inverse, where)


# ------------------------------------------------------------------ matrix products
def bilinear_matmul(tracer, a, b, where: str):
    """``np.matmul(a, b)`` of two traced tensors (see the module docstring)."""
    a_shape, b_shape = tuple(a.shape), tuple(b.shape)
    if not a_shape or not b_shape:
        raise NetworkError(f"{where}: MatMul of a scalar")
    row, column = len(a_shape) == 1, len(b_shape) == 1
    if row:
        a, a_shape = a.reshaped((1,) + a_shape), (1,) + a_shape
    if column:
        b, b_shape = b.reshaped(b_shape + (1,)), b_shape + (1,)
    (m, k), (k2, n) = a_shape[-2:], b_shape[-2:]
    if k != k2:
        raise NetworkError(f"{where}: MatMul of shapes {a_shape} and {b_shape}")
    batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    target = tuple(batch) + (m, n, k)

    def left(t):  # (R, *batch_a, m, k) -> (R, *batch, m, n, k): element [.., i, j, t] = A[.., i, t]
        t = t.reshape(t.shape[:1] + (1,) * (len(batch) - len(a_shape) + 2) + t.shape[1:])
        return np.ascontiguousarray(np.broadcast_to(t[..., :, None, :], t.shape[:1] + target))

    def right(t):  # (R, *batch_b, k, n) -> (R, *batch, m, n, k): element [.., i, j, t] = B[.., t, j]
        t = t.reshape(t.shape[:1] + (1,) * (len(batch) - len(b_shape) + 2) + t.shape[1:])
        t = np.swapaxes(t, -1, -2)
        return np.ascontiguousarray(np.broadcast_to(t[..., None, :, :], t.shape[:1] + target))

    terms = product(tracer, move(a, left), move(b, right), where)
    out = reduce_axes(tracer, terms, [len(target) - 1], keepdims=False, mean=False, where=where)
    shape = tuple(batch) + (m, n)
    if row:
        shape = shape[:-2] + (n,)
    if column:
        shape = shape[:-1]
    return out.reshaped(shape)


# ------------------------------------------------------------------ powers
def power(tracer, x, exponent: float, where: str):
    """``x ** exponent`` of a traced ``x`` for the exponents of the module docstring."""
    if exponent == 1.0:
        return x
    if exponent == 0.0:
        return np.ones(shape_of(x))
    if exponent < 0:
        return activation(tracer, [power(tracer, x, -exponent, where)], where, "reciprocal")[0]
    if exponent == 0.5:
        return activation(tracer, [x], where, "sqrt")[0]
    if exponent != int(exponent) or exponent > 64:
        raise NetworkError(f"{where}: Pow with exponent {exponent:g} of a tensor that depends on the input is not "
                           "supported (integers up to 64, 0.5, and their negatives are)")
    e = int(exponent)
    half = power(tracer, x, e // 2, where) if e // 2 > 1 else x
    squared = activation(tracer, [half], where, "square")[0]
    return product(tracer, squared, x, where) if e % 2 else squared


@operator("Pow")
def op_pow(tracer, inputs, attrs, where):
    base, exponent = need(inputs, 0, where), need(inputs, 1, where)
    if not traced(base) and not traced(exponent):
        return [np.power(base, exponent)]
    if traced(exponent):
        b = as_float(base)
        if b.size == 0 or not np.all(b == b.flat[0]) or not b.flat[0] > 0:
            raise NetworkError(f"{where}: Pow of an input-dependent exponent needs one positive constant base")
        return [activation(tracer, [scale(exponent, float(np.log(b.flat[0])))], where, "exp")[0]]
    e = as_float(const(exponent, where, "the exponent"))
    if e.size == 0 or not np.all(e == e.flat[0]):
        raise NetworkError(f"{where}: Pow with exponents that differ per element is not supported")
    out = power(tracer, base, float(e.flat[0]), where)
    shape = np.broadcast_shapes(shape_of(base), e.shape)
    if traced(out):
        return [out.broadcast(shape) if tuple(out.shape) != shape else out]
    return [np.broadcast_to(out, shape).copy()]
