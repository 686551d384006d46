"""The network IR: a feed-forward graph of affine maps and activations.

A :class:`Network` is a tuple of nodes in topological order. Node 0 is the
:class:`InputNode`; every other node reads only nodes with a smaller index:

* :class:`AffineNode` -- ``out = sum_k W_k @ value[source_k] + bias`` (any number of
  sources, so skip connections are representable);
* :class:`ActivationNode` -- an elementwise activation (``relu``, ``sigmoid``,
  ``tanh``) of one source;
* :class:`ProductNode` -- the elementwise product of two sources (SRU gates).

The last node is the output. All values are flat vectors: an ONNX tensor of
shape ``(1, 1, 1, 5)`` is the vector of its 5 elements in C order; the ONNX shapes
are kept only for reporting and for running onnxruntime.

Weights are float64: the file's float32 weights converted exactly, and linear operators
that the importer folds together (normalisation, consecutive affine maps) composed in
float64. "The network" that the solver reasons about is the real-arithmetic function of
these float64 affine maps; it differs from the file's exact function by float64 rounding
of the folding (about 1e-16 relative), and from onnxruntime's float32 evaluation by
float32 rounding. Counterexamples are always confirmed with onnxruntime on the file.

The ReLU solver works on :class:`ReluChain`, the special case
``affine -> relu -> affine -> ... -> affine`` that most verification benchmarks are;
:meth:`Network.relu_chain` returns it or raises :class:`NetworkError` saying why the
network is not one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from reluverify.errors import NetworkError

ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),  # overflow-free logistic
    "tanh": np.tanh,
}


@dataclass(frozen=True)
class InputNode:
    size: int


@dataclass(frozen=True)
class AffineNode:
    """``out = sum_k weights[k] @ value[sources[k]] + bias``; ``weights[k]`` is (size, size of source k)."""

    sources: tuple[int, ...]
    weights: tuple[np.ndarray, ...]
    bias: np.ndarray

    @property
    def size(self) -> int:
        return int(self.bias.shape[0])


@dataclass(frozen=True)
class ActivationNode:
    kind: str
    source: int
    size: int


@dataclass(frozen=True)
class ProductNode:
    """Elementwise product ``value[left] * value[right]`` (both of ``size`` elements)."""

    left: int
    right: int
    size: int


Node = InputNode | AffineNode | ActivationNode | ProductNode


@dataclass(frozen=True)
class Network:
    """A feed-forward network; see the module docstring for the node invariants."""

    nodes: tuple[Node, ...]
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    input_name: str = "input"
    output_name: str = "output"
    source_path: str | None = None
    source_sha256: str | None = None
    _chain_cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.nodes or not isinstance(self.nodes[0], InputNode):
            raise NetworkError("a network must start with its input node")
        for index, node in enumerate(self.nodes[1:], start=1):
            reads = _node_sources(node)
            if any(not 0 <= s < index for s in reads):
                raise NetworkError(f"node {index} reads a node that is not before it")
            if isinstance(node, AffineNode):
                for s, w in zip(node.sources, node.weights):
                    if w.shape != (node.size, self.nodes[s].size):
                        raise NetworkError(
                            f"node {index}: weight shape {w.shape} does not map {self.nodes[s].size} to {node.size}"
                        )
                    if not np.all(np.isfinite(w)):
                        raise NetworkError(f"node {index}: weights contain NaN or infinity")
                if not np.all(np.isfinite(node.bias)):
                    raise NetworkError(f"node {index}: bias contains NaN or infinity")
            elif isinstance(node, ActivationNode):
                if node.kind not in ACTIVATIONS:
                    raise NetworkError(f"node {index}: unknown activation {node.kind!r}")
                if self.nodes[node.source].size != node.size:
                    raise NetworkError(f"node {index}: activation size differs from its source")
            elif isinstance(node, ProductNode):
                if not self.nodes[node.left].size == self.nodes[node.right].size == node.size:
                    raise NetworkError(f"node {index}: product of vectors of different sizes")

    # ------------------------------------------------------------------ sizes
    @property
    def input_size(self) -> int:
        return self.nodes[0].size

    @property
    def output_size(self) -> int:
        return self.nodes[-1].size

    @property
    def activation_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            if isinstance(node, ActivationNode):
                counts[node.kind] = counts.get(node.kind, 0) + node.size
            elif isinstance(node, ProductNode):
                counts["product"] = counts.get("product", 0) + node.size
        return counts

    @property
    def num_relus(self) -> int:
        return self.activation_counts.get("relu", 0)

    @property
    def is_piecewise_linear(self) -> bool:
        return set(self.activation_counts) <= {"relu"}

    # ------------------------------------------------------------- evaluation
    def evaluate_all(self, inputs: np.ndarray, upto: int | None = None) -> list[np.ndarray]:
        """Values of every node (or of nodes ``0..upto``) for a batch ``inputs`` of shape (batch, input_size)."""
        x = np.asarray(inputs, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise NetworkError(f"expected inputs of shape (batch, {self.input_size}), got {np.shape(inputs)}")
        values: list[np.ndarray] = [x]
        for node in self.nodes[1 : None if upto is None else upto + 1]:
            if isinstance(node, AffineNode):
                out = np.broadcast_to(node.bias, (x.shape[0], node.size)).copy()
                for s, w in zip(node.sources, node.weights):
                    out += values[s] @ w.T
            elif isinstance(node, ActivationNode):
                out = ACTIVATIONS[node.kind](values[node.source])
            else:
                out = values[node.left] * values[node.right]
            values.append(out)
        return values

    def evaluate(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs for a batch of inputs (batch, input_size) -> (batch, output_size); a 1-D input gives 1-D output."""
        single = np.ndim(inputs) == 1
        out = self.evaluate_all(inputs)[-1]
        return out[0] if single else out

    __call__ = evaluate

    # ------------------------------------------------------------ chain view
    def relu_chain(self) -> "ReluChain":
        """This network as ``affine (relu affine)*``; raises NetworkError if it is not one."""
        if "chain" not in self._chain_cache:
            self._chain_cache["chain"] = _to_relu_chain(self)
        return self._chain_cache["chain"]

    def describe_layers(self) -> list[dict]:
        """One dict per node (kind, size, sources) for ``reluverify info``."""
        rows = []
        for index, node in enumerate(self.nodes):
            if isinstance(node, InputNode):
                rows.append({"node": index, "kind": "input", "size": node.size, "reads": []})
            elif isinstance(node, AffineNode):
                params = sum(w.size for w in node.weights) + node.bias.size
                rows.append(
                    {"node": index, "kind": "affine", "size": node.size, "reads": list(node.sources), "params": params}
                )
            elif isinstance(node, ActivationNode):
                rows.append({"node": index, "kind": node.kind, "size": node.size, "reads": [node.source]})
            else:
                rows.append({"node": index, "kind": "product", "size": node.size, "reads": [node.left, node.right]})
        return rows


