"""ONNX import: trace an ONNX graph into a :class:`~reluverify.network.Network`.

Every tensor of the graph is traced either as a constant (a numpy array) or as an
affine function of the outputs of earlier nonlinear IR nodes (the network input,
activations, products). Linear operators (MatMul, Gemm, Add/Sub, Mul/Div by constants,
Flatten, Reshape, Transpose, Conv, BatchNormalization, Pad, AveragePool, Slice, Concat,
...) transform that function; a nonlinear operator (Relu, Sigmoid, Tanh, the product of
two traced tensors) closes it into an IR affine node followed by the nonlinear node. So
input normalisation (Sub/Div before the first layer) and chains of linear operators fold
into single affine layers by construction. MaxPool is lowered exactly to ReLUs:
``max(a, b) = relu(a - b) + b`` over a binary tree of the window (see :func:`op_maxpool`).

An affine function is held in one of two forms:

* :class:`Affine` -- a dense table (the constant term and one row per source value), the
  form of every small network (ACAS Xu, MNIST, the test networks import exactly as they
  always did);
* :class:`Linear` -- *structured*: ``sum_k W_k value[node_k] + bias`` where each ``W_k`` is a
  :mod:`reluverify.linear_ops` operator (a convolution, an index map for transposes, slices
  and padding, a composition ...), whose memory is that of its parameters.

A traced value is structured exactly when its dense table would hold more than
``dense_limit`` numbers (:data:`DENSE_LIMIT`, 4 Mi, 32 MiB: ``(1 + total source size) *
elements``); the representation is re-chosen after every operator, and the operators that
could make a large table (Conv, pooling, Pad, Concat, broadcasts, a fresh activation's
identity) decide before building it. So importing never builds a dense map much larger
than the weights need, and the affine nodes of a CNN hold convolutions where a dense
matrix would be large (``load_onnx(..., dense_limit=0)`` keeps every value structured).

Anything else is refused with :class:`~reluverify.errors.NetworkError`, one line that
names the node and the problem.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from reluverify import linear_ops as lo
from reluverify import onnx_proto
from reluverify.errors import NetworkError
from reluverify.network import (
    ActivationNode,
    AffineNode,
    InputNode,
    Network,
    Node,
    ProductNode,
    file_sha256,
)

MAX_TRACE_ELEMENTS = 400_000_000  # refuse traces whose coefficient arrays would exceed ~3 GB
MAX_TENSOR_ELEMENTS = 1 << 25  # refuse traced tensors of more elements (33 Mi values, 256 MiB per vector)
DENSE_LIMIT = 1 << 22
"""A traced value whose dense table would hold more numbers than this is kept structured."""


@dataclass(frozen=True)
class Affine:
    """An affine function of IR node outputs with tensor shape ``shape``.

    ``table[0]`` is the constant term (shape ``shape``); ``table[1:]`` are the
    coefficients of the concatenated source vectors: row ``1 + offset(s) + j`` is the
    tensor that element ``j`` of source node ``s`` contributes. Linear operators act on
    all rows alike (axis 0 is a batch axis); adding a constant touches row 0 only.
    """

    sources: tuple[tuple[int, int], ...]  # (node index, size)
    table: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.table.shape[1:])

    def apply(self, fn: Callable[[np.ndarray], np.ndarray]) -> "Affine":
        return Affine(self.sources, fn(self.table))


@dataclass(frozen=True)
class Linear:
    """A structured affine function: ``sum_k ops[k] @ value[node_k] + bias`` (flat C order).

    ``terms`` are ``(node index, node size, weight)`` with weight a dense matrix or a
    :mod:`reluverify.linear_ops` operator of shape (elements, node size); ``bias`` has the
    tensor's shape.
    """

    terms: tuple[tuple[int, int, object], ...]
    bias: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.bias.shape)

    @property
    def size(self) -> int:
        return int(self.bias.size)

    @property
    def sources(self) -> tuple[tuple[int, int], ...]:
        return tuple((node, size) for node, size, _ in self.terms)

    def table_size(self) -> int:
        return (1 + sum(size for _, size, _ in self.terms)) * max(self.size, 1)

    def map(self, op, shape: tuple[int, ...], bias: np.ndarray | None = None) -> "Linear":
        """The flat linear operator ``op`` (elements -> prod(shape)) applied to this function."""
        terms = tuple((node, size, lo.compose(op, w)) for node, size, w in self.terms)
        if bias is None:
            bias = lo.forward(op, self.bias.reshape(1, -1))[0]
        return Linear(terms, np.asarray(bias, dtype=np.float64).reshape(shape))

    def scaled(self, alpha: float) -> "Linear":
        return Linear(tuple((n, k, lo.scaled(w, alpha)) for n, k, w in self.terms), self.bias * alpha)

    def reshaped(self, shape: tuple[int, ...]) -> "Linear":
        return Linear(self.terms, self.bias.reshape(shape))


Value = np.ndarray | Affine | Linear


def _traced(value) -> bool:
    return isinstance(value, (Affine, Linear))


def _to_linear(v: "Affine | Linear") -> Linear:
    """The structured form of a traced value (a dense table's blocks; selections become index maps)."""
    if isinstance(v, Linear):
        return v
    size = int(np.prod(v.shape)) if v.shape else 1
    flat = v.table.reshape(v.table.shape[0], size)
    terms, off = [], 1
    for node, n in v.sources:
        terms.append((node, n, lo.from_dense(np.ascontiguousarray(flat[off : off + n].T))))
        off += n
    return Linear(tuple(terms), flat[0].reshape(v.shape).copy())


def _to_affine(v: Linear) -> Affine:
    """The dense table of a structured value (callers check that it is small)."""
    rows = [v.bias.reshape(1, -1)]
    for _, _, w in v.terms:
        rows.append(lo.dense(w).T)
    return Affine(v.sources, np.concatenate(rows, axis=0).reshape((-1,) + v.shape))


def _table_size(v: "Affine | Linear", elements: int | None = None) -> int:
    """Entries of the dense table of ``v`` (with ``elements`` elements instead of its own)."""
    rows = (1 + sum(size for _, size in v.sources)) if isinstance(v, Linear) else v.table.shape[0]
    if elements is None:
        elements = v.size if isinstance(v, Linear) else int(np.prod(v.shape)) if v.shape else 1
    return rows * max(int(elements), 1)


def _lin_broadcast(v: Linear, shape: tuple[int, ...]) -> Linear:
    if v.shape == tuple(shape):
        return v
    index = np.broadcast_to(np.arange(v.size).reshape(v.shape), shape)
    return v.map(lo.IndexMap(index.ravel(), v.size), tuple(shape), np.broadcast_to(v.bias, shape))


def _lin_add(a: Linear, b: Linear, sign: float) -> Linear:
    shape = np.broadcast_shapes(a.shape, b.shape)
    a, b = _lin_broadcast(a, shape), _lin_broadcast(b, shape)
    terms: dict[int, list] = {}
    for node, size, w in a.terms:
        terms[node] = [size, w]
    for node, size, w in b.terms:
        w = w if sign > 0 else lo.scaled(w, -1.0)
        if node in terms:
            terms[node][1] = lo.add(terms[node][1], w)
        else:
            terms[node] = [size, w]
    return Linear(tuple((n, k, w) for n, (k, w) in terms.items()), a.bias + sign * b.bias)


def _move(v: Value, fn: Callable[[np.ndarray], np.ndarray]) -> Value:
    """Pure data movement ``fn`` (transpose, slice, take, broadcast; it keeps a leading batch axis)."""
    if isinstance(v, Affine):
        return v.apply(fn)
    if isinstance(v, Linear):
        index = fn(np.arange(v.size).reshape((1,) + v.shape))[0]
        bias = fn(v.bias[None])[0]
        return v.map(lo.IndexMap(np.asarray(index).ravel(), v.size), tuple(index.shape), bias)
    return fn(np.asarray(v)[None])[0]


def _linear_fn(v: Linear, fn: Callable[[np.ndarray], np.ndarray], where: str) -> Linear:
    """A general linear ``fn`` (with a leading batch axis) on a structured value, through its dense matrix."""
    out_shape = tuple(np.shape(fn(np.zeros((1,) + v.shape)))[1:])
    out_size = int(np.prod(out_shape)) if out_shape else 1
    if v.size * out_size > lo.DENSE_LIMIT:
        raise NetworkError(f"{where}: this operator on a tensor of {v.size} values is supported only on small tensors")
    matrix = np.asarray(fn(np.eye(v.size).reshape((v.size,) + v.shape)), dtype=np.float64).reshape(v.size, out_size).T
    return v.map(matrix, out_shape, np.asarray(fn(v.bias[None])[0], dtype=np.float64))


def _align(a: Affine, b: Affine) -> tuple[Affine, Affine]:
    """Both values over the union of their sources, in the same row order."""
    if a.sources == b.sources:
        return a, b
    union = list(a.sources)
    for s in b.sources:
        if s not in union:
            union.append(s)

    def expand(v: Affine) -> Affine:
        rows = [v.table[:1]]
        offsets, off = {}, 1
        for s in v.sources:
            offsets[s] = off
            off += s[1]
        for s in union:
            if s in offsets:
                rows.append(v.table[offsets[s] : offsets[s] + s[1]])
            else:
                rows.append(np.zeros((s[1],) + v.shape))
        return Affine(tuple(union), np.concatenate(rows, axis=0))

    return expand(a), expand(b)


def _broadcast(v: Affine, shape: tuple[int, ...]) -> Affine:
    if v.shape == shape:
        return v
    return Affine(v.sources, np.broadcast_to(v.table, (v.table.shape[0],) + shape).copy())


class _Tracer:
    """Walks the ONNX graph once, building IR nodes; one instance per import."""

    def __init__(self, model, path: str, dense_limit: int = DENSE_LIMIT) -> None:
        self.model = model
        self.path = path
        self.limit = int(dense_limit)
        self.nodes: list[Node] = []
        self.values: dict[str, Value] = {}
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)

    # ----------------------------------------------------------- IR building
    def close(self, value: "Affine | Linear", where: str) -> int:
        """Materialise ``value`` as an IR affine node over its sources; return the node index."""
        if isinstance(value, Linear):
            bias = np.array(value.bias, dtype=np.float64).reshape(-1)
            for _, _, w in value.terms:
                if not lo.finite(w):
                    raise NetworkError(f"{where}: the folded weights contain NaN or infinity")
            if not np.all(np.isfinite(bias)):
                raise NetworkError(f"{where}: the folded bias contains NaN or infinity")
            weights = tuple(w if not isinstance(w, np.ndarray) else np.ascontiguousarray(w) for _, _, w in value.terms)
            self.nodes.append(AffineNode(tuple(node for node, _, _ in value.terms), weights, bias))
            return len(self.nodes) - 1
        size = int(np.prod(value.shape)) if value.shape else 1
        flat = value.table.reshape(value.table.shape[0], size)
        weights, off = [], 1
        for _, n in value.sources:
            weights.append(np.ascontiguousarray(flat[off : off + n].T))
            off += n
        bias = flat[0].copy()
        for w in weights:
            if not np.all(np.isfinite(w)):
                raise NetworkError(f"{where}: the folded weights contain NaN or infinity")
        if not np.all(np.isfinite(bias)):
            raise NetworkError(f"{where}: the folded bias contains NaN or infinity")
        self.nodes.append(AffineNode(tuple(s for s, _ in value.sources), tuple(weights), bias))
        return len(self.nodes) - 1

    def fresh(self, node: Node, shape: tuple[int, ...]) -> "Affine | Linear":
        """Append a nonlinear node and return the identity function of its output."""
        self.nodes.append(node)
        return self.identity(len(self.nodes) - 1, node.size, shape)

    def identity(self, index: int, size: int, shape: tuple[int, ...]) -> "Affine | Linear":
        """The value of node ``index`` itself: a dense identity table when small, else structured."""
        if (1 + size) * size > self.limit:
            return Linear(((index, size, lo.identity(size)),), np.zeros(shape))
        table = np.concatenate([np.zeros((1, size)), np.eye(size)], axis=0).reshape((1 + size,) + shape)
        return Affine(((index, size),), table)

    def normalise(self, value: Value, where: str) -> Value:
        """The representation rule: structured exactly when the dense table would exceed the limit."""
        if isinstance(value, Affine):
            if value.table.size > self.limit:
                return _to_linear(value)
        elif isinstance(value, Linear):
            if value.size > MAX_TENSOR_ELEMENTS:
                raise NetworkError(f"{where}: the traced tensor is too large ({value.size} elements)")
            if value.table_size() <= self.limit:
                return _to_affine(value)
        return value

    def structured(self, value: "Affine | Linear", elements: int, where: str) -> bool:
        """True when an operator giving ``elements`` elements should work on the structured form."""
        if elements > MAX_TENSOR_ELEMENTS:
            raise NetworkError(f"{where}: the traced tensor would be too large ({elements} elements)")
        return isinstance(value, Linear) or _table_size(value, elements) > self.limit

    # --------------------------------------------------------------- tracing
    def run(self) -> Network:
        graph = self.model.graph
        initialisers = {}
        folder = os.path.dirname(os.path.abspath(self.path)) if self.path else os.getcwd()
        for init in graph.initializer:
            if init.data_location == onnx_proto.schema().TensorProto.EXTERNAL:
                _check_external_data(init, folder)
            try:
                array = onnx_proto.to_array(init, base_dir=folder)
            except MemoryError:
                raise
            except KeyError:
                raise NetworkError(f"initializer {init.name!r} has the unknown data type {init.data_type}") from None
            except Exception as exc:  # noqa: BLE001 - any decoding failure is a malformed file
                raise NetworkError(f"initializer {init.name!r} cannot be decoded: {_first_line(exc)}") from None
            if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
                raise NetworkError(f"initializer {init.name!r} contains NaN or infinity")
            initialisers[init.name] = array
        self.values.update(initialisers)

        real_inputs = [i for i in graph.input if i.name not in initialisers]
        if len(real_inputs) != 1:
            names = ", ".join(repr(i.name) for i in real_inputs) or "none"
            raise NetworkError(f"the network must have exactly one input tensor, found {len(real_inputs)} ({names})")
        if len(graph.output) != 1:
            raise NetworkError(f"the network must have exactly one output tensor, found {len(graph.output)}")
        graph_input = real_inputs[0]
        ttype = graph_input.type.tensor_type
        types = onnx_proto.schema().TensorProto
        if ttype.elem_type not in (types.FLOAT, types.DOUBLE, types.FLOAT16):
            raise NetworkError(f"input {graph_input.name!r} has a non-float element type")
        dims = []
        for d in ttype.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1)
        if not ttype.HasField("shape"):
            raise NetworkError(f"input {graph_input.name!r} has no shape")
        input_shape = tuple(dims)
        size = math.prod(input_shape)
        if size > MAX_TENSOR_ELEMENTS:
            raise NetworkError(f"input {graph_input.name!r} of shape {input_shape} has {size} values: too many to trace "
                               f"(at most {MAX_TENSOR_ELEMENTS})")
        self.nodes.append(InputNode(size))
        self.values[graph_input.name] = self.identity(0, size, input_shape)

        for position, node in enumerate(graph.node):
            where = f"node {node.name!r} ({node.op_type})" if node.name else f"node #{position} ({node.op_type})"
            inputs: list[Value | None] = []
            for name in node.input:
                if name == "":
                    inputs.append(None)
                elif name in self.values:
                    inputs.append(self.values[name])
                else:
                    raise NetworkError(f"{where}: input {name!r} is not produced by any node, initializer or graph input")
            if node.domain not in ("", "ai.onnx"):
                raise NetworkError(f"{where}: operator domain {node.domain!r} is not supported")
            handler = OPERATORS.get(node.op_type)
            if handler is None:
                raise NetworkError(f"{where}: unsupported operator {node.op_type!r}")
            for attribute in node.attribute:
                if attribute.name not in ATTRIBUTES[node.op_type]:
                    raise NetworkError(f"{where}: attribute {attribute.name!r} is not supported")
            try:
                attrs = {a.name: onnx_proto.attribute_value(a) for a in node.attribute}
                attrs["_outputs"] = len(node.output)
                outputs = handler(self, inputs, attrs, where)
            except NetworkError:
                raise
            except KeyError as exc:
                raise NetworkError(f"{where}: the required attribute {exc.args[0]!r} is missing") from None
            except (ValueError, IndexError, TypeError, ArithmeticError, AttributeError) as exc:
                raise NetworkError(f"{where}: shape mismatch or bad argument: {_first_line(exc)}") from None
            for name, value in zip(node.output, outputs):
                if name:
                    if isinstance(value, Affine) and value.table.size > MAX_TRACE_ELEMENTS:
                        raise NetworkError(f"{where}: the traced tensor is too large to fold ({value.table.size} elements)")
                    self.values[name] = self.normalise(value, where)

        out_name = graph.output[0].name
        if out_name not in self.values:
            raise NetworkError(f"the graph output {out_name!r} is not produced by any node")
        output = self.values[out_name]
        if not _traced(output):
            raise NetworkError(f"the graph output {out_name!r} does not depend on the input")
        self.close(output, f"output {out_name!r}")
        # nodes that the output does not depend on are harmless; keep the graph as traced.
        return Network(
            tuple(self.nodes),
            input_shape=input_shape,
            output_shape=output.shape,
            input_name=graph_input.name,
            output_name=out_name,
            source_path=os.path.abspath(self.path) if self.path else None,
            source_sha256=file_sha256(self.path) if self.path else None,
        )


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0] or type(exc).__name__


