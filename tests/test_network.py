"""The network IR: evaluation, the ReLU-chain view, stacking copies, folding output maps."""

from __future__ import annotations

import numpy as np
import pytest

from reluverify.errors import NetworkError
from reluverify.network import ActivationNode, AffineNode, InputNode, Network, ReluChain


def _chain(rng, sizes):
    ws = tuple(rng.normal(size=(b, a)) for a, b in zip(sizes, sizes[1:]))
    bs = tuple(rng.normal(size=b) for b in sizes[1:])
    return ReluChain(ws, bs)


def test_forward_returns_preactivations(rng):
    chain = _chain(rng, [3, 4, 5, 2])
    x = rng.normal(size=(7, 3))
    y, pre = chain.forward(x)
    assert [p.shape for p in pre] == [(7, 4), (7, 5)]
    h = np.maximum(x @ chain.weights[0].T + chain.biases[0], 0)
    assert np.allclose(pre[0], x @ chain.weights[0].T + chain.biases[0])
    h = np.maximum(h @ chain.weights[1].T + chain.biases[1], 0)
    assert np.allclose(y, h @ chain.weights[2].T + chain.biases[2])


def test_chain_round_trips_through_network(rng):
    chain = _chain(rng, [3, 4, 2])
    network = chain.to_network()
    x = rng.normal(size=(5, 3))
    assert np.allclose(network.evaluate(x), chain.evaluate(x))
    back = network.relu_chain()
    assert back.layer_sizes == (4,)


def test_stack_of_unequal_depths_is_exact(rng):
    a, b = _chain(rng, [2, 3, 3, 2]), _chain(rng, [3, 4, 1])
    both = ReluChain.stack([a, b])
    x1, x2 = rng.normal(size=(6, 2)), rng.normal(size=(6, 3))
    y = both.evaluate(np.hstack([x1, x2]))
    assert np.allclose(y[:, :2], a.evaluate(x1))
    assert np.allclose(y[:, 2:], b.evaluate(x2))


def test_output_map_is_folded(rng):
    chain = _chain(rng, [2, 3, 4])
    c = rng.normal(size=(2, 4))
    d = rng.normal(size=2)
    x = rng.normal(size=(5, 2))
    assert np.allclose(chain.with_output_map(c, d).evaluate(x), chain.evaluate(x) @ c.T + d)


def test_relu_on_input_and_consecutive_affines_become_a_chain(rng):
    w1, w2 = rng.normal(size=(3, 3)), rng.normal(size=(2, 3))
    nodes = (
        InputNode(3),
        ActivationNode("relu", 0, 3),
        AffineNode((1,), (w1,), np.zeros(3)),
        AffineNode((2,), (w2,), np.ones(2)),
    )
    network = Network(nodes)
    x = rng.normal(size=(4, 3))
    assert np.allclose(network.relu_chain().evaluate(x), network.evaluate(x))


def test_skip_connection_is_not_a_chain(rng):
    nodes = (
        InputNode(2),
        AffineNode((0,), (np.eye(2),), np.zeros(2)),
        ActivationNode("relu", 1, 2),
        AffineNode((2, 0), (np.eye(2), np.eye(2)), np.zeros(2)),
    )
    network = Network(nodes)
    assert np.allclose(network.evaluate(np.array([[-1.0, 2.0]])), [[-1.0, 4.0]])
    with pytest.raises(NetworkError, match="chain"):
        network.relu_chain()


def test_nan_weights_rejected_in_ir():
    with pytest.raises(NetworkError, match="NaN"):
        Network((InputNode(1), AffineNode((0,), (np.array([[np.nan]]),), np.zeros(1))))


def test_wrong_input_width_is_an_error(rng):
    network = _chain(rng, [3, 2]).to_network()
    with pytest.raises(NetworkError, match="shape"):
        network.evaluate(np.zeros((2, 4)))
