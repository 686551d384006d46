"""Elementwise activation operators: Relu, Sigmoid, Tanh, Sin, Cos, Exp, Log, Sqrt, Reciprocal, Sign, Floor.

On a traced tensor an activation closes it into an affine node followed by an
:class:`~reluverify.network.ActivationNode` of the same size (its kind one of
:data:`reluverify.elementwise.FUNCTIONS`); on a constant it is evaluated with the same function.
Only Relu keeps a network piecewise linear; the others send its queries to the nonlinear engine.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from reluverify.elementwise import FUNCTIONS
from reluverify.network import ActivationNode
from reluverify.onnx_import.registry import LEGACY, need, operator
from reluverify.onnx_import.values import as_float, traced


def activation(tracer, inputs, where: str, kind: str, fn: Callable[[np.ndarray], np.ndarray] | None = None):
    """The activation ``kind`` of the first input (``fn``, by default the kind's own function, evaluates
    it on a constant)."""
    v = need(inputs, 0, where)
    if not traced(v):
        return [(fn or FUNCTIONS[kind].value)(as_float(v))]
    source = tracer.close(v, where)
    return [tracer.fresh(ActivationNode(kind, source, tracer.nodes[source].size), v.shape)]


@operator("Relu", attributes=LEGACY)
def op_relu(tracer, inputs, attrs, where):
    return activation(tracer, inputs, where, "relu", lambda z: np.maximum(z, 0.0))


@operator("Sigmoid", attributes=LEGACY)
def op_sigmoid(tracer, inputs, attrs, where):
    return activation(tracer, inputs, where, "sigmoid", lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)))


@operator("Tanh", attributes=LEGACY)
def op_tanh(tracer, inputs, attrs, where):
    return activation(tracer, inputs, where, "tanh", np.tanh)


def _register(op_type: str, kind: str) -> None:
    @operator(op_type)
    def op(tracer, inputs, attrs, where):
        return activation(tracer, inputs, where, kind)

    op.__name__ = op.__qualname__ = f"op_{kind}"


for _op_type, _kind in (("Sin", "sin"), ("Cos", "cos"), ("Exp", "exp"), ("Log", "log"), ("Sqrt", "sqrt"),
                        ("Reciprocal", "reciprocal"), ("Sign", "sign"), ("Floor", "floor")):
    _register(_op_type, _kind)
