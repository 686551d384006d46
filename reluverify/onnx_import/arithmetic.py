"""Arithmetic operators: Add, Sub, Sum, Neg, Mul, Div, MatMul, Gemm.

Sums, differences and products or quotients by constants transform the traced affine
function; the product, quotient or matrix product of two traced tensors is built from product
nodes and activations by :mod:`.products`.
"""

from __future__ import annotations

import numpy as np

from reluverify import linear_ops as lo
from reluverify.errors import NetworkError
from reluverify.onnx_import.products import bilinear_matmul, divide_by_traced, times
from reluverify.onnx_import.registry import LEGACY, need, operator
from reluverify.onnx_import.values import (
    Linear,
    Value,
    add,
    apply_linear,
    as_float,
    move,
    multiply,
    scale,
    shape_of,
    traced,
)


@operator("Add", attributes=("broadcast", *LEGACY))
def op_add(tracer, inputs, attrs, where):
    return [add(tracer, need(inputs, 0, where), need(inputs, 1, where), where)]


@operator("Sub", attributes=("broadcast", *LEGACY))
def op_sub(tracer, inputs, attrs, where):
    return [add(tracer, need(inputs, 0, where), need(inputs, 1, where), where, sign=-1.0)]


@operator("Sum", attributes=LEGACY)
def op_sum(tracer, inputs, attrs, where):
    total = need(inputs, 0, where)
    for v in inputs[1:]:
        total = add(tracer, total, v, where)
    return [total]


@operator("Neg", attributes=LEGACY)
def op_neg(tracer, inputs, attrs, where):
    v = need(inputs, 0, where)
    return [v.scaled(-1.0) if traced(v) else -v]


@operator("Mul", attributes=("broadcast", *LEGACY))
def op_mul(tracer, inputs, attrs, where):
    return [times(tracer, need(inputs, 0, where), need(inputs, 1, where), where)]


@operator("Div", attributes=("broadcast", *LEGACY))
def op_div(tracer, inputs, attrs, where):
    a, b = need(inputs, 0, where), need(inputs, 1, where)
    if traced(b):
        return [divide_by_traced(tracer, a, b, where)]
    if not traced(a):
        return [a / b]
    c = as_float(b)
    if np.any(c == 0):
        raise NetworkError(f"{where}: division by zero")
    return [multiply(tracer, a, c, where, divide=True)]


def _matmul(tracer, a: Value, b: Value, where: str) -> Value:
    if traced(a) and traced(b):
        return bilinear_matmul(tracer, a, b, where)
    if not traced(a) and not traced(b):
        return np.matmul(a, b)
    if traced(a):
        w = as_float(b)
        if isinstance(a, Linear) and w.ndim == 2 and a.shape and a.shape[-1] == w.shape[0]:
            lead = int(np.prod(a.shape[:-1])) if len(a.shape) > 1 else 1
            return a.map(lo.repeat(np.ascontiguousarray(w.T), lead), a.shape[:-1] + (w.shape[1],))
        return apply_linear(a, lambda t: np.matmul(t, w), where)
    w = as_float(a)
    if len(b.shape) == 1:
        return apply_linear(b, lambda t: t @ w.T if w.ndim == 2 else np.matmul(w, t[..., None])[..., 0], where)
    return apply_linear(b, lambda t: np.matmul(w, t), where)


@operator("MatMul")
def op_matmul(tracer, inputs, attrs, where):
    return [_matmul(tracer, need(inputs, 0, where), need(inputs, 1, where), where)]


@operator("Gemm", attributes=("alpha", "beta", "transA", "transB", "broadcast"))
def op_gemm(tracer, inputs, attrs, where):
    a, b = need(inputs, 0, where), need(inputs, 1, where)
    c = inputs[2] if len(inputs) > 2 else None
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))

    def transpose(v):
        if traced(v):
            if len(v.shape) != 2:
                raise NetworkError(f"{where}: Gemm needs 2-D operands")
            return move(v, lambda t: np.swapaxes(t, -1, -2))
        return as_float(v).T

    if attrs.get("transA", 0):
        a = transpose(a)
    if attrs.get("transB", 0):
        b = transpose(b)
    for v in (a, b):
        if len(shape_of(v)) != 2:
            raise NetworkError(f"{where}: Gemm needs 2-D operands")
    out = _matmul(tracer, a, b, where)
    if alpha != 1.0:
        out = scale(out, alpha)
    if c is not None:
        out = add(tracer, out, scale(c, beta), where)
    return [out]
