"""Reverse-mode gradients through the IR, in numpy (no torch needed to verify).

:func:`input_gradient` takes the node values of a batch (from ``Network.evaluate_all``) and a
cotangent on the output, and returns the cotangent on the input: affine nodes pass it back
through their weights to every source, activations multiply by their derivative
(:data:`reluverify.elementwise.FUNCTIONS`: ReLU's is taken as 1 for positive inputs, 0 otherwise; the
step functions give a straight-through surrogate), products by the other operand. A derivative that is
not finite (at a point outside a function's domain) is taken as 0, so one such point cannot spoil the
gradients of a whole batch.
"""

from __future__ import annotations

import numpy as np

from reluverify import linear_ops as lo
from reluverify.elementwise import FUNCTIONS
from reluverify.network import ActivationNode, AffineNode, Network


def input_gradient(network: Network, values: list[np.ndarray], cotangent: np.ndarray) -> np.ndarray:
    """``d (cotangent . N(x)) / dx`` for each point of the batch: values from evaluate_all, cotangent (B, m)."""
    grads: dict[int, np.ndarray] = {len(network.nodes) - 1: np.asarray(cotangent, dtype=np.float64)}
    for k in range(len(network.nodes) - 1, 0, -1):
        g = grads.pop(k, None)
        if g is None:
            continue
        node = network.nodes[k]
        if isinstance(node, AffineNode):
            for source, weight in zip(node.sources, node.weights):
                _add(grads, source, g @ weight if lo.is_dense(weight) else lo.backward(weight, g))
        elif isinstance(node, ActivationNode):
            slope = FUNCTIONS[node.kind].derivative(values[node.source], values[k])
            _add(grads, node.source, g * np.where(np.isfinite(slope), slope, 0.0))
        else:
            _add(grads, node.left, g * values[node.right])
            _add(grads, node.right, g * values[node.left])
    out = grads.get(0)
    return np.zeros_like(values[0]) if out is None else out


def _add(grads: dict, node: int, g: np.ndarray) -> None:
    grads[node] = grads[node] + g if node in grads else g
