"""The tracer: reads an ONNX file and walks its graph once, node by node, into a Network.

:func:`load_onnx` checks the file, decodes the initializers (an external data file must lie
inside the model's folder), traces the graph inputs (those that are not initializers, in graph order)
as consecutive slices of one :class:`~reluverify.network.InputNode` -- each input tensor is the
selection of its own elements of the flat input vector, with its own shape, so the one input of a
single-input graph is the identity of the node -- takes the constant tensors that
:mod:`~reluverify.onnx_import.folding` evaluates (the graph's shape and index arithmetic), then runs
every other node through the operator that :mod:`~reluverify.onnx_import.registry` holds for its
type, and closes the graph output into the last affine node (the input of a final Softmax or
LogSoftmax instead, where the caller lets :mod:`~reluverify.onnx_import.final_softmax` drop it);
several graph outputs close into one affine node of their flat values concatenated in graph order.
So the network's input and output vectors number the tensors' elements as VNN-LIB's ``X_i`` and
``Y_j`` do. :class:`Tracer` is what operators
receive: it appends IR nodes (:meth:`Tracer.close` an affine function into an
:class:`~reluverify.network.AffineNode`, :meth:`Tracer.fresh` a nonlinear node) and applies the
size rule that picks a value's form (:meth:`Tracer.normalise`, :meth:`Tracer.structured`). Every problem is one
:class:`~reluverify.errors.NetworkError` line naming the node.
"""

from __future__ import annotations

import math
import os

import numpy as np

from reluverify import linear_ops as lo
from reluverify import onnx_proto
from reluverify.errors import NetworkError
from reluverify.network import AffineNode, InputNode, Network, Node, file_sha256
from reluverify.onnx_import import final_softmax, folding
from reluverify.onnx_import.registry import lookup
from reluverify.onnx_import.shapes import op_concat
from reluverify.onnx_import.unsupported import check_supported
from reluverify.onnx_import.values import (
    DENSE_LIMIT,
    MAX_TENSOR_ELEMENTS,
    Affine,
    Linear,
    Value,
    elements,
    reshape,
    shape_of,
    to_affine,
    to_linear,
    traced,
)
from reluverify.user_files import read_bytes

MAX_ONNX_BYTES = 2 << 30  # protobuf's limit on one message
MAX_TRACE_ELEMENTS = 400_000_000  # refuse traces whose coefficient arrays would exceed ~3 GB