def _node_sources(node: Node) -> tuple[int, ...]:
    if isinstance(node, AffineNode):
        return node.sources
    if isinstance(node, ActivationNode):
        return (node.source,)
    if isinstance(node, ProductNode):
        return (node.left, node.right)
    return ()


@dataclass(frozen=True)
class ReluChain:
    """``y = W_L relu(... relu(W_1 x + b_1) ...) + b_L``.

    ``weights[i]`` has shape (out_i, in_i); there is a ReLU after every affine layer
    except the last. ``layer_sizes`` lists the ReLU layer sizes.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @property
    def input_size(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def output_size(self) -> int:
        return int(self.weights[-1].shape[0])

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return tuple(int(w.shape[0]) for w in self.weights[:-1])

    @property
    def num_relus(self) -> int:
        return sum(self.layer_sizes)

    def forward(self, inputs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Outputs and the pre-activation values of every ReLU layer, for a batch (batch, input_size)."""
        h = np.asarray(inputs, dtype=np.float64)
        pre: list[np.ndarray] = []
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            z = h @ w.T + b
            pre.append(z)
            h = np.maximum(z, 0.0)
        return h @ self.weights[-1].T + self.biases[-1], pre

    def evaluate(self, inputs: np.ndarray) -> np.ndarray:
        return self.forward(inputs)[0]

    def with_output_map(self, matrix: np.ndarray, offset: np.ndarray) -> "ReluChain":
        """The chain followed by ``y -> matrix @ y + offset`` (folded into the last layer)."""
        w = matrix @ self.weights[-1]
        b = matrix @ self.biases[-1] + offset
        return ReluChain(self.weights[:-1] + (w,), self.biases[:-1] + (b,))

    @staticmethod
    def stack(chains: Sequence["ReluChain"]) -> "ReluChain":
        """Independent copies side by side: inputs and outputs concatenated, block-diagonal weights.

        Chains of different depth are padded with identity layers (relu(h) = h for the
        padded copy is wrong in general, so padding uses the split ``h = relu(h) - relu(-h)``).
        """
        chains = list(chains)
        if len(chains) == 1:
            return chains[0]
        depth = max(len(c.weights) for c in chains)
        padded = [_pad_chain(c, depth) for c in chains]
        weights, biases = [], []
        for layer in range(depth):
            blocks = [c.weights[layer] for c in padded]
            rows = sum(b.shape[0] for b in blocks)
            cols = sum(b.shape[1] for b in blocks)
            w = np.zeros((rows, cols))
            r = c0 = 0
            for b in blocks:
                w[r : r + b.shape[0], c0 : c0 + b.shape[1]] = b
                r += b.shape[0]
                c0 += b.shape[1]
            weights.append(w)
            biases.append(np.concatenate([c.biases[layer] for c in padded]))
        return ReluChain(tuple(weights), tuple(biases))

    def to_network(self, **metadata) -> Network:
        nodes: list[Node] = [InputNode(self.input_size)]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            nodes.append(AffineNode((len(nodes) - 1,), (w,), b))
            if i < len(self.weights) - 1:
                nodes.append(ActivationNode("relu", len(nodes) - 1, int(w.shape[0])))
        return Network(tuple(nodes), **metadata)


