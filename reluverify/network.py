"""The network IR: a feed-forward graph of affine maps and activations.

A :class:`Network` is a tuple of nodes in topological order. Node 0 is the
:class:`InputNode`; every other node reads only nodes with a smaller index:

* :class:`AffineNode` -- ``out = sum_k W_k @ value[source_k] + bias`` (any number of
  sources, so skip connections are representable);
* :class:`ActivationNode` -- an elementwise activation of one source: ``relu``, ``sigmoid``,
  ``tanh``, ``sin``, ``cos``, ``exp``, ``log``, ``sqrt``, ``reciprocal``, ``square``, ``sign``,
  ``floor`` (:mod:`reluverify.elementwise` defines them);
* :class:`ProductNode` -- the elementwise product of two sources (SRU gates).

The last node is the output. A file whose last operator is a Softmax or LogSoftmax over the
class axis may be imported without it (:attr:`Network.final_softmax` says so): the network is then
the file's logits, whose order -- all that delta-local robustness reads -- the operator keeps;
every other question is refused with :func:`softmax_refusal`. All values are flat vectors: an ONNX tensor of
shape ``(1, 1, 1, 5)`` is the vector of its 5 elements in C order; the ONNX shapes
are kept only for reporting and for running onnxruntime. A file with several input tensors has one
input vector all the same: their flat values concatenated in the order the graph declares them (as
VNN-LIB numbers ``X_0 ...``); several output tensors likewise make one output vector (``Y_0 ...``).
:attr:`Network.input_names` and :attr:`Network.input_shapes` (``output_...``) keep each tensor;
``input_name`` and ``input_shape`` are then the names joined by ``", "`` and the flat shape ``(n,)``.

Weights are float64: the file's float32 weights converted exactly, and linear operators
that the importer folds together (normalisation, consecutive affine maps) composed in
float64. "The network" that the solver reasons about is the real-arithmetic function of
these float64 affine maps; it differs from the file's exact function by float64 rounding
of the folding (about 1e-16 relative), and from onnxruntime's float32 evaluation by
float32 rounding. Counterexamples are always confirmed with onnxruntime on the file.

A weight is a dense (out, in) ``np.ndarray`` or a structured operator of
:mod:`reluverify.linear_ops` (a convolution, an index map, ...) whose memory is that of its
parameters; everything here reads weights through that module's helpers (``forward``,
``compose``, ...), which keep the dense path exactly ``x @ w.T``.

The ReLU solver works on :class:`ReluChain`, the special case
``affine -> relu -> affine -> ... -> affine`` that most verification benchmarks are;
:meth:`Network.relu_chain` returns it, also for a graph of affine and ReLU nodes with skip
connections (residual blocks), whose skipped values are passed through the ReLU layers
between (see :func:`_dag_to_chain`), or raises :class:`NetworkError` saying why the
network is not one (any other activation, or a product node).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from reluverify import linear_ops as lo
from reluverify.elementwise import FUNCTIONS
from reluverify.errors import NetworkError

ACTIVATIONS = {kind: f.value for kind, f in FUNCTIONS.items()}
"""The value of every activation kind (:mod:`reluverify.elementwise` has the whole table)."""


@dataclass(frozen=True)
class InputNode:
    size: int


@dataclass(frozen=True)
class AffineNode:
    """``out = sum_k weights[k] @ value[sources[k]] + bias``; ``weights[k]`` is (size, size of source k).

    A weight is a dense ndarray or a :mod:`reluverify.linear_ops` operator.
    """

    sources: tuple[int, ...]
    weights: tuple
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
    """A feed-forward network; see the module docstring for the node invariants.

    ``input_name`` / ``input_shape`` describe the one input tensor of the file; for a file with several,
    the names joined by ``", "`` and the flat shape ``(input_size,)``, with each tensor in
    :attr:`input_names` / :attr:`input_shapes` (always filled: one entry for one tensor). The same holds
    for the outputs.
    """

    nodes: tuple[Node, ...]
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    input_name: str = "input"
    output_name: str = "output"
    source_path: str | None = None
    source_sha256: str | None = None
    final_softmax: str | None = None
    """``"Softmax"`` or ``"LogSoftmax"`` when the file's last operator is one that the importer dropped
    (``load_onnx(path, drop_final_softmax=True)``): the network is then the file's *logits*, the
    tensor ``output_name`` that the dropped operator reads (see :func:`softmax_refusal`)."""
    input_names: tuple[str, ...] = ()
    """The file's input tensors in graph order; the network input is their values, each flattened in C
    order, concatenated in this order (VNN-LIB's ``X_0 ...``). Left empty, it is ``(input_name,)``."""
    input_shapes: tuple[tuple[int, ...], ...] = ()
    """The shape of each of :attr:`input_names` (a free leading axis as 1); empty: ``(input_shape,)``."""
    output_names: tuple[str, ...] = ()
    """The file's output tensors in graph order; the network output is their values, each flattened,
    concatenated in this order (VNN-LIB's ``Y_0 ...``). Left empty, it is ``(output_name,)``."""
    output_shapes: tuple[tuple[int, ...], ...] = ()
    """The shape of each of :attr:`output_names`; empty: ``(output_shape,)``."""
    _chain_cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.nodes or not isinstance(self.nodes[0], InputNode):
            raise NetworkError("a network must start with its input node")
        self._check_tensors("input", self.nodes[0].size)
        self._check_tensors("output", self.nodes[-1].size)
        if self.final_softmax not in (None, *FINAL_SOFTMAX):
            raise NetworkError(f"unknown final operator {self.final_softmax!r}: use one of {', '.join(FINAL_SOFTMAX)}")
        for index, node in enumerate(self.nodes[1:], start=1):
            reads = _node_sources(node)
            if any(not 0 <= s < index for s in reads):
                raise NetworkError(f"node {index} reads a node that is not before it")
            if isinstance(node, AffineNode):
                if len(node.sources) != len(node.weights):
                    raise NetworkError(f"node {index}: {len(node.sources)} sources but {len(node.weights)} weights")
                for s, w in zip(node.sources, node.weights):
                    if lo.shape(w) != (node.size, self.nodes[s].size):
                        raise NetworkError(
                            f"node {index}: weight shape {lo.shape(w)} does not map {self.nodes[s].size} to {node.size}"
                        )
                    if not lo.finite(w):
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

    def _check_tensors(self, side: str, size: int) -> None:
        """Fill ``{side}_names`` and ``{side}_shapes`` from the one tensor when they are not given; else check
        that they pair up and, for several tensors, that their sizes add up to the vector's ``size``."""
        names, shapes = getattr(self, f"{side}_names"), getattr(self, f"{side}_shapes")
        if not names and not shapes:
            object.__setattr__(self, f"{side}_names", (getattr(self, f"{side}_name"),))
            object.__setattr__(self, f"{side}_shapes", (tuple(getattr(self, f"{side}_shape")),))
            return
        names, shapes = tuple(names), tuple(tuple(int(d) for d in shape) for shape in shapes)
        object.__setattr__(self, f"{side}_names", names)
        object.__setattr__(self, f"{side}_shapes", shapes)
        if len(names) != len(shapes):
            raise NetworkError(f"{len(names)} {side} names but {len(shapes)} {side} shapes")
        total = sum(math.prod(shape) for shape in shapes)
        if len(shapes) > 1 and total != size:
            raise NetworkError(f"the {side} tensors hold {total} values but the network's {side} has {size}")

    @property
    def input_offsets(self) -> tuple[int, ...]:
        """Where each of :attr:`input_names` starts in the flat input vector (and, last, its size)."""
        return _offsets(self.input_shapes, self.input_size)

    @property
    def output_offsets(self) -> tuple[int, ...]:
        """Where each of :attr:`output_names` starts in the flat output vector (and, last, its size)."""
        return _offsets(self.output_shapes, self.output_size)

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
        """No products and only piecewise-linear activations (:attr:`reluverify.elementwise.Elementwise.piecewise_linear`)."""
        return all(kind != "product" and FUNCTIONS[kind].piecewise_linear for kind in self.activation_counts)

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
                    out += lo.forward(w, values[s])
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
                params = sum(lo.parameter_count(w) for w in node.weights) + node.bias.size
                row = {"node": index, "kind": "affine", "size": node.size, "reads": list(node.sources), "params": params,
                       "bytes": sum(lo.nbytes(w) for w in node.weights) + node.bias.nbytes}
                structured = [lo.describe(w) for w in node.weights if not lo.is_dense(w)]
                if structured:
                    row["operator"] = "; ".join(structured)
                rows.append(row)
            elif isinstance(node, ActivationNode):
                rows.append({"node": index, "kind": node.kind, "size": node.size, "reads": [node.source]})
            else:
                rows.append({"node": index, "kind": "product", "size": node.size, "reads": [node.left, node.right]})
        return rows


FINAL_SOFTMAX = ("Softmax", "LogSoftmax")


def _offsets(shapes: tuple[tuple[int, ...], ...], size: int) -> tuple[int, ...]:
    """``0, n_0, n_0 + n_1, ..., size`` for tensors of ``shapes`` laid end to end in a vector of ``size``."""
    if len(shapes) <= 1:
        return (0, size)
    offsets = [0]
    for shape in shapes:
        offsets.append(offsets[-1] + math.prod(shape))
    return tuple(offsets)


def softmax_refusal(kind: str) -> str:
    """The one line that refuses a question whose answer a dropped final ``kind`` (Softmax or LogSoftmax)
    would change: everything but the order of the scores, which Def. 1 reads."""
    return (f"the network ends in {kind}: export the logits (the output before {kind}), or use delta-local "
            f"robustness (Def. 1), which {kind} does not change")


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

    ``weights[i]`` has shape (out_i, in_i) (a dense ndarray or a :mod:`reluverify.linear_ops`
    operator); there is a ReLU after every affine layer except the last. ``layer_sizes``
    lists the ReLU layer sizes.
    """

    weights: tuple
    biases: tuple[np.ndarray, ...]

    @property
    def input_size(self) -> int:
        return lo.shape(self.weights[0])[1]

    @property
    def output_size(self) -> int:
        return lo.shape(self.weights[-1])[0]

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return tuple(lo.shape(w)[0] for w in self.weights[:-1])

    @property
    def is_dense(self) -> bool:
        """True when every weight is a dense ndarray."""
        return all(lo.is_dense(w) for w in self.weights)

    def describe_layers(self) -> list[str | None]:
        """Per affine layer, the structured operator's description (None for a dense matrix)."""
        return [None if lo.is_dense(w) else lo.describe(w) for w in self.weights]

    def densified(self, limit: int | None = None) -> "ReluChain":
        """The same chain with dense weights (NetworkError when one has more than ``limit`` entries)."""
        if self.is_dense:
            return self
        return ReluChain(tuple(lo.dense(w, limit) for w in self.weights), self.biases)

    @property
    def num_relus(self) -> int:
        return sum(self.layer_sizes)

    def forward(self, inputs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Outputs and the pre-activation values of every ReLU layer, for a batch (batch, input_size)."""
        h = np.asarray(inputs, dtype=np.float64)
        pre: list[np.ndarray] = []
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            z = lo.forward(w, h) + b
            pre.append(z)
            h = np.maximum(z, 0.0)
        return lo.forward(self.weights[-1], h) + self.biases[-1], pre

    def evaluate(self, inputs: np.ndarray) -> np.ndarray:
        return self.forward(inputs)[0]

    def with_output_map(self, matrix: np.ndarray, offset: np.ndarray) -> "ReluChain":
        """The chain followed by ``y -> matrix @ y + offset`` (folded into the last layer)."""
        w = lo.compose(matrix, self.weights[-1])
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
            weights.append(lo.block_diagonal([c.weights[layer] for c in padded]))
            biases.append(np.concatenate([c.biases[layer] for c in padded]))
        return ReluChain(tuple(weights), tuple(biases))

    def to_network(self, **metadata) -> Network:
        nodes: list[Node] = [InputNode(self.input_size)]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            nodes.append(AffineNode((len(nodes) - 1,), (w,), b))
            if i < len(self.weights) - 1:
                nodes.append(ActivationNode("relu", len(nodes) - 1, lo.shape(w)[0]))
        return Network(tuple(nodes), **metadata)


def _pad_chain(chain: ReluChain, depth: int) -> ReluChain:
    """Append layers so the chain has ``depth`` affine layers; h = relu(h) - relu(-h) keeps it exact."""
    weights, biases = list(chain.weights), list(chain.biases)
    while len(weights) < depth:
        n = lo.shape(weights[-1])[0]
        # last affine now feeds a ReLU layer of 2n units [h, -h]; the next layer recombines them.
        if lo.is_dense(weights[-1]):
            eye = np.eye(n)
            weights[-1] = np.vstack([weights[-1], -weights[-1]])
            weights.append(np.hstack([eye, -eye]))
        else:
            weights[-1] = lo.vstack([weights[-1], lo.scaled(weights[-1], -1.0)])
            weights.append(_plus_minus(n))
        biases[-1] = np.concatenate([biases[-1], -biases[-1]])
        biases.append(np.zeros(n))
    return ReluChain(tuple(weights), tuple(biases))


def _plus_minus(n: int):
    """``[I, -I]`` (n x 2n): recombines ``h = relu(h) - relu(-h)``."""
    return lo.Sparse(np.r_[np.arange(n), np.arange(n)], np.r_[np.arange(n), n + np.arange(n)],
                     np.r_[np.ones(n), -np.ones(n)], (n, 2 * n))


def _to_relu_chain(network: Network) -> ReluChain:
    for index, node in enumerate(network.nodes):
        if isinstance(node, ProductNode) or (isinstance(node, ActivationNode) and node.kind != "relu"):
            kind = node.kind if isinstance(node, ActivationNode) else "product"
            raise NetworkError(
                f"node {index} is a {kind} node: the ReLU solver handles only affine and ReLU layers"
            )
    weights: list = []
    biases: list[np.ndarray] = []
    current = 0  # index of the node whose value feeds the next affine layer
    pending_identity = False
    for index, node in enumerate(network.nodes[1:], start=1):
        if isinstance(node, AffineNode):
            if node.sources != (current,):
                # a skip connection (or an affine node read twice): the general construction
                return _dag_to_chain(network)
            if current != 0 and isinstance(network.nodes[current], AffineNode):
                # two affine layers in a row compose into one
                weights[-1] = lo.compose(node.weights[0], weights[-1])
                biases[-1] = lo.matvec(node.weights[0], biases[-1]) + node.bias
            else:
                weights.append(node.weights[0])
                biases.append(node.bias)
            current = index
            pending_identity = False
        elif isinstance(node, ActivationNode) and node.kind == "relu":
            if node.source != current:
                return _dag_to_chain(network)
            if not weights or isinstance(network.nodes[current], ActivationNode) or current == 0:
                # relu directly on the input or on another relu: insert an identity affine layer
                weights.append(lo.eye(node.size))
                biases.append(np.zeros(node.size))
            current = index
            pending_identity = True
    if pending_identity or not weights:
        size = network.nodes[current].size
        weights.append(lo.eye(size))
        biases.append(np.zeros(size))
    return ReluChain(tuple(weights), tuple(biases))


def _dag_to_chain(network: Network) -> ReluChain:
    """A graph of affine and ReLU nodes (skip connections, residual blocks) as one ReLU chain.

    Every affine node is expanded over its *base* nodes (the input and the ReLU nodes). A
    ReLU node's layer is one more than the deepest base its pre-activation reads; the
    output's layer is the last. A base read by a node more than one layer later is passed
    through the ReLU layers between: a ReLU node's values (non-negative) as ``relu(h) = h``,
    one unit per value and layer (stable: its lower bound is 0); the input's as the pair
    ``relu(x), relu(-x)``, two units per value and layer (unstable in general), recombined
    as ``x = relu(x) - relu(-x)``. So a residual block ``relu(h + f(h))`` over a ReLU layer
    ``h`` costs one extra unit per value of ``h`` for each ReLU layer inside ``f``. Weights
    stay structured: each layer is a grid of blocks (:class:`reluverify.linear_ops.Blocks`),
    a dense matrix when every block is dense and it is small.
    """
    nodes = network.nodes
    terms: dict[int, tuple[dict[int, object], np.ndarray]] = {}
    for index, node in enumerate(nodes):
        if not isinstance(node, AffineNode):
            continue
        acc: dict[int, object] = {}
        bias = np.array(node.bias, dtype=np.float64)
        for s, w in zip(node.sources, node.weights):
            if isinstance(nodes[s], AffineNode):
                inner, inner_bias = terms[s]
                bias = bias + lo.matvec(w, inner_bias)
                parts = [(base, lo.compose(w, wb)) for base, wb in inner.items()]
            else:
                parts = [(s, w)]
            for base, wb in parts:
                acc[base] = lo.add(acc[base], wb) if base in acc else wb
        terms[index] = (acc, bias)

    def expanded(index: int) -> tuple[dict[int, object], np.ndarray]:
        if isinstance(nodes[index], AffineNode):
            return terms[index]
        size = nodes[index].size
        return {index: lo.eye(size)}, np.zeros(size)

    relus = [i for i, n in enumerate(nodes) if isinstance(n, ActivationNode)]
    pre = {r: expanded(nodes[r].source) for r in relus}
    depth = {0: 0}
    for r in relus:
        depth[r] = 1 + max((depth[b] for b in pre[r][0]), default=0)
    out_terms, out_bias = expanded(len(nodes) - 1)
    last = 1 + max((depth[b] for b in out_terms), default=0)
    consumers = [(depth[r], pre[r][0]) for r in relus if depth[r] < last] + [(last, out_terms)]
    # the last layer that reads each base: it must be present in every h_k before that layer
    read_until = {b: max((d for d, t in consumers if b in t), default=depth[b]) for b in depth}

    groups: list[tuple] = [("own", 0)]  # the parts of h_k: ("own", b) or ("pass", b, sign)
    weights, biases = [], []
    for layer in range(1, last + 1):
        col_index = {g: k for k, g in enumerate(groups)}
        col_sizes = [nodes[g[1]].size for g in groups]
        row_groups: list[tuple] = []
        row_sizes: list[int] = []
        grid: dict[tuple[int, int], object] = {}
        bias_parts: list[np.ndarray] = []

        def put(row: int, col: int, block) -> None:
            grid[(row, col)] = lo.add(grid[(row, col)], block) if (row, col) in grid else block

        def add_row(group: tuple, reads: dict[int, object], bias: np.ndarray) -> None:
            row = len(row_groups)
            row_groups.append(group)
            row_sizes.append(bias.size)
            bias_parts.append(bias)
            for b, w in reads.items():
                if ("own", b) in col_index:
                    put(row, col_index[("own", b)], w)
                elif b == 0:  # the input, passed as relu(x), relu(-x)
                    put(row, col_index[("pass", 0, 1.0)], w)
                    put(row, col_index[("pass", 0, -1.0)], lo.scaled(w, -1.0))
                else:
                    put(row, col_index[("pass", b, 1.0)], w)

        if layer == last:
            add_row(("out",), out_terms, out_bias)
        else:
            for r in relus:
                if depth[r] == layer:
                    add_row(("own", r), *pre[r])
            for b in sorted(depth):
                if not depth[b] < layer < read_until[b]:
                    continue
                size = nodes[b].size
                for sign in (1.0, -1.0) if b == 0 else (1.0,):
                    if ("own", b) in col_index:
                        eye = lo.eye(size)
                        add_row(("pass", b, sign), {b: eye if sign > 0 else lo.scaled(eye, -1.0)}, np.zeros(size))
                    else:  # already passed: copy the (non-negative) unit
                        row_groups.append(("pass", b, sign))
                        row_sizes.append(size)
                        bias_parts.append(np.zeros(size))
                        put(len(row_groups) - 1, col_index[("pass", b, sign)], lo.eye(size))
        weights.append(lo.blocks(row_sizes, col_sizes, grid))
        biases.append(np.concatenate(bias_parts))
        groups = row_groups
    return ReluChain(tuple(weights), tuple(biases))


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
