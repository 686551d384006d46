"""The network IR: evaluation, the ReLU-chain view, stacking copies, folding output maps."""

from __future__ import annotations

import numpy as np
import pytest

from reluverify import linear_ops as lo
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


def test_skip_connection_of_the_input_passes_it_as_two_relus(rng):
    nodes = (
        InputNode(2),
        AffineNode((0,), (np.eye(2),), np.zeros(2)),
        ActivationNode("relu", 1, 2),
        AffineNode((2, 0), (np.eye(2), np.eye(2)), np.zeros(2)),
    )
    network = Network(nodes)
    assert np.allclose(network.evaluate(np.array([[-1.0, 2.0]])), [[-1.0, 4.0]])
    chain = network.relu_chain()
    assert chain.layer_sizes == (2 + 2 * 2,)  # the ReLUs, and relu(x), relu(-x) for the skipped input
    x = rng.normal(size=(20, 2))
    assert np.allclose(chain.evaluate(x), network.evaluate(x))


def test_residual_blocks_become_a_chain(rng):
    """relu(h + W2 relu(W1 h)) twice over a ReLU layer h: h passes as one stable unit per value."""
    w0, b0 = rng.normal(size=(4, 3)), rng.normal(size=4)
    nodes = [InputNode(3), AffineNode((0,), (w0,), b0), ActivationNode("relu", 1, 4)]
    for _ in range(2):
        h = len(nodes) - 1
        nodes += [AffineNode((h,), (rng.normal(size=(4, 4)),), rng.normal(size=4)), ActivationNode("relu", h + 1, 4)]
        nodes += [AffineNode((h + 2, h), (rng.normal(size=(4, 4)), np.eye(4)), rng.normal(size=4)),
                  ActivationNode("relu", h + 3, 4)]
    nodes.append(AffineNode((len(nodes) - 1,), (rng.normal(size=(2, 4)),), rng.normal(size=2)))
    network = Network(tuple(nodes))
    chain = network.relu_chain()
    assert chain.layer_sizes == (4, 4 + 4, 4, 4 + 4, 4)
    x = rng.normal(size=(50, 3))
    assert np.allclose(chain.evaluate(x), network.evaluate(x))


def test_chains_with_structured_weights(rng):
    """Operators in the IR: evaluation, chains, stacking (block diagonal), output maps, padding."""
    conv = lo.Conv(rng.normal(size=(2, 1, 3, 3)), (1, 5, 5), pads=[1, 1, 1, 1])  # 25 -> 50
    nodes = (
        InputNode(25),
        AffineNode((0,), (conv,), rng.normal(size=50)),
        ActivationNode("relu", 1, 50),
        AffineNode((2,), (lo.Conv(rng.normal(size=(3, 2, 2, 2)), (2, 5, 5), strides=[2, 2]),), rng.normal(size=12)),
        ActivationNode("relu", 3, 12),
        AffineNode((4, 0), (rng.normal(size=(2, 12)), rng.normal(size=(2, 25))), rng.normal(size=2)),
    )
    network = Network(nodes)
    x = rng.normal(size=(8, 25))
    chain = network.relu_chain()
    assert np.allclose(chain.evaluate(x), network.evaluate(x))
    assert chain.describe_layers()[0] is not None  # the convolution stays structured
    assert np.allclose(chain.densified().evaluate(x), network.evaluate(x))
    short = ReluChain((rng.normal(size=(3, 25)),), (rng.normal(size=3),))
    both = ReluChain.stack([chain, short])
    y = both.evaluate(np.hstack([x, x]))
    assert np.allclose(y[:, :2], chain.evaluate(x)) and np.allclose(y[:, 2:], short.evaluate(x))
    assert isinstance(both.weights[0], lo.BlockDiagonal)
    c, d = rng.normal(size=(3, 2)), rng.normal(size=3)
    assert np.allclose(chain.with_output_map(c, d).evaluate(x), chain.evaluate(x) @ c.T + d)
    assert np.allclose(chain.to_network().evaluate(x), network.evaluate(x))
    with pytest.raises(NetworkError, match="does not map"):
        Network((InputNode(24), AffineNode((0,), (conv,), np.zeros(50))))
    bad = lo.Conv(np.full((2, 1, 3, 3), np.nan), (1, 5, 5), pads=[1, 1, 1, 1])
    with pytest.raises(NetworkError, match="NaN"):
        Network((InputNode(25), AffineNode((0,), (bad,), np.zeros(50))))


def test_nan_weights_rejected_in_ir():
    with pytest.raises(NetworkError, match="NaN"):
        Network((InputNode(1), AffineNode((0,), (np.array([[np.nan]]),), np.zeros(1))))


def test_wrong_input_width_is_an_error(rng):
    network = _chain(rng, [3, 2]).to_network()
    with pytest.raises(NetworkError, match="shape"):
        network.evaluate(np.zeros((2, 4)))