def _check_external_data(init, folder: str) -> None:
    """An initializer's external data file must be a file inside the model's folder."""
    location = next((entry.value for entry in init.external_data if entry.key == "location"), "")
    if not location or "\0" in location:
        raise NetworkError(f"initializer {init.name!r}: its external data has no valid file name")
    target = os.path.realpath(os.path.join(folder, location))
    if os.path.isabs(location) or os.path.commonpath([target, os.path.realpath(folder)]) != os.path.realpath(folder):
        raise NetworkError(f"initializer {init.name!r}: its external data file {location[:100]!r} lies outside "
                           "the model's folder")
    if not os.path.isfile(target):
        raise NetworkError(f"initializer {init.name!r}: its external data file {location[:100]!r} does not exist "
                           "beside the model")


# ---------------------------------------------------------------- operators
def _const(value: Value | None, where: str, what: str) -> np.ndarray:
    if value is None:
        raise NetworkError(f"{where}: {what} is missing")
    if _traced(value):
        raise NetworkError(f"{where}: {what} must be a constant, but it depends on the network input")
    return value


def _float(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float64)


def op_identity(tracer, inputs, attrs, where):
    return [inputs[0]]


def op_constant(tracer, inputs, attrs, where):
    if "value" in attrs:
        return [onnx_proto.to_array(attrs["value"])]
    for key in ("value_float", "value_int"):
        if key in attrs:
            return [np.array(attrs[key])]
    for key in ("value_floats", "value_ints"):
        if key in attrs:
            return [np.array(list(attrs[key]))]
    raise NetworkError(f"{where}: unsupported Constant attribute {sorted(attrs)}")