class Tracer:
    """Walks the ONNX graph once, building IR nodes; one instance per import."""

    def __init__(self, model, path: str, dense_limit: int = DENSE_LIMIT, drop_final_softmax: bool = False) -> None:
        self.model = model
        self.path = path
        self.limit = int(dense_limit)
        self.drop_final_softmax = bool(drop_final_softmax)
        self.nodes: list[Node] = []
        self.values: dict[str, Value] = {}
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)

    # ----------------------------------------------------------- IR building
    def close(self, value: Affine | Linear, where: str) -> int:
        """Materialise ``value`` as an IR affine node over its sources; return the node index."""
        if isinstance(value, Linear):
            bias = np.array(value.bias, dtype=np.float64).reshape(-1)
            weights = [w for _, _, w in value.terms]
        else:
            bias, weights = value.blocks()
            bias = bias.copy()
        for w in weights:
            if not lo.finite(w):
                raise NetworkError(f"{where}: the folded weights contain NaN or infinity")
        if not np.all(np.isfinite(bias)):
            raise NetworkError(f"{where}: the folded bias contains NaN or infinity")
        weights = tuple(np.ascontiguousarray(w) if isinstance(w, np.ndarray) else w for w in weights)
        self.nodes.append(AffineNode(tuple(node for node, _ in value.sources), weights, bias))
        return len(self.nodes) - 1

    def fresh(self, node: Node, shape: tuple[int, ...]) -> Affine | Linear:
        """Append a nonlinear node and return the identity function of its output."""
        self.nodes.append(node)
        return self.identity(len(self.nodes) - 1, node.size, shape)

    def identity(self, index: int, size: int, shape: tuple[int, ...]) -> Affine | Linear:
        """The value of node ``index`` itself: a dense identity table when small, else structured."""
        if (1 + size) * size > self.limit:
            return Linear.of_node(index, size, shape)
        table = np.concatenate([np.zeros((1, size)), np.eye(size)], axis=0).reshape((1 + size,) + shape)
        return Affine(((index, size),), table)

    def normalise(self, value: Value, where: str) -> Value:
        """The representation rule: structured exactly when the dense table would exceed the limit."""
        if isinstance(value, Affine):
            if value.table.size > self.limit:
                return to_linear(value)
        elif isinstance(value, Linear):
            if value.size > MAX_TENSOR_ELEMENTS:
                raise NetworkError(f"{where}: the traced tensor is too large ({value.size} elements)")
            if value.table_size() <= self.limit:
                return to_affine(value)
        return value

    def structured(self, value: Affine | Linear, elements: int, where: str) -> bool:
        """True when an operator giving ``elements`` elements should work on the structured form."""
        if elements > MAX_TENSOR_ELEMENTS:
            raise NetworkError(f"{where}: the traced tensor would be too large ({elements} elements)")
        return isinstance(value, Linear) or value.table_size(elements) > self.limit

    def input_part(self, offset: int, shape: tuple[int, ...], total: int) -> Affine | Linear:
        """The value of the input tensor of ``shape`` whose flat values are elements ``offset ...`` of the
        input node (of ``total`` values): a dense selection table when small, else a structured index map."""
        size = math.prod(shape)
        if offset == 0 and size == total:
            return self.identity(0, total, shape)
        if (1 + total) * size > self.limit:
            return Linear(((0, total, lo.IndexMap(np.arange(offset, offset + size), total)),), np.zeros(shape))
        table = np.zeros((1 + total, size))
        table[1 + offset + np.arange(size), np.arange(size)] = 1.0
        return Affine(((0, total),), table.reshape((1 + total,) + shape))

    # --------------------------------------------------------------- tracing
    def run(self) -> Network:
        graph = self.model.graph
        initialisers = _initialisers(graph, self.path)
        self.values.update(initialisers)
        inputs = _graph_inputs(graph, initialisers)
        if not graph.output:
            raise NetworkError("the graph declares no output tensor")
        total = sum(math.prod(shape) for _, shape in inputs)
        if total > MAX_TENSOR_ELEMENTS:
            raise NetworkError(f"the {len(inputs)} inputs hold {total} values: too many to trace "
                               f"(at most {MAX_TENSOR_ELEMENTS})")
        self.nodes.append(InputNode(total))
        offset = 0
        for name, shape in inputs:  # each input tensor is its slice of the one input vector
            self.values[name] = self.input_part(offset, shape, total)
            offset += math.prod(shape)
        constants = folding.fold(self.model, initialisers, dict(inputs), self.path)
        self.values.update(constants.values)

        final = final_softmax.candidate(graph)
        for position, node in enumerate(graph.node):
            if position != final and position not in constants.skipped:
                try:
                    self.trace_node(node, _where(node, position))
                except NetworkError:  # an unsupported operator: this one and every later one named at once
                    check_supported(graph.node, _where, skip={final, *constants.skipped}, start=position)
                    raise

        out_names = [output.name for output in graph.output]
        dropped = None
        if final is not None:
            node = graph.node[final]
            dropped = final_softmax.logits(self, node, _where(node, final), self.drop_final_softmax)
            if dropped is None:  # kept: traced like any other Softmax
                self.trace_node(node, _where(node, final))
            else:
                out_names[0] = dropped
        outputs = [self._output(name) for name in out_names]
        if len(outputs) == 1:
            output = outputs[0]
            if not traced(output):
                raise NetworkError(f"the graph output {out_names[0]!r} does not depend on the input")
            self.close(output, f"output {out_names[0]!r}")
        else:
            output = self._concatenated(outputs, out_names)
        # nodes that the output does not depend on are harmless; keep the graph as traced.
        several_in, several_out = len(inputs) > 1, len(outputs) > 1
        return Network(
            tuple(self.nodes),
            input_shape=(total,) if several_in else inputs[0][1],
            output_shape=(output.size,) if several_out else output.shape,
            input_name=", ".join(name for name, _ in inputs),
            output_name=", ".join(out_names),
            source_path=os.path.abspath(self.path) if self.path else None,
            source_sha256=file_sha256(self.path) if self.path else None,
            final_softmax=None if dropped is None else graph.node[final].op_type,
            input_names=tuple(name for name, _ in inputs),
            input_shapes=tuple(shape for _, shape in inputs),
            output_names=tuple(out_names),
            output_shapes=tuple(shape_of(value) for value in outputs),
        )

    def _output(self, name: str) -> Value:
        if name not in self.values:
            raise NetworkError(f"the graph output {name!r} is not produced by any node")
        return self.values[name]

    def _concatenated(self, outputs: list[Value], names: list[str]) -> Affine | Linear:
        """Close several graph outputs into one affine node: their flat values concatenated in order (an
        output that does not depend on the input is part of the bias; at least one must depend on it)."""
        where = "the graph outputs " + ", ".join(repr(name) for name in names)
        if not any(traced(value) for value in outputs):
            raise NetworkError(f"none of {where} depends on the input")
        flat = [reshape(value, (elements(shape_of(value)),)) for value in outputs]
        output = self.normalise(op_concat(self, flat, {"axis": 0}, where)[0], where)
        self.close(output, where)
        return output

    def trace_node(self, node, where: str) -> None:
        """Run one graph node through its registered operator and store its outputs."""
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
        entry = lookup(node.op_type, (a.name for a in node.attribute), where)
        try:
            attrs = {a.name: onnx_proto.attribute_value(a) for a in node.attribute}
            attrs["_outputs"] = len(node.output)
            outputs = entry.function(self, inputs, attrs, where)
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