def _pad_chain(chain: ReluChain, depth: int) -> ReluChain:
    """Append layers so the chain has ``depth`` affine layers; h = relu(h) - relu(-h) keeps it exact."""
    weights, biases = list(chain.weights), list(chain.biases)
    while len(weights) < depth:
        n = weights[-1].shape[0]
        eye = np.eye(n)
        # last affine now feeds a ReLU layer of 2n units [h, -h]; the next layer recombines them.
        weights[-1] = np.vstack([weights[-1], -weights[-1]])
        biases[-1] = np.concatenate([biases[-1], -biases[-1]])
        weights.append(np.hstack([eye, -eye]))
        biases.append(np.zeros(n))
    return ReluChain(tuple(weights), tuple(biases))


def _to_relu_chain(network: Network) -> ReluChain:
    for index, node in enumerate(network.nodes):
        if isinstance(node, ProductNode) or (isinstance(node, ActivationNode) and node.kind != "relu"):
            kind = node.kind if isinstance(node, ActivationNode) else "product"
            raise NetworkError(
                f"node {index} is a {kind} node: the ReLU solver handles only affine and ReLU layers"
            )
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    current = 0  # index of the node whose value feeds the next affine layer
    pending_identity = False
    for index, node in enumerate(network.nodes[1:], start=1):
        if isinstance(node, AffineNode):
            if node.sources != (current,):
                raise NetworkError(
                    f"node {index} reads nodes {list(node.sources)}: the ReLU solver needs a chain "
                    "(each affine layer reads only the layer before it)"
                )
            if current != 0 and isinstance(network.nodes[current], AffineNode):
                # two affine layers in a row compose into one
                weights[-1] = node.weights[0] @ weights[-1]
                biases[-1] = node.weights[0] @ biases[-1] + node.bias
            else:
                weights.append(node.weights[0])
                biases.append(node.bias)
            current = index
            pending_identity = False
        elif isinstance(node, ActivationNode) and node.kind == "relu":
            if node.source != current:
                raise NetworkError(f"node {index}: ReLU does not read the layer before it")
            if not weights or isinstance(network.nodes[current], ActivationNode) or current == 0:
                # relu directly on the input or on another relu: insert an identity affine layer
                weights.append(np.eye(node.size))
                biases.append(np.zeros(node.size))
            current = index
            pending_identity = True
    if pending_identity or not weights:
        size = network.nodes[current].size
        weights.append(np.eye(size))
        biases.append(np.zeros(size))
    return ReluChain(tuple(weights), tuple(biases))


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