def _add(a: Value, b: Value, sign: float, tracer=None, where: str = "") -> Value:
    if not _traced(a) and not _traced(b):
        return a + sign * b if sign > 0 else a - b
    shape = np.broadcast_shapes(_shape_of(a), _shape_of(b))
    elements = int(np.prod(shape)) if shape else 1
    big = tracer is not None and any(_traced(v) and tracer.structured(v, elements, where) for v in (a, b))
    if big or isinstance(a, Linear) or isinstance(b, Linear):
        la = _to_linear(a) if _traced(a) else None
        lb = _to_linear(b) if _traced(b) else None
        if la is not None and lb is not None:
            return _lin_add(la, lb, sign)
        if la is not None:
            out = _lin_broadcast(la, shape)
            return Linear(out.terms, out.bias + sign * _float(b))
        out = _lin_broadcast(lb, shape)
        out = out if sign > 0 else out.scaled(-1.0)
        return Linear(out.terms, out.bias + _float(a))
    if isinstance(a, Affine) and isinstance(b, Affine):
        a, b = _align(a, b)
        shape = np.broadcast_shapes(a.shape, b.shape)
        a, b = _broadcast(a, shape), _broadcast(b, shape)
        return Affine(a.sources, a.table + sign * b.table)
    if isinstance(a, Affine):
        shape = np.broadcast_shapes(a.shape, np.shape(b))
        out = _broadcast(a, shape)
        table = out.table.copy()
        table[0] = table[0] + sign * _float(b)
        return Affine(out.sources, table)
    # constant +- affine
    shape = np.broadcast_shapes(np.shape(a), b.shape)
    out = _broadcast(b, shape)
    table = sign * out.table
    table[0] = table[0] + _float(a)
    return Affine(out.sources, table)


def op_add(tracer, inputs, attrs, where):
    return [_add(_need(inputs, 0, where), _need(inputs, 1, where), 1.0, tracer, where)]


def op_sub(tracer, inputs, attrs, where):
    return [_add(_need(inputs, 0, where), _need(inputs, 1, where), -1.0, tracer, where)]


def op_sum(tracer, inputs, attrs, where):
    total = _need(inputs, 0, where)
    for v in inputs[1:]:
        total = _add(total, v, 1.0, tracer, where)
    return [total]


def _need(inputs, i, where):
    if i >= len(inputs) or inputs[i] is None:
        raise NetworkError(f"{where}: expected at least {i + 1} inputs")
    return inputs[i]


