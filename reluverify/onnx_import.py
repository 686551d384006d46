"""ONNX import: trace an ONNX graph into a :class:`~reluverify.network.Network`.

Every tensor of the graph is traced either as a constant (a numpy array) or as a
:class:`Affine` value: an affine function of the outputs of earlier nonlinear IR
nodes (the network input, activations, products). Linear operators (MatMul, Gemm,
Add/Sub, Mul/Div by constants, Flatten, Reshape, Transpose, Conv, BatchNormalization,
Slice, Concat, ...) transform that function; a nonlinear operator (Relu, Sigmoid,
Tanh, the product of two traced tensors) closes it into an IR affine node followed by
the nonlinear node. So input normalisation (Sub/Div before the first layer) and
chains of linear operators fold into single affine layers by construction.

Anything else is refused with :class:`~reluverify.errors.NetworkError`, one line that
names the node and the problem.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

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


Value = np.ndarray | Affine


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

    def __init__(self, model, path: str) -> None:
        self.model = model
        self.path = path
        self.nodes: list[Node] = []
        self.values: dict[str, Value] = {}
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)

    # ----------------------------------------------------------- IR building
    def close(self, value: Affine, where: str) -> int:
        """Materialise ``value`` as an IR affine node over its sources; return the node index."""
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

    def fresh(self, node: Node, shape: tuple[int, ...]) -> Affine:
        """Append a nonlinear node and return the identity function of its output."""
        self.nodes.append(node)
        index = len(self.nodes) - 1
        size = node.size
        table = np.concatenate([np.zeros((1, size)), np.eye(size)], axis=0).reshape((1 + size,) + shape)
        return Affine(((index, size),), table)

    # --------------------------------------------------------------- tracing
    def run(self) -> Network:
        import onnx
        from onnx import numpy_helper

        graph = self.model.graph
        initialisers = {}
        folder = os.path.dirname(os.path.abspath(self.path)) if self.path else os.getcwd()
        for init in graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                _check_external_data(init, folder)
            try:
                array = numpy_helper.to_array(init, base_dir=folder)
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
        if ttype.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
            raise NetworkError(f"input {graph_input.name!r} has a non-float element type")
        dims = []
        for d in ttype.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1)
        if not ttype.HasField("shape"):
            raise NetworkError(f"input {graph_input.name!r} has no shape")
        input_shape = tuple(dims)
        size = math.prod(input_shape)
        if size * (size + 1) > MAX_TRACE_ELEMENTS:
            raise NetworkError(f"input {graph_input.name!r} of shape {input_shape} has {size} values: too many to trace "
                               f"(the affine maps of the trace would hold more than {MAX_TRACE_ELEMENTS} numbers)")
        self.nodes.append(InputNode(size))
        table = np.concatenate([np.zeros((1, size)), np.eye(size)], axis=0).reshape((1 + size,) + input_shape)
        self.values[graph_input.name] = Affine(((0, size),), table)

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
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
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
                    self.values[name] = value

        out_name = graph.output[0].name
        if out_name not in self.values:
            raise NetworkError(f"the graph output {out_name!r} is not produced by any node")
        output = self.values[out_name]
        if not isinstance(output, Affine):
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
    if isinstance(value, Affine):
        raise NetworkError(f"{where}: {what} must be a constant, but it depends on the network input")
    return value


def _float(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float64)


def op_identity(tracer, inputs, attrs, where):
    return [inputs[0]]


def op_constant(tracer, inputs, attrs, where):
    from onnx import numpy_helper

    if "value" in attrs:
        return [numpy_helper.to_array(attrs["value"])]
    for key in ("value_float", "value_int"):
        if key in attrs:
            return [np.array(attrs[key])]
    for key in ("value_floats", "value_ints"):
        if key in attrs:
            return [np.array(list(attrs[key]))]
    raise NetworkError(f"{where}: unsupported Constant attribute {sorted(attrs)}")


def _add(a: Value, b: Value, sign: float) -> Value:
    if not isinstance(a, Affine) and not isinstance(b, Affine):
        return a + sign * b if sign > 0 else a - b
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
    return [_add(_need(inputs, 0, where), _need(inputs, 1, where), 1.0)]


def op_sub(tracer, inputs, attrs, where):
    return [_add(_need(inputs, 0, where), _need(inputs, 1, where), -1.0)]


def op_sum(tracer, inputs, attrs, where):
    total = _need(inputs, 0, where)
    for v in inputs[1:]:
        total = _add(total, v, 1.0)
    return [total]


def _need(inputs, i, where):
    if i >= len(inputs) or inputs[i] is None:
        raise NetworkError(f"{where}: expected at least {i + 1} inputs")
    return inputs[i]


def op_neg(tracer, inputs, attrs, where):
    v = _need(inputs, 0, where)
    return [v.apply(lambda t: -t) if isinstance(v, Affine) else -v]


def op_mul(tracer, inputs, attrs, where):
    a, b = _need(inputs, 0, where), _need(inputs, 1, where)
    if isinstance(a, Affine) and isinstance(b, Affine):
        return [_product(tracer, a, b, where)]
    if isinstance(b, Affine):
        a, b = b, a
    if isinstance(a, Affine):
        c = _float(b)
        shape = np.broadcast_shapes(a.shape, c.shape)
        return [Affine(a.sources, _broadcast(a, shape).table * c)]
    return [a * b]


def op_div(tracer, inputs, attrs, where):
    a, b = _need(inputs, 0, where), _need(inputs, 1, where)
    if isinstance(b, Affine):
        raise NetworkError(f"{where}: division by a tensor that depends on the input is not supported")
    if isinstance(a, Affine):
        c = _float(b)
        if np.any(c == 0):
            raise NetworkError(f"{where}: division by zero")
        shape = np.broadcast_shapes(a.shape, c.shape)
        return [Affine(a.sources, _broadcast(a, shape).table / c)]
    return [a / b]


def _product(tracer, a: Affine, b: Affine, where: str) -> Affine:
    shape = np.broadcast_shapes(a.shape, b.shape)
    a, b = _broadcast(a, shape), _broadcast(b, shape)
    left = tracer.close(a, where)
    right = tracer.close(b, where)
    size = tracer.nodes[left].size
    return tracer.fresh(ProductNode(left, right, size), shape)


def _matmul(a: Value, b: Value, where: str) -> Value:
    if isinstance(a, Affine) and isinstance(b, Affine):
        raise NetworkError(f"{where}: the product of two input-dependent tensors is not supported")
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
        if isinstance(v, Affine):
            return v.apply(lambda t: np.swapaxes(t, -1, -2))
        return _float(v).T

    if attrs.get("transA", 0):
        a = transpose(a)
    if attrs.get("transB", 0):
        b = transpose(b)
    for v in (a, b):
        if len(v.shape if isinstance(v, Affine) else np.shape(v)) != 2:
            raise NetworkError(f"{where}: Gemm needs 2-D operands")
    out = _matmul(a, b, where)
    if alpha != 1.0:
        out = out.apply(lambda t: alpha * t) if isinstance(out, Affine) else alpha * out
    if c is not None:
        cc = c.apply(lambda t: beta * t) if isinstance(c, Affine) else beta * _float(c)
        out = _add(out, cc, 1.0)
    return [out]


def _activation(kind: str):
    def op(tracer, inputs, attrs, where):
        v = _need(inputs, 0, where)
        if not isinstance(v, Affine):
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
    return v.shape if isinstance(v, Affine) else tuple(np.shape(v))


def _reshape_value(v: Value, shape: tuple[int, ...]) -> Value:
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
    if isinstance(v, Affine):
        return [v.apply(lambda t: np.transpose(t, [0] + [p + 1 for p in perm]))]
    return [np.transpose(v, perm)]


def op_shape(tracer, inputs, attrs, where):
    shape = np.array(_shape_of(_need(inputs, 0, where)), dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return [shape[start:end]]


def op_cast(tracer, inputs, attrs, where):
    from onnx import helper

    v = _need(inputs, 0, where)
    if isinstance(v, Affine):
        return [v]
    dtype = helper.tensor_dtype_to_np_dtype(int(attrs["to"]))
    return [np.asarray(v).astype(dtype)]


def op_concat(tracer, inputs, attrs, where):
    values = [v for v in inputs if v is not None]
    axis = int(attrs["axis"])
    if not any(isinstance(v, Affine) for v in values):
        return [np.concatenate([np.asarray(v) for v in values], axis=axis)]
    rank = len(_shape_of(values[0]))
    axis = axis + rank if axis < 0 else axis
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


def _slice_value(v: Value, index: tuple) -> Value:
    if isinstance(v, Affine):
        return v.apply(lambda t: t[(slice(None),) + index])
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
    if isinstance(v, Affine):
        return [v.apply(lambda t: np.take(t, idx, axis=axis + 1))]
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
    return [_add(out, shift.reshape(bshape), 1.0)]


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


def op_conv(tracer, inputs, attrs, where):
    x = _need(inputs, 0, where)
    w = _float(_const(inputs[1], where, "the weight"))
    bias = _float(_const(inputs[2], where, "the bias")) if len(inputs) > 2 and inputs[2] is not None else None
    nd = w.ndim - 2
    shape = _shape_of(x)
    if len(shape) != nd + 2:
        raise NetworkError(f"{where}: input of rank {len(shape)} for a {nd}-D convolution")
    strides = list(attrs.get("strides", [1] * nd))
    dilations = list(attrs.get("dilations", [1] * nd))
    group = int(attrs.get("group", 1))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads_begin, pads_end = [], []
        for i in range(nd):
            size = shape[2 + i]
            out = math.ceil(size / strides[i])
            need = max(0, (out - 1) * strides[i] + (w.shape[2 + i] - 1) * dilations[i] + 1 - size)
            small, large = need // 2, need - need // 2
            pads_begin.append(small if auto_pad == "SAME_UPPER" else large)
            pads_end.append(large if auto_pad == "SAME_UPPER" else small)
        pads = pads_begin + pads_end
    elif auto_pad == "VALID":
        pads = [0] * (2 * nd)
    elif auto_pad in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * (2 * nd)))
    else:
        raise NetworkError(f"{where}: auto_pad {auto_pad!r} is not supported")
    if "kernel_shape" in attrs and list(attrs["kernel_shape"]) != list(w.shape[2:]):
        raise NetworkError(f"{where}: kernel_shape {list(attrs['kernel_shape'])} differs from the weights' {list(w.shape[2:])}")
    if len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd or min(strides + dilations, default=1) < 1 \
            or min(pads, default=0) < 0 or group < 1:
        raise NetworkError(f"{where}: bad strides, dilations, pads or group")
    if shape[1] != w.shape[1] * group:
        raise NetworkError(f"{where}: input has {shape[1]} channels, weights expect {w.shape[1] * group}")
    if isinstance(x, Affine):
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
}
"""The attributes each operator understands; any other (an unknown one, or one that would change
the operator's meaning, such as the legacy broadcast ``axis`` of Add) is refused by name."""


def load_onnx(path: str | os.PathLike) -> Network:
    """Load an ONNX file as a :class:`Network`; any problem is a one-line NetworkError."""
    import onnx

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
        model = onnx.load_from_string(data)
    except Exception:  # noqa: BLE001 - protobuf raises several types for broken files
        raise NetworkError(f"{path}: not a valid ONNX file (truncated or corrupt protobuf)") from None
    if not model.HasField("graph") or not model.graph.node:
        raise NetworkError(f"{path}: the ONNX file holds no graph")
    try:
        return _Tracer(model, path).run()
    except NetworkError as exc:
        raise NetworkError(f"{path}: {exc}") from None
