"""Small networks for the nonlinear-procedure tests (random DAGs, a tiny SRU built as IR), and their checks.

The other ``test_nonlinear_*`` modules import the builders from here.
"""

from __future__ import annotations

import numpy as np
import pytest

from reluverify.network import ActivationNode, AffineNode, InputNode, Network, ProductNode


def random_dag(rng: np.random.Generator, inputs: int = 3, width: int = 4, layers: int = 6, outputs: int = 3,
               scale: float = 1.0, kinds=("sigmoid", "tanh", "relu")) -> Network:
    """A random DAG: affine nodes reading up to three earlier nodes, activations and products.

    Every non-input node has ``width`` elements (the output ``outputs``), so any two can be
    multiplied; ``scale`` multiplies the weights (large scales saturate the sigmoids).
    """
    nodes = [InputNode(inputs)]

    def affine(size: int) -> AffineNode:
        count = int(rng.integers(1, min(3, len(nodes)) + 1))
        sources = tuple(sorted(rng.choice(len(nodes), size=count, replace=False).tolist()))
        weights = tuple(rng.normal(0, scale / np.sqrt(nodes[s].size), (size, nodes[s].size)) for s in sources)
        return AffineNode(sources, weights, rng.normal(0, 0.5 * scale, size))

    for _ in range(layers):
        nodes.append(affine(width))
        choice = rng.random()
        if choice < 0.6:
            nodes.append(ActivationNode(str(rng.choice(kinds)), len(nodes) - 1, width))
        else:
            nodes.append(affine(width))
            nodes.append(ProductNode(len(nodes) - 2, len(nodes) - 1, width))
    nodes.append(affine(outputs))
    return Network(tuple(nodes), input_shape=(1, inputs), output_shape=(1, outputs))


def tiny_sru(rng: np.random.Generator, steps: int = 2, features: int = 1, hidden: int = 2, classes: int = 2,
             scale: float = 1.5) -> Network:
    """An SRU classifier as IR, the same algebra as :mod:`reluverify.train.sru` and its export.

    Always with the projected highway ``W_h`` (torch's SRU uses it when ``features != hidden``).

    ``f_t = sigmoid(W_f x_t + v_f c + b_f)``, ``c_t = X_t + f_t (c - X_t)`` with ``X_t = W x_t``,
    ``r = sigmoid(W_r x_T + v_r c_{T-1} + b_r)``, ``h = H + r (c_T - H)`` with ``H = alpha W_h x_T``;
    logits ``= head h + b``. The input is the ``steps * features`` values, step by step.
    """
    n = steps * features
    alpha = np.sqrt(3.0)
    w, wf, wr, wh = (rng.normal(0, scale, (hidden, features)) for _ in range(4))
    vf, vr = rng.normal(0, scale, hidden), rng.normal(0, scale, hidden)
    bf, br = rng.normal(0, 0.5, hidden), rng.normal(0, 0.5, hidden)
    nodes: list = [InputNode(n)]

    def step_input(matrix: np.ndarray, t: int) -> np.ndarray:
        full = np.zeros((hidden, n))
        full[:, t * features : (t + 1) * features] = matrix
        return full

    def add(node) -> int:
        nodes.append(node)
        return len(nodes) - 1

    eye = np.eye(hidden)
    c = None  # node holding c_{t-1}; None for c_0 = 0
    r = None
    for t in range(steps):
        if t == steps - 1:
            sources, weights = ((0,), (step_input(wr, t),)) if c is None else ((0, c), (step_input(wr, t), np.diag(vr)))
            r = add(ActivationNode("sigmoid", add(AffineNode(sources, weights, br)), hidden))
        sources, weights = ((0,), (step_input(wf, t),)) if c is None else ((0, c), (step_input(wf, t), np.diag(vf)))
        f = add(ActivationNode("sigmoid", add(AffineNode(sources, weights, bf)), hidden))
        sources, weights = ((0,), (-step_input(w, t),)) if c is None else ((0, c), (-step_input(w, t), eye))
        gap = add(AffineNode(sources, weights, np.zeros(hidden)))
        product = add(ProductNode(f, gap, hidden))
        c = add(AffineNode((0, product), (step_input(w, t), eye), np.zeros(hidden)))
    highway = alpha * step_input(wh, steps - 1)
    gap = add(AffineNode((0, c), (-highway, eye), np.zeros(hidden)))
    product = add(ProductNode(r, gap, hidden))
    h = add(AffineNode((0, product), (highway, eye), np.zeros(hidden)))
    add(AffineNode((h,), (rng.normal(0, scale, (classes, hidden)),), rng.normal(0, 0.5, classes)))
    return Network(tuple(nodes), input_shape=(1, n), output_shape=(1, classes))


# ---------------------------------------------------------------------- checks of the builders
def test_random_dags_are_valid_and_mix_every_operation():
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    for _ in range(20):
        net = random_dag(rng)
        seen |= set(net.activation_counts)
        assert net.evaluate(rng.random((5, net.input_size))).shape == (5, net.output_size)
    assert seen == {"sigmoid", "tanh", "relu", "product"}


def test_tiny_sru_computes_the_torch_sru():
    torch = pytest.importorskip("torch")
    from reluverify.train.sru import SRU

    rng = np.random.default_rng(3)
    steps, features, hidden = 3, 1, 2  # input size != hidden: the projected highway W_h
    net = tiny_sru(np.random.default_rng(3), steps=steps, features=features, hidden=hidden, classes=2)
    # rebuild the same weights in torch: the builder draws w, wf, wr, wh, vf, vr, bf, br, head in this order
    w, wf, wr, wh = (rng.normal(0, 1.5, (hidden, features)) for _ in range(4))
    vf, vr = rng.normal(0, 1.5, hidden), rng.normal(0, 1.5, hidden)
    bf, br = rng.normal(0, 0.5, hidden), rng.normal(0, 0.5, hidden)
    head_w, head_b = rng.normal(0, 1.5, (2, hidden)), rng.normal(0, 0.5, 2)
    sru = SRU(features, hidden)
    with torch.no_grad():
        sru.weight.copy_(torch.from_numpy(np.concatenate([w, wf, wr, wh])))
        sru.v.copy_(torch.from_numpy(np.stack([vf, vr])))
        sru.bias.copy_(torch.from_numpy(np.stack([bf, br])))
    x = np.random.default_rng(4).random((16, steps * features))
    with torch.no_grad():
        h, _ = sru(torch.from_numpy(x).float().reshape(16, steps, features))
    expected = h[:, -1].double().numpy() @ head_w.T + head_b
    assert np.allclose(net.evaluate(x), expected, atol=1e-5)