def op_neg(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    if isinstance(v, Linear):
        return [v.scaled(-1.0)]
    return [v.apply(lambda t: -t) if isinstance(v, Affine) else -v]


def _lin_scale(tracer, v: "Affine | Linear", c: np.ndarray, where: str) -> Linear:
    """``v * c`` (c broadcast) on the structured form: a scalar scales, else a diagonal operator."""
    shape = np.broadcast_shapes(v.shape, c.shape)
    tracer.structured(v, int(np.prod(shape)) if shape else 1, where)  # size check
    v = _lin_broadcast(_to_linear(v), shape)
    full = np.broadcast_to(c, shape)
    if full.size and np.all(full == full.flat[0]):
        return v.scaled(float(full.flat[0]))
    return v.map(lo.diagonal(full.ravel()), shape, v.bias * full)


def op_mul(tracer, inputs, attrs, where):
    a, b = _need(inputs, 0, where), _need(inputs, 1, where)
    if _traced(a) and _traced(b):
        return [_product(tracer, a, b, where)]
    if _traced(b):
        a, b = b, a
    if _traced(a):
        c = _float(b)
        shape = np.broadcast_shapes(a.shape, c.shape)
        if tracer.structured(a, int(np.prod(shape)) if shape else 1, where):
            return [_lin_scale(tracer, a, c, where)]
        return [Affine(a.sources, _broadcast(a, shape).table * c)]
    return [a * b]


def op_div(tracer, inputs, attrs, where):
    a, b = _need(inputs, 0, where), _need(inputs, 1, where)
    if _traced(b):
        raise NetworkError(f"{where}: division by a tensor that depends on the input is not supported")
    if _traced(a):
        c = _float(b)
        if np.any(c == 0):
            raise NetworkError(f"{where}: division by zero")
        shape = np.broadcast_shapes(a.shape, c.shape)
        if tracer.structured(a, int(np.prod(shape)) if shape else 1, where):
            return [_lin_scale(tracer, a, 1.0 / c, where)]
        return [Affine(a.sources, _broadcast(a, shape).table / c)]
    return [a / b]


def _product(tracer, a, b, where: str):
    shape = np.broadcast_shapes(a.shape, b.shape)
    a = _lin_broadcast(a, shape) if isinstance(a, Linear) else _broadcast(a, shape)
    b = _lin_broadcast(b, shape) if isinstance(b, Linear) else _broadcast(b, shape)
    left = tracer.close(a, where)
    right = tracer.close(b, where)
    size = tracer.nodes[left].size
    return tracer.fresh(ProductNode(left, right, size), shape)


def _matmul(a: Value, b: Value, where: str) -> Value:
    if _traced(a) and _traced(b):
        raise NetworkError(f"{where}: the product of two input-dependent tensors is not supported")
    if isinstance(a, Linear):
        w = _float(b)
        if w.ndim == 2 and a.shape and a.shape[-1] == w.shape[0]:
            lead = int(np.prod(a.shape[:-1])) if len(a.shape) > 1 else 1
            return a.map(lo.repeat(np.ascontiguousarray(w.T), lead), a.shape[:-1] + (w.shape[1],))
        return _linear_fn(a, lambda t: np.matmul(t, w), where)
    if isinstance(b, Linear):
        w = _float(a)
        if len(b.shape) == 1:
            return _linear_fn(b, lambda t: t @ w.T if w.ndim == 2 else np.matmul(w, t[..., None])[..., 0], where)
        return _linear_fn(b, lambda t: np.matmul(w, t), where)
    if isinstance(a, Affine):
        w = _float(b)
        return a.apply(lambda t: np.matmul(t, w))
    if isinstance(b, Affine):
        w = _float(a)
        if len(b.shape) == 1:
            return b.apply(lambda t: t @ w.T if w.ndim == 2 else np.matmul(w, t[..., None])[..., 0])
        return b.apply(lambda t: np.matmul(w, t))
    return np.matmul(a, b)


def op_matmul(tracer, inputs, attrs, where):
    return [_matmul(_need(inputs, 0, where), _need(inputs, 1, where), where)]


def op_gemm(tracer, inputs, attrs, where):
    a, b = _need(inputs, 0, where), _need(inputs, 1, where)
    c = inputs[2] if len(inputs) > 2 else None
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))

    def transpose(v):
        if _traced(v):
            if len(v.shape) != 2:
                raise NetworkError(f"{where}: Gemm needs 2-D operands")
            return _move(v, lambda t: np.swapaxes(t, -1, -2))
        return _float(v).T

    def scale(v, factor):
        if isinstance(v, Linear):
            return v.scaled(factor)
        return v.apply(lambda t: factor * t) if isinstance(v, Affine) else factor * _float(v)

    if attrs.get("transA", 0):
        a = transpose(a)
    if attrs.get("transB", 0):
        b = transpose(b)
    for v in (a, b):
        if len(_shape_of(v)) != 2:
            raise NetworkError(f"{where}: Gemm needs 2-D operands")
    out = _matmul(a, b, where)
    if alpha != 1.0:
        out = scale(out, alpha)
    if c is not None:
        out = _add(out, scale(c, beta), 1.0, tracer, where)
    return [out]


def _activation(kind: str):
    def op(tracer, inputs, attrs, where):
        v = _need(inputs, 0, where)
        if not _traced(v):
            return [_ACTIVATION_FNS[kind](_float(v))]
        source = tracer.close(v, where)
        return [tracer.fresh(ActivationNode(kind, source, tracer.nodes[source].size), v.shape)]

    return op


_ACTIVATION_FNS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
    "tanh": np.tanh,
}


def _shape_of(v: Value) -> tuple[int, ...]:
    return v.shape if _traced(v) else tuple(np.shape(v))


def _reshape_value(v: Value, shape: tuple[int, ...]) -> Value:
    if isinstance(v, Linear):
        return v.reshaped(tuple(shape))
    if isinstance(v, Affine):
        return v.apply(lambda t: t.reshape((t.shape[0],) + tuple(shape)))
    return np.reshape(v, shape)