def _initialisers(graph, path: str) -> dict[str, np.ndarray]:
    """The graph's initializers as arrays (finite where they are floats)."""
    initialisers = {}
    folder = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
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
    return initialisers


def _graph_inputs(graph, initialisers: dict) -> list[tuple[str, tuple[int, ...]]]:
    """The graph inputs that are not initializers, in graph order, each with its static shape.

    A free leading axis (a symbolic or unknown batch dimension) is read as 1, a batch of one; a free
    dimension on any other axis is refused, as is a non-float element type.
    """
    real_inputs = [i for i in graph.input if i.name not in initialisers]
    if not real_inputs:
        raise NetworkError("the network has no input tensor (every graph input is an initializer)")
    names = [i.name for i in real_inputs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise NetworkError(f"the graph declares the input {repeated[0]!r} more than once")
    types = onnx_proto.schema().TensorProto
    inputs = []
    for graph_input in real_inputs:
        ttype = graph_input.type.tensor_type
        if ttype.elem_type not in (types.FLOAT, types.DOUBLE, types.FLOAT16):
            raise NetworkError(f"input {graph_input.name!r} has a non-float element type")
        if not ttype.HasField("shape"):
            raise NetworkError(f"input {graph_input.name!r} has no shape")
        dims = []
        for axis, d in enumerate(ttype.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            elif axis == 0:
                dims.append(1)  # a free batch axis: one point at a time
            else:
                shown = ", ".join(str(e.dim_value) if e.HasField("dim_value") else repr(e.dim_param or "?")
                                  for e in ttype.shape.dim)
                free = (repr(d.dim_param) if d.dim_param else
                        str(d.dim_value) if d.HasField("dim_value") else "unknown")
                raise NetworkError(f"input {graph_input.name!r} of shape ({shown}) has a dynamic or unknown dimension "
                                   f"({free}) on axis {axis}: only the leading (batch) axis may be free; export the "
                                   "model with a fixed input shape")
        shape = tuple(dims)
        size = math.prod(shape)
        if size > MAX_TENSOR_ELEMENTS:
            raise NetworkError(f"input {graph_input.name!r} of shape {shape} has {size} values: too many to trace "
                               f"(at most {MAX_TENSOR_ELEMENTS})")
        inputs.append((graph_input.name, shape))
    return inputs


def _where(node, position: int) -> str:
    """How errors name a node: by its name, else by its position."""
    return f"node {node.name!r} ({node.op_type})" if node.name else f"node #{position} ({node.op_type})"


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


def load_onnx(path: str | os.PathLike, dense_limit: int = DENSE_LIMIT, drop_final_softmax: bool = False) -> Network:
    """Load an ONNX file as a :class:`Network`; any problem is a one-line NetworkError.

    ``dense_limit``: traced values whose dense table would hold more numbers are kept
    structured (see :mod:`reluverify.onnx_import.values`); 0 keeps every value structured.
    ``drop_final_softmax``: a last Softmax or LogSoftmax over the class axis is left out and
    recorded in ``Network.final_softmax`` (the network is then the file's logits; see
    :mod:`reluverify.onnx_import.final_softmax`); without it such a file is refused with one line.
    """
    path = os.fspath(path)
    data = read_bytes(path, MAX_ONNX_BYTES, NetworkError, "an ONNX file")  # a device or FIFO is refused
    if not data:
        raise NetworkError(f"{path}: the file is empty")
    try:
        model = onnx_proto.parse_model(data)
    except Exception:  # noqa: BLE001 - protobuf raises several types for broken files
        raise NetworkError(f"{path}: not a valid ONNX file (truncated or corrupt protobuf)") from None
    if not model.HasField("graph") or not model.graph.node:
        raise NetworkError(f"{path}: the ONNX file holds no graph")
    try:
        return Tracer(model, path, dense_limit, drop_final_softmax).run()
    except NetworkError as exc:
        raise NetworkError(f"{path}: {exc}") from None
