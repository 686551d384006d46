"""Traced values: constants and the two forms of an affine function, and their algebra.

Every tensor of the graph is traced either as a constant (a numpy array) or as an affine
function of the outputs of earlier nonlinear IR nodes (the network input, activations,
products). An affine function is held in one of two forms:

* :class:`Affine` -- a dense table (the constant term and one row per source value), the
  form of every small network (ACAS Xu, MNIST, the test networks);
* :class:`Linear` -- *structured*: ``sum_k W_k value[node_k] + bias`` where each ``W_k`` is a
  :mod:`reluverify.linear_ops` operator (a convolution, an index map for transposes, slices
  and padding, a composition ...), whose memory is that of its parameters.

A traced value is structured exactly when its dense table would hold more than
``dense_limit`` numbers (:data:`DENSE_LIMIT`, 4 Mi, 32 MiB: ``(1 + total source size) *
elements``); the tracer re-chooses the representation after every operator, and the
operators that could make a large table (Conv, pooling, Pad, Concat, broadcasts, a fresh
activation's identity) decide before building it. So importing never builds a dense map
much larger than the weights need, and the affine nodes of a CNN hold convolutions where
a dense matrix would be large (``load_onnx(..., dense_limit=0)`` keeps every value
structured).

Both forms answer the same questions (``shape``, ``size``, ``sources``, ``table_size``) and
take the same transformations (``scaled``, ``reshaped``, ``broadcast``, ``plus`` a constant),
and the functions below take any value -- a constant, an :class:`Affine` or a
:class:`Linear` -- so that an operator need not branch on the forms: :func:`add`,
:func:`multiply` by a constant, :func:`scale`, :func:`move` (data movement),
:func:`apply_linear` (any linear function), :func:`apply_op` (a flat
:mod:`~reluverify.linear_ops` operator) and :func:`reshape`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from reluverify import linear_ops as lo
from reluverify.errors import NetworkError

MAX_TENSOR_ELEMENTS = 1 << 25  # refuse traced tensors of more elements (33 Mi values, 256 MiB per vector)
DENSE_LIMIT = 1 << 22
"""A traced value whose dense table would hold more numbers than this is kept structured."""


def elements(shape) -> int:
    """The number of elements of a tensor of ``shape`` (1 for a scalar)."""
    return int(np.prod(shape)) if shape else 1


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

    @property
    def size(self) -> int:
        return elements(self.shape)

    def table_size(self, count: int | None = None) -> int:
        """Entries of the dense table (with ``count`` elements instead of its own)."""
        return self.table.shape[0] * max(int(self.size if count is None else count), 1)

    def apply(self, fn: Callable[[np.ndarray], np.ndarray]) -> "Affine":
        return Affine(self.sources, fn(self.table))

    def scaled(self, alpha: float) -> "Affine":
        return Affine(self.sources, alpha * self.table)

    def reshaped(self, shape: tuple[int, ...]) -> "Affine":
        return Affine(self.sources, self.table.reshape((self.table.shape[0],) + tuple(shape)))

    def broadcast(self, shape: tuple[int, ...]) -> "Affine":
        """The function broadcast to ``shape`` (numpy's rule: a lower rank is padded with leading 1s)."""
        shape = tuple(shape)
        if self.shape == shape:
            return self
        lifted = (1,) * (len(shape) - len(self.shape)) + self.shape  # not the row axis against a new one
        table = self.table.reshape((self.table.shape[0],) + lifted)
        return Affine(self.sources, np.broadcast_to(table, (self.table.shape[0],) + shape).copy())

    def plus(self, constant: np.ndarray) -> "Affine":
        """The function plus ``constant`` (which broadcasts to its shape)."""
        table = self.table.copy()
        table[0] = table[0] + constant
        return Affine(self.sources, table)

    def blocks(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The flat constant term and each source's weight matrix (elements x source size, contiguous)."""
        flat = self.table.reshape(self.table.shape[0], self.size)
        weights, off = [], 1
        for _, n in self.sources:
            weights.append(np.ascontiguousarray(flat[off : off + n].T))
            off += n
        return flat[0], weights


@dataclass(frozen=True)
class Linear:
    """A structured affine function: ``sum_k ops[k] @ value[node_k] + bias`` (flat C order).

    ``terms`` are ``(node index, node size, weight)`` with weight a dense matrix or a
    :mod:`reluverify.linear_ops` operator of shape (elements, node size); ``bias`` has the
    tensor's shape.
    """

    terms: tuple[tuple[int, int, object], ...]
    bias: np.ndarray

    @classmethod
    def of_node(cls, index: int, size: int, shape: tuple[int, ...]) -> "Linear":
        """The output of node ``index`` itself."""
        return cls(((index, size, lo.identity(size)),), np.zeros(shape))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.bias.shape)

    @property
    def size(self) -> int:
        return int(self.bias.size)

    @property
    def sources(self) -> tuple[tuple[int, int], ...]:
        return tuple((node, size) for node, size, _ in self.terms)

    def table_size(self, count: int | None = None) -> int:
        """Entries of its dense table (with ``count`` elements instead of its own)."""
        return (1 + sum(size for _, size, _ in self.terms)) * max(int(self.size if count is None else count), 1)

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

    def broadcast(self, shape: tuple[int, ...]) -> "Linear":
        if self.shape == tuple(shape):
            return self
        index = np.broadcast_to(np.arange(self.size).reshape(self.shape), shape)
        return self.map(lo.IndexMap(index.ravel(), self.size), tuple(shape), np.broadcast_to(self.bias, shape))

    def plus(self, constant: np.ndarray) -> "Linear":
        """The function plus ``constant`` (which broadcasts to its shape)."""
        return Linear(self.terms, self.bias + constant)


Value = np.ndarray | Affine | Linear


class SizeRule(Protocol):
    """What the algebra below needs of the tracer: the size rule that picks a value's form."""

    def structured(self, value: Affine | Linear, elements: int, where: str) -> bool:
        """True when an operator giving ``elements`` elements should work on the structured form
        (NetworkError when ``elements`` is too many to trace)."""


# ------------------------------------------------------------------ basics
def traced(value) -> bool:
    """True for a value that depends on the network input."""
    return isinstance(value, (Affine, Linear))


def shape_of(v: Value) -> tuple[int, ...]:
    return v.shape if traced(v) else tuple(np.shape(v))


def as_float(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float64)


def to_linear(v: Affine | Linear) -> Linear:
    """The structured form of a traced value (a dense table's blocks; selections become index maps)."""
    if isinstance(v, Linear):
        return v
    bias, weights = v.blocks()
    terms = tuple((node, n, lo.from_dense(w)) for (node, n), w in zip(v.sources, weights))
    return Linear(terms, bias.reshape(v.shape).copy())


def to_affine(v: Linear) -> Affine:
    """The dense table of a structured value (callers check that it is small)."""
    rows = [v.bias.reshape(1, -1)]
    for _, _, w in v.terms:
        rows.append(lo.dense(w).T)
    return Affine(v.sources, np.concatenate(rows, axis=0).reshape((-1,) + v.shape))


def align(a: Affine, b: Affine) -> tuple[Affine, Affine]:
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


# ------------------------------------------------------- linear maps of values
def move(v: Value, fn: Callable[[np.ndarray], np.ndarray]) -> Value:
    """Pure data movement ``fn`` (transpose, slice, take, broadcast; it keeps a leading batch axis)."""
    if isinstance(v, Affine):
        return v.apply(fn)
    if isinstance(v, Linear):
        index = fn(np.arange(v.size).reshape((1,) + v.shape))[0]
        bias = fn(v.bias[None])[0]
        return v.map(lo.IndexMap(np.asarray(index).ravel(), v.size), tuple(index.shape), bias)
    return fn(np.asarray(v)[None])[0]


def apply_linear(v: Value, fn: Callable[[np.ndarray], np.ndarray], where: str) -> Value:
    """A linear ``fn`` (acting on a leading batch axis) of any value.

    A structured value goes through the dense matrix of ``fn``, so it is accepted only on
    small tensors; prefer :func:`apply_op` with a :mod:`~reluverify.linear_ops` operator.
    """
    if isinstance(v, Affine):
        return v.apply(fn)
    if not isinstance(v, Linear):
        return fn(np.asarray(v)[None])[0]
    out_shape = tuple(np.shape(fn(np.zeros((1,) + v.shape)))[1:])
    if v.size * elements(out_shape) > lo.DENSE_LIMIT:
        raise NetworkError(f"{where}: this operator on a tensor of {v.size} values is supported only on small tensors")
    matrix = np.asarray(fn(np.eye(v.size).reshape((v.size,) + v.shape)), dtype=np.float64)
    matrix = matrix.reshape(v.size, elements(out_shape)).T
    return v.map(matrix, out_shape, np.asarray(fn(v.bias[None])[0], dtype=np.float64))


def apply_op(tracer: SizeRule, v: Affine | Linear, op, out_shape: tuple[int, ...], where: str) -> Affine | Linear:
    """A flat linear operator ``op`` on a traced value, in the form the size rule picks."""
    if tracer.structured(v, elements(out_shape), where):
        return to_linear(v).map(op, out_shape)
    rows = v.table.shape[0]
    table = lo.forward(op, v.table.reshape(rows, -1)).reshape((rows,) + tuple(out_shape))
    return Affine(v.sources, table)


def reshape(v: Value, shape: tuple[int, ...]) -> Value:
    return v.reshaped(tuple(shape)) if traced(v) else np.reshape(v, shape)


def scale(v: Value, factor: float) -> Value:
    """``factor * v`` (a constant becomes float64)."""
    return v.scaled(factor) if traced(v) else factor * as_float(v)


def multiply(tracer: SizeRule, v: Value, c: np.ndarray, where: str, divide: bool = False) -> Value:
    """``v * c`` (``v / c`` when ``divide``) for a float constant ``c``, broadcast, in the form the size rule picks.

    On the structured form a uniform ``c`` scales the operators, any other is a diagonal operator.
    """
    if not traced(v):
        return v / c if divide else v * c
    shape = np.broadcast_shapes(v.shape, c.shape)
    if not tracer.structured(v, elements(shape), where):
        table = v.broadcast(shape).table
        return Affine(v.sources, table / c if divide else table * c)
    v = to_linear(v).broadcast(shape)
    full = np.broadcast_to(1.0 / c if divide else c, shape)
    if full.size and np.all(full == full.flat[0]):
        return v.scaled(float(full.flat[0]))
    return v.map(lo.diagonal(full.ravel()), shape, v.bias * full)


def add(tracer: SizeRule, a: Value, b: Value, where: str, sign: float = 1.0) -> Value:
    """``a + b`` (``sign`` 1) or ``a - b`` (``sign`` -1) of any values, broadcast, in the form the size rule picks."""
    if not traced(a) and not traced(b):
        return a + sign * b if sign > 0 else a - b
    shape = np.broadcast_shapes(shape_of(a), shape_of(b))
    count = elements(shape)
    big = any(traced(v) and tracer.structured(v, count, where) for v in (a, b))
    structured = big or isinstance(a, Linear) or isinstance(b, Linear)
    if traced(a) and traced(b):
        if structured:
            return _add_structured(to_linear(a), to_linear(b), sign)
        a, b = align(a, b)
        a, b = a.broadcast(shape), b.broadcast(shape)
        return Affine(a.sources, a.table + sign * b.table)
    if traced(a):
        out = (to_linear(a) if structured else a).broadcast(shape)
        return out.plus(sign * as_float(b))
    out = (to_linear(b) if structured else b).broadcast(shape)
    return (out if sign > 0 else out.scaled(-1.0)).plus(as_float(a))


def _add_structured(a: Linear, b: Linear, sign: float) -> Linear:
    shape = np.broadcast_shapes(a.shape, b.shape)
    a, b = a.broadcast(shape), b.broadcast(shape)
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