def op_flatten(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    shape = _shape_of(v)
    axis = int(attrs.get("axis", 1))
    if axis < 0:
        axis += len(shape)
    outer = int(np.prod(shape[:axis])) if axis > 0 else 1
    return [_reshape_value(v, (outer, int(np.prod(shape[axis:])) if shape[axis:] else 1))]


def op_reshape(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    target = [int(d) for d in _const(inputs[1] if len(inputs) > 1 else None, where, "the shape input").ravel()]
    shape = _shape_of(v)
    allow_zero = int(attrs.get("allowzero", 0))
    resolved = []
    for i, d in enumerate(target):
        if d == 0 and not allow_zero:
            resolved.append(shape[i])
        else:
            resolved.append(d)
    total = int(np.prod(shape)) if shape else 1
    if resolved.count(-1) > 1:
        raise NetworkError(f"{where}: more than one -1 in the target shape")
    if -1 in resolved:
        known = int(np.prod([d for d in resolved if d != -1])) if len(resolved) > 1 else 1
        if known == 0 or total % known:
            raise NetworkError(f"{where}: cannot reshape {shape} to {target}")
        resolved[resolved.index(-1)] = total // known
    if int(np.prod(resolved)) != total:
        raise NetworkError(f"{where}: cannot reshape {shape} ({total} elements) to {tuple(resolved)}")
    return [_reshape_value(v, tuple(resolved))]


def _axes_arg(inputs, attrs, where, position=1):
    if len(inputs) > position and inputs[position] is not None:
        return [int(a) for a in _const(inputs[position], where, "axes").ravel()]
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    return None


def op_squeeze(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    shape = _shape_of(v)
    axes = _axes_arg(inputs, attrs, where)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = [a + len(shape) if a < 0 else a for a in axes]
    for a in axes:
        if shape[a] != 1:
            raise NetworkError(f"{where}: cannot squeeze axis {a} of size {shape[a]}")
    return [_reshape_value(v, tuple(d for i, d in enumerate(shape) if i not in axes))]


def op_unsqueeze(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    shape = list(_shape_of(v))
    axes = _axes_arg(inputs, attrs, where)
    if axes is None:
        raise NetworkError(f"{where}: Unsqueeze needs axes")
    rank = len(shape) + len(axes)
    for a in sorted(a + rank if a < 0 else a for a in axes):
        shape.insert(a, 1)
    return [_reshape_value(v, tuple(shape))]


def op_transpose(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    rank = len(_shape_of(v))
    perm = list(attrs.get("perm", list(range(rank))[::-1]))
    if _traced(v):
        return [_move(v, lambda t: np.transpose(t, [0] + [p + 1 for p in perm]))]
    return [np.transpose(v, perm)]


def op_shape(tracer, inputs, attrs, where):
    shape = np.array(_shape_of(_need(inputs, 0, where)), dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return [shape[start:end]]


def op_cast(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    if _traced(v):
        return [v]
    dtype = onnx_proto.numpy_dtype(int(attrs["to"]))
    return [np.asarray(v).astype(dtype)]


def op_concat(tracer, inputs, attrs, where):
    values = [v for v in inputs if v is not None]
    axis = int(attrs["axis"])
    if not any(_traced(v) for v in values):
        return [np.concatenate([np.asarray(v) for v in values], axis=axis)]
    rank = len(_shape_of(values[0]))
    axis = axis + rank if axis < 0 else axis
    total = sum(int(np.prod(_shape_of(v))) for v in values)
    if any(isinstance(v, Linear) for v in values) or sum(
        _table_size(v, total) if _traced(v) else 0 for v in values
    ) > tracer.limit or total > MAX_TENSOR_ELEMENTS:
        if total > MAX_TENSOR_ELEMENTS:
            raise NetworkError(f"{where}: the traced tensor would be too large ({total} elements)")
        return [_lin_concat(values, axis)]
    affines = [v if isinstance(v, Affine) else None for v in values]
    # bring every part over the same sources
    template = next(v for v in affines if v is not None)
    for v in affines:
        if v is not None:
            template, _ = _align(template, v)
    parts = []
    for v in values:
        if isinstance(v, Affine):
            _, v = _align(template, v)  # template holds every source: v over template's order
            parts.append(v.table)
        else:
            table = np.zeros((template.table.shape[0],) + np.shape(v))
            table[0] = _float(v)
            parts.append(table)
    return [Affine(template.sources, np.concatenate(parts, axis=axis + 1))]


def _lin_concat(values: list, axis: int) -> Linear:
    """Concatenation of structured parts: their operators stacked, then the order of ``axis`` restored."""
    shapes = [tuple(_shape_of(v)) for v in values]
    sizes = [int(np.prod(s)) if s else 1 for s in shapes]
    starts = np.cumsum([0] + sizes)
    order = np.concatenate(
        [np.arange(starts[k], starts[k + 1]).reshape(shapes[k]) for k in range(len(values))], axis=axis
    )
    parts = [_to_linear(v) if _traced(v) else None for v in values]
    nodes: dict[int, int] = {}
    for part in parts:
        if part is not None:
            for node, size, _ in part.terms:
                nodes.setdefault(node, size)
    perm = lo.IndexMap(order.ravel(), int(starts[-1]))
    terms = []
    for node, size in nodes.items():
        grid = {}
        for k, part in enumerate(parts):
            for n, _, w in part.terms if part is not None else ():
                if n == node:
                    grid[(k, 0)] = w
        terms.append((node, size, lo.compose(perm, lo.blocks(sizes, [size], grid))))
    biases = [p.bias if p is not None else _float(v) for p, v in zip(parts, values)]
    return Linear(tuple(terms), np.concatenate([np.asarray(b, dtype=np.float64) for b in biases], axis=axis))


def _slice_value(v: Value, index: tuple) -> Value:
    if _traced(v):
        return _move(v, lambda t: t[(slice(None),) + index])
    return np.asarray(v)[index]


def op_slice(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    shape = _shape_of(v)
    if tracer.opset < 10:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = [int(s) for s in _const(inputs[1], where, "starts").ravel()]
        ends = [int(s) for s in _const(inputs[2], where, "ends").ravel()]
        axes = (
            [int(a) for a in _const(inputs[3], where, "axes").ravel()]
            if len(inputs) > 3 and inputs[3] is not None
            else list(range(len(starts)))
        )
        steps = (
            [int(s) for s in _const(inputs[4], where, "steps").ravel()]
            if len(inputs) > 4 and inputs[4] is not None
            else [1] * len(starts)
        )
    index = [slice(None)] * len(shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = a + len(shape) if a < 0 else a
        big = 2**62
        s = max(min(s, big), -big)
        e = max(min(e, big), -big)
        index[a] = slice(s, e, st)
    return [_slice_value(v, tuple(index))]


def op_gather(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    idx = np.asarray(_const(inputs[1], where, "indices")).astype(np.int64)
    axis = int(attrs.get("axis", 0))
    shape = _shape_of(v)
    axis = axis + len(shape) if axis < 0 else axis
    idx = np.where(idx < 0, idx + shape[axis], idx)
    if _traced(v):
        out_elements = int(np.prod(shape[:axis] + idx.shape + shape[axis + 1 :]))
        if isinstance(v, Affine) and tracer.structured(v, out_elements, where):
            v = _to_linear(v)
        return [_move(v, lambda t: np.take(t, idx, axis=axis + 1))]
    return [np.take(v, idx, axis=axis)]


def op_split(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    shape = _shape_of(v)
    axis = int(attrs.get("axis", 0))
    axis = axis + len(shape) if axis < 0 else axis
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = [int(s) for s in _const(inputs[1], where, "split").ravel()]
    elif "split" in attrs:
        sizes = [int(s) for s in attrs["split"]]
    else:
        parts = int(attrs.get("num_outputs", 0)) or int(attrs["_outputs"])
        chunk = math.ceil(shape[axis] / parts)
        sizes = [min(chunk, shape[axis] - i * chunk) for i in range(parts)]
    outs, start = [], 0
    for size in sizes:
        index = [slice(None)] * len(shape)
        index[axis] = slice(start, start + size)
        outs.append(_slice_value(v, tuple(index)))
        start += size
    return outs


def op_batchnorm(tracer, inputs, attrs, where):
    x = _need(inputs, 0, where)
    scale, bias, mean, var = (_float(_const(inputs[i], where, name)) for i, name in
                              zip(range(1, 5), ("scale", "B", "mean", "var")))
    if int(attrs.get("training_mode", 0)) != 0:
        raise NetworkError(f"{where}: training mode (batch statistics) is not supported")
    if int(attrs.get("spatial", 1)) != 1:
        raise NetworkError(f"{where}: spatial=0 (per-element statistics) is not supported")
    eps = float(attrs.get("epsilon", 1e-5))
    factor = scale / np.sqrt(var + eps)
    shift = bias - mean * factor
    rank = len(_shape_of(x))
    bshape = (-1,) + (1,) * (rank - 2) if rank >= 2 else (-1,)
    out = op_mul(tracer, [x, factor.reshape(bshape)], {}, where)[0]
    return [_add(out, shift.reshape(bshape), 1.0, tracer, where)]


def _conv_linear(x: np.ndarray, w: np.ndarray, strides, pads, dilations, group: int) -> np.ndarray:
    """Cross-correlation of x (B, C, *spatial) with w (M, C/group, *kernel); no bias."""
    nd = w.ndim - 2
    pad_width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)]
    x = np.pad(x, pad_width)
    kernel = w.shape[2:]
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    windows = np.lib.stride_tricks.sliding_window_view(x, eff, axis=tuple(range(2, 2 + nd)))
    # windows: (B, C, *out_full, *eff); apply stride and dilation
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + tuple(
        slice(None, None, d) for d in dilations
    )
    windows = windows[index]  # (B, C, *out, *kernel)
    b, c = x.shape[:2]
    m = w.shape[0]
    cg, mg = c // group, m // group
    outs = []
    letters = "abcdefgh"[:nd]
    kletters = "pqrstuvw"[:nd]
    for g in range(group):
        win = windows[:, g * cg : (g + 1) * cg]
        wg = w[g * mg : (g + 1) * mg]
        expr = f"zc{letters}{kletters},mc{kletters}->zm{letters}"
        outs.append(np.einsum(expr, win, wg, optimize=True))
    return np.concatenate(outs, axis=1)


def _window_geometry(shape, kernel, attrs, where, pool: bool = False):
    """Strides, pads (ONNX order, with ``ceil_mode``'s extra end padding) and dilations of a window operator."""
    nd = len(kernel)
    spatial = list(shape[2:])
    if len(spatial) != nd:
        raise NetworkError(f"{where}: input of rank {len(shape)} for a {nd}-D window")
    strides = [int(v) for v in attrs.get("strides", [1] * nd)]
    dilations = [int(v) for v in attrs.get("dilations", [1] * nd)]
    if len(strides) != nd or len(dilations) != nd or min(strides + dilations, default=1) < 1:
        raise NetworkError(f"{where}: bad strides or dilations")
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode(errors="replace") if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if any(d != 1 for d in dilations):
            # onnxruntime refuses it for Conv and pads differently from the ONNX specification for pools
            raise NetworkError(f"{where}: auto_pad {auto_pad} with dilations {dilations} is not supported")
        begin, end_ = [], []
        for i in range(nd):
            out = math.ceil(spatial[i] / strides[i])
            need = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i])
            small, large = need // 2, need - need // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end_.append(large if auto_pad == "SAME_UPPER" else small)
        pads = begin + end_
    elif auto_pad == "VALID":
        pads = [0] * (2 * nd)
    elif auto_pad in ("NOTSET", ""):
        pads = [int(v) for v in attrs.get("pads", [0] * (2 * nd))]
    else:
        raise NetworkError(f"{where}: auto_pad {auto_pad!r} is not supported")
    if len(pads) != 2 * nd or min(pads, default=0) < 0:
        raise NetworkError(f"{where}: bad pads {pads}")
    extra = [0] * nd
    if pool and int(attrs.get("ceil_mode", 0)):
        for i in range(nd):
            eff = (kernel[i] - 1) * dilations[i] + 1
            span = spatial[i] + pads[i] + pads[i + nd] - eff
            if span < 0:
                break
            out = -(-span // strides[i]) + 1
            if (out - 1) * strides[i] >= spatial[i] + pads[i]:  # the last window would start in the end padding
                out -= 1
            extra[i] = max(0, (out - 1) * strides[i] + eff - (spatial[i] + pads[i] + pads[i + nd]))
    return strides, pads, dilations, extra


def _apply_op(tracer, x, op, out_shape: tuple[int, ...], where: str):
    """A flat linear operator on a traced value, in the form the size rule picks."""
    elements = int(np.prod(out_shape))
    if tracer.structured(x, elements, where):
        return _to_linear(x).map(op, out_shape)
    rows = x.table.shape[0]
    table = lo.forward(op, x.table.reshape(rows, -1)).reshape((rows,) + tuple(out_shape))
    return Affine(x.sources, table)


def op_conv(tracer, inputs, attrs, where):
    x = _need(inputs, 0, where)
    w = _float(_const(inputs[1], where, "the weight"))
    bias = _float(_const(inputs[2], where, "the bias")) if len(inputs) > 2 and inputs[2] is not None else None
    nd = w.ndim - 2
    shape = _shape_of(x)
    if nd < 1 or len(shape) != nd + 2:
        raise NetworkError(f"{where}: input of rank {len(shape)} for a {nd}-D convolution")
    group = int(attrs.get("group", 1))
    if "kernel_shape" in attrs and list(attrs["kernel_shape"]) != list(w.shape[2:]):
        raise NetworkError(f"{where}: kernel_shape {list(attrs['kernel_shape'])} differs from the weights' {list(w.shape[2:])}")
    strides, pads, dilations, _ = _window_geometry(shape, list(w.shape[2:]), attrs, where)
    if group < 1:
        raise NetworkError(f"{where}: bad strides, dilations, pads or group")
    if shape[1] != w.shape[1] * group:
        raise NetworkError(f"{where}: input has {shape[1]} channels, weights expect {w.shape[1] * group}")
    if bias is not None and bias.size != w.shape[0]:
        raise NetworkError(f"{where}: the bias has {bias.size} values for {w.shape[0]} output channels")
    if _traced(x):
        op = lo.Conv(w, shape[1:], strides, pads, dilations, group)
        out_shape = (shape[0],) + op.out_shape
        if tracer.structured(x, shape[0] * op.shape[0], where):
            out = _to_linear(x).map(lo.repeat(op, shape[0]), out_shape)
            if bias is not None:
                out = Linear(out.terms, out.bias + bias.reshape((-1,) + (1,) * nd))
            return [out]
        table = x.table
        rows = table.shape[0]
        flat = table.reshape((rows * shape[0],) + shape[1:])
        out = _conv_linear(flat, w, strides, pads, dilations, group)
        out = out.reshape((rows, shape[0]) + out.shape[1:])
        if bias is not None:
            out[0] += bias.reshape((-1,) + (1,) * nd)
        return [Affine(x.sources, out)]
    out = _conv_linear(_float(x), w, strides, pads, dilations, group)
    if bias is not None:
        out = out + bias.reshape((-1,) + (1,) * nd)
    return [out]


def _pads_arg(tracer, inputs, attrs, where, rank: int) -> list[tuple[int, int]]:
    if len(inputs) > 1 and inputs[1] is not None:
        pads = [int(p) for p in _const(inputs[1], where, "pads").ravel()]
    else:
        pads = [int(p) for p in attrs.get("pads", [])]
    axes = list(range(rank))
    if len(inputs) > 3 and inputs[3] is not None:
        axes = [int(a) + rank if int(a) < 0 else int(a) for a in _const(inputs[3], where, "axes").ravel()]
    if len(pads) != 2 * len(axes) or any(not 0 <= a < rank for a in axes):
        raise NetworkError(f"{where}: {len(pads)} pads for {len(axes)} axes of a rank-{rank} tensor")
    width = [(0, 0)] * rank
    for k, a in enumerate(axes):
        width[a] = (pads[k], pads[k + len(axes)])
    return width


def op_pad(tracer, inputs, attrs, where):
    """Pad as an index map (``constant``: the value at new places; ``reflect``, ``edge``, ``wrap``: copies)."""
    x = _need(inputs, 0, where)
    shape = _shape_of(x)
    mode = attrs.get("mode", b"constant")
    mode = mode.decode(errors="replace") if isinstance(mode, bytes) else str(mode)
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise NetworkError(f"{where}: pad mode {mode!r} is not supported")
    width = _pads_arg(tracer, inputs, attrs, where, len(shape))
    if len(inputs) > 2 and inputs[2] is not None and np.size(_const(inputs[2], where, "constant_value")):
        fill = float(np.ravel(_float(_const(inputs[2], where, "constant_value")))[0])
    else:
        fill = float(attrs.get("value", 0.0))
    # negative pads crop first
    crop = tuple(slice(max(0, -b), d - max(0, -e)) for (b, e), d in zip(width, shape))
    grow = [(max(0, b), max(0, e)) for b, e in width]
    cropped = [c.stop - c.start for c in crop]
    if min(cropped, default=1) < 0:
        raise NetworkError(f"{where}: the pads crop more than the tensor holds")
    if mode != "constant" and any(b or e for b, e in grow) and min(cropped, default=1) < 1:
        raise NetworkError(f"{where}: {mode} padding of an empty axis")
    if mode == "reflect" and any((b > c - 1 or e > c - 1) for (b, e), c in zip(grow, cropped) if b or e):
        raise NetworkError(f"{where}: reflect pads larger than the axis")
    size = int(np.prod(shape)) if shape else 1
    index = np.arange(size).reshape(shape)[crop]
    index = np.pad(index, grow, mode=mode, constant_values=-1) if mode == "constant" else np.pad(index, grow, mode=mode)
    if index.size > MAX_TENSOR_ELEMENTS:
        raise NetworkError(f"{where}: the padded tensor would be too large ({index.size} elements)")
    if not _traced(x):
        flat = _float(x).ravel()
        out = np.where(index >= 0, flat[np.maximum(index, 0)], fill)
        return [out.astype(np.asarray(x).dtype) if np.asarray(x).dtype.kind == "f" else out]
    op = lo.IndexMap(index.ravel(), size)
    out = _apply_op(tracer, x, op, index.shape, where)
    if fill != 0.0 and mode == "constant":
        mask = (index < 0).astype(np.float64) * fill
        out = _add(out, mask, 1.0, tracer, where)
    return [out]


def _pool_attrs(attrs, where, rank: int) -> list[int]:
    kernel = [int(k) for k in attrs["kernel_shape"]]
    if len(kernel) != rank - 2 or min(kernel, default=1) < 1 or len(kernel) not in (1, 2):
        raise NetworkError(f"{where}: kernel_shape {kernel} does not fit a 1-D or 2-D pool over a rank-{rank} tensor")
    if int(attrs.get("storage_order", 0)) != 0:
        raise NetworkError(f"{where}: storage_order 1 is not supported")
    return kernel


def op_averagepool(tracer, inputs, attrs, where):
    """AveragePool as a convolution with groups = channels (``count_include_pad`` sets the divisors)."""
    x = _need(inputs, 0, where)
    shape = _shape_of(x)
    kernel = _pool_attrs(attrs, where, len(shape))
    strides, pads, dilations, extra = _window_geometry(shape, kernel, attrs, where, pool=True)
    nd = len(kernel)
    channels = shape[1]
    total_pads = [p + (extra[i - nd] if i >= nd else 0) for i, p in enumerate(pads)]
    ones = np.ones((1, 1) + tuple(kernel))
    counter = lo.Conv(ones, (1,) + tuple(shape[2:]), strides, total_pads, dilations)
    if int(attrs.get("count_include_pad", 0)):
        # the elements inside the declared padding count; those of ceil_mode's extra padding do not
        padded = tuple(d + pads[i] + pads[i + nd] for i, d in enumerate(shape[2:]))
        counter = lo.Conv(ones, (1,) + padded, strides, [0] * nd + extra, dilations)
        count = counter.forward(np.ones((1, int(np.prod(padded)))))[0]
    else:
        count = counter.forward(np.ones((1, int(np.prod(shape[2:])))))[0]
    if np.any(count <= 0):
        raise NetworkError(f"{where}: a pooling window holds no input element")
    if np.all(count == count[0]):
        op = lo.Conv(np.full((channels, 1) + tuple(kernel), 1.0 / count[0]), shape[1:], strides, total_pads, dilations,
                     channels)
    else:
        summed = lo.Conv(np.ones((channels, 1) + tuple(kernel)), shape[1:], strides, total_pads, dilations, channels)
        op = lo.compose(lo.diagonal(np.tile(1.0 / count, channels)), summed)
    return [_pool_apply(tracer, x, op, shape, where)]


def _pool_apply(tracer, x, op, shape, where):
    """A pooling operator (a Conv, or a Conv then its divisors) on each item of the leading axis."""
    out_spatial = (op.out_shape if isinstance(op, lo.Conv) else op.ops[0].out_shape)[1:]
    out_shape = (shape[0], shape[1]) + tuple(out_spatial)
    if not _traced(x):
        return lo.forward(op, _float(x).reshape(shape[0], -1)).reshape(out_shape)
    return _apply_op(tracer, x, lo.repeat(op, shape[0]), out_shape, where)


def op_globalaveragepool(tracer, inputs, attrs, where):
    x = _need(inputs, 0, where)
    shape = _shape_of(x)
    if len(shape) not in (3, 4):
        raise NetworkError(f"{where}: GlobalAveragePool of a rank-{len(shape)} tensor (1-D and 2-D are supported)")
    kernel = tuple(shape[2:])
    op = lo.Conv(np.full((shape[1], 1) + kernel, 1.0 / int(np.prod(kernel))), shape[1:], groups=shape[1])
    return [_pool_apply(tracer, x, op, shape, where)]


def _selection_like(value: Linear) -> bool:
    return all(isinstance(w, (lo.IndexMap, lo.Sparse)) or
               (isinstance(w, np.ndarray) and w.size <= lo.FOLD_LIMIT) for _, _, w in value.terms)


def _nonnegative(tracer, value: Linear) -> bool:
    """True when the value is a non-negative combination of ReLU outputs plus a non-negative constant."""
    if np.any(value.bias < 0):
        return False
    for node, _, w in value.terms:
        target = tracer.nodes[node]
        if not (isinstance(target, ActivationNode) and target.kind == "relu"):
            return False
        if isinstance(w, lo.IndexMap):
            if w.scale is not None and np.any(w.scale < 0):
                return False
        elif isinstance(w, lo.Sparse):
            if np.any(w.values < 0):
                return False
        elif not (isinstance(w, np.ndarray) and np.all(w >= 0)):
            return False
    return True


def op_maxpool(tracer, inputs, attrs, where):
    """MaxPool, exactly, as ReLUs: a binary tree of ``max(a, b) = relu(a - b) + relu(b) [- relu(-b)]``.

    The window's values are paired level by level (``ceil(log2 k)`` ReLU layers for a window
    of ``k`` values); every level is one affine node and one ReLU node over the previous
    level's units only, so a network stays a ReLU chain. ``b`` passes as ``relu(b)`` when
    the pooled tensor is known non-negative (a ReLU's output: those units are stable),
    else as ``relu(b) - relu(-b)``. A pooled tensor that is not a selection of earlier
    values (a convolution's output) is first split into ``relu(x), relu(-x)`` units, so
    every level's weights are sparse. Cost per output value: about ``2k`` units (``3k``
    for a signed input, plus ``2`` per pooled value for the split).
    """
    if int(attrs["_outputs"]) > 1:
        raise NetworkError(f"{where}: the Indices output of MaxPool is not supported")
    x = _need(inputs, 0, where)
    shape = _shape_of(x)
    kernel = _pool_attrs(attrs, where, len(shape))
    strides, pads, dilations, extra = _window_geometry(shape, kernel, attrs, where, pool=True)
    nd = len(kernel)
    size = int(np.prod(shape))
    # window indices into the flat tensor (batch included); padding marked -1
    index = np.arange(size).reshape(shape)
    width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nd] + extra[i]) for i in range(nd)]
    index = np.pad(index, width, constant_values=-1)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if any(index.shape[2 + i] < eff[i] for i in range(nd)):
        raise NetworkError(f"{where}: the pooling window is larger than the padded input")
    windows = np.lib.stride_tricks.sliding_window_view(index, eff, axis=tuple(range(2, 2 + nd)))
    windows = windows[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
                      + tuple(slice(None, None, d) for d in dilations)]
    out_shape = windows.shape[: 2 + nd]
    windows = windows.reshape(-1, int(np.prod(kernel)))
    valid = windows >= 0
    if not np.all(valid.any(axis=1)):
        raise NetworkError(f"{where}: a pooling window holds no input element")
    first = windows[np.arange(windows.shape[0]), valid.argmax(axis=1)]
    windows = np.where(valid, windows, first[:, None])  # max(a, a) = a: padding repeats a real value
    if not _traced(x):
        return [_float(x).ravel()[windows].max(axis=1).reshape(out_shape)]
    outputs = windows.shape[0]
    if int(np.prod(out_shape)) * (3 * windows.shape[1] + 2) > MAX_TENSOR_ELEMENTS:
        raise NetworkError(f"{where}: the max pooling needs too many ReLUs")
    value = _to_linear(x)
    signed = not _nonnegative(tracer, value)
    if windows.shape[1] > 1 and not _selection_like(value):
        # split x = relu(x) - relu(-x) so that the levels below combine sparse selections
        both = Linear(tuple((n, k, lo.vstack([w, lo.scaled(w, -1.0)])) for n, k, w in value.terms),
                      np.concatenate([value.bias.ravel(), -value.bias.ravel()]))
        tracer.fresh(ActivationNode("relu", tracer.close(tracer.normalise(both, where), where), 2 * size), (2 * size,))
        node = len(tracer.nodes) - 1
        split = lo.Sparse(np.r_[np.arange(size), np.arange(size)], np.arange(2 * size),
                          np.r_[np.ones(size), -np.ones(size)], (size, 2 * size))
        value = Linear(((node, 2 * size, split),), np.zeros(size))
    # the columns: per output, its window's values, as selections of the current space
    space = value  # an affine function of the current units (x's sources first)
    columns = [lo.IndexMap(windows[:, j], size) for j in range(windows.shape[1])]
    while len(columns) > 1:
        pairs = [(columns[i], columns[i + 1]) for i in range(0, len(columns) - 1, 2)]
        odd = [columns[-1]] if len(columns) % 2 else []
        parts = []  # rows of the level's pre-activations, as operators on the current space
        for a, b in pairs:
            parts.append(lo.add(a, lo.scaled(b, -1.0)))  # relu(a - b)
            parts.append(b)  # relu(b)
            if signed:
                parts.append(lo.scaled(b, -1.0))  # relu(-b)
        for c in odd:
            parts.append(c)
            if signed:
                parts.append(lo.scaled(c, -1.0))
        stacked = lo.Sparse(*_stack_sparse(parts))
        level = space.map(stacked, (lo.shape(stacked)[0],))
        units = lo.shape(stacked)[0]
        tracer.fresh(ActivationNode("relu", tracer.close(tracer.normalise(level, where), where), units), (units,))
        node = len(tracer.nodes) - 1
        # the new columns: max of each pair, the odd one, over the level's units
        per = 3 if signed else 2
        new_columns, offset = [], 0
        for _ in pairs:
            rows_ = np.arange(outputs)
            cols = [offset * outputs + rows_, (offset + 1) * outputs + rows_]
            vals = [np.ones(outputs), np.ones(outputs)]
            if signed:
                cols.append((offset + 2) * outputs + rows_)
                vals.append(-np.ones(outputs))
            new_columns.append(lo.Sparse(np.tile(rows_, len(cols)), np.concatenate(cols), np.concatenate(vals),
                                         (outputs, units)))
            offset += per
        for _ in odd:
            rows_ = np.arange(outputs)
            cols, vals = [offset * outputs + rows_], [np.ones(outputs)]
            if signed:
                cols.append((offset + 1) * outputs + rows_)
                vals.append(-np.ones(outputs))
            new_columns.append(lo.Sparse(np.tile(rows_, len(cols)), np.concatenate(cols), np.concatenate(vals),
                                         (outputs, units)))
            offset += 2 if signed else 1
        columns = new_columns
        space = Linear(((node, units, lo.identity(units)),), np.zeros(units))
    return [space.map(columns[0], out_shape)]


def _stack_sparse(parts: list) -> tuple:
    """Rows of IndexMap/Sparse operators one after another, as coordinate arrays."""
    rows_, cols, vals, offset = [], [], [], 0
    for part in parts:
        s = part.to_sparse() if isinstance(part, lo.IndexMap) else part
        rows_.append(s.row_index + offset)
        cols.append(s.col_index)
        vals.append(s.values)
        offset += lo.shape(part)[0]
    return np.concatenate(rows_), np.concatenate(cols), np.concatenate(vals), (offset, lo.shape(parts[0])[1])


def op_dropout(tracer, inputs, attrs, where):
    if len(inputs) > 2 and inputs[2] is not None and np.any(_const(inputs[2], where, "training_mode")):
        raise NetworkError(f"{where}: dropout in training mode is not supported")
    return [_need(inputs, 0, where)]


OPERATORS: dict[str, Callable] = {
    "Identity": op_identity,
    "Dropout": op_dropout,
    "Constant": op_constant,
    "Add": op_add,
    "Sub": op_sub,
    "Sum": op_sum,
    "Neg": op_neg,
    "Mul": op_mul,
    "Div": op_div,
    "MatMul": op_matmul,
    "Gemm": op_gemm,
    "Relu": _activation("relu"),
    "Sigmoid": _activation("sigmoid"),
    "Tanh": _activation("tanh"),
    "Flatten": op_flatten,
    "Reshape": op_reshape,
    "Squeeze": op_squeeze,
    "Unsqueeze": op_unsqueeze,
    "Transpose": op_transpose,
    "Shape": op_shape,
    "Cast": op_cast,
    "Concat": op_concat,
    "Slice": op_slice,
    "Gather": op_gather,
    "Split": op_split,
    "BatchNormalization": op_batchnorm,
    "Conv": op_conv,
    "Pad": op_pad,
    "AveragePool": op_averagepool,
    "GlobalAveragePool": op_globalaveragepool,
    "MaxPool": op_maxpool,
}

_LEGACY = ("consumed_inputs",)
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Identity": (),
    "Dropout": ("ratio", "seed", "is_test", *_LEGACY),
    "Constant": ("value", "value_float", "value_int", "value_floats", "value_ints"),
    "Add": ("broadcast", *_LEGACY),
    "Sub": ("broadcast", *_LEGACY),
    "Sum": _LEGACY,
    "Neg": _LEGACY,
    "Mul": ("broadcast", *_LEGACY),
    "Div": ("broadcast", *_LEGACY),
    "MatMul": (),
    "Gemm": ("alpha", "beta", "transA", "transB", "broadcast"),
    "Relu": _LEGACY,
    "Sigmoid": _LEGACY,
    "Tanh": _LEGACY,
    "Flatten": ("axis",),
    "Reshape": ("allowzero", *_LEGACY),
    "Squeeze": ("axes",),
    "Unsqueeze": ("axes",),
    "Transpose": ("perm",),
    "Shape": ("start", "end"),
    "Cast": ("to", "saturate"),
    "Concat": ("axis",),
    "Slice": ("starts", "ends", "axes"),
    "Gather": ("axis",),
    "Split": ("axis", "split", "num_outputs"),
    "BatchNormalization": ("epsilon", "momentum", "training_mode", "spatial", "is_test", *_LEGACY),
    "Conv": ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"),
    "Pad": ("mode", "pads", "value"),
    "AveragePool": ("auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"),
    "GlobalAveragePool": (),
    "MaxPool": ("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"),
}
"""The attributes each operator understands; any other (an unknown one, or one that would change
the operator's meaning, such as the legacy broadcast ``axis`` of Add) is refused by name."""


def load_onnx(path: str | os.PathLike, dense_limit: int = DENSE_LIMIT) -> Network:
    """Load an ONNX file as a :class:`Network`; any problem is a one-line NetworkError.

    ``dense_limit``: traced values whose dense table would hold more numbers are kept
    structured (see the module docstring); 0 keeps every value structured.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise NetworkError(f"{path}: no such file")
    if os.path.isdir(path):
        raise NetworkError(f"{path}: is a directory, not an ONNX file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise NetworkError(f"{path}: cannot read: {exc.strerror}") from None
    if not data:
        raise NetworkError(f"{path}: the file is empty")
    try:
        model = onnx_proto.parse_model(data)
    except Exception:  # noqa: BLE001 - protobuf raises several types for broken files
        raise NetworkError(f"{path}: not a valid ONNX file (truncated or corrupt protobuf)") from None
    if not model.HasField("graph") or not model.graph.node:
        raise NetworkError(f"{path}: the ONNX file holds no graph")
    try:
        return _Tracer(model, path, dense_limit).run()
    except NetworkError as exc:
        raise NetworkError(f"{path}: {exc}") from None
