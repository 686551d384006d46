"""Activation operators: Relu, Sigmoid, Tanh.

On a traced tensor an activation closes it into an affine node followed by an
:class:`~reluverify.network.ActivationNode` of the same size; on a constant it is evaluated.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from reluverify.network import ActivationNode
from reluverify.onnx_import.registry import LEGACY, need, operator
from reluverify.onnx_import.values import as_float, traced


def activation(tracer, inputs, where: str, kind: str, fn: Callable[[np.ndarray], np.ndarray]):
    """The activation ``kind`` of the first input (``fn`` evaluates it on a constant)."""
    v = need(inputs, 0, where)
    if not traced(v):
        return [fn(as_float(v))]
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
