"""Building weights of either kind: :func:`compose`, :func:`add`, :func:`vstack`, :func:`blocks`, ...

Each function returns the simplest exact form of its result: a dense matrix when the operands
are dense and the result is small (at most ``limit`` entries, :data:`FOLD_LIMIT` when None: read at
each call, so a value patched here is the one used),
merged index maps and sparse factors, a per-channel scale folded into a convolution's kernel,
and only otherwise a :class:`~.composite.Composite`, :class:`~.composite.Sum` or
:class:`~.blockwise.Blocks`.

Invariant: the result is exactly the matrix product, sum or stack of the operands (up to the
float64 rounding of the products it multiplies out); dense operands of dense results take the
plain ndarray path.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from reluverify.linear_ops.blockwise import BlockDiagonal, Blocks, Repeat
from reluverify.linear_ops.composite import Composite, Sum
from reluverify.linear_ops.convolution import Conv, ConvTranspose
from reluverify.linear_ops.dispatch import backward, dense, forward, matrix_size, shape
from reluverify.linear_ops.sparse import IndexMap, Sparse, _coo, _simplify_sparse, _sparse_product, identity

FOLD_LIMIT = 1 << 22
""":func:`compose` multiplies out a product (dense result) of at most this many entries (32 MiB)."""


def _channel_constant(scale: np.ndarray, channels: int) -> np.ndarray | None:
    """The per-channel values when ``scale`` (channels x spatial, flattened) is constant along space."""
    if scale.size % channels:
        return None
    grid = scale.reshape(channels, -1)
    if np.all(grid == grid[:, :1]):
        return grid[:, 0]
    return None


def _is_diagonal(w) -> bool:
    return isinstance(w, IndexMap) and w.index.size == w.in_size and np.array_equal(w.index, np.arange(w.in_size))


def _compose_pair(a, b, limit: int):
    """``a o b`` when it has a simple exact form (a single operator or dense matrix); else None."""
    if isinstance(b, IndexMap) and b.is_identity:
        return a
    if isinstance(a, IndexMap) and a.is_identity:
        return b
    (ao, ai), (bo, bi) = shape(a), shape(b)
    product = ao * bi
    held = max(a.size if isinstance(a, np.ndarray) else 0, b.size if isinstance(b, np.ndarray) else 0)
    small = product <= limit or product <= held  # not larger than a dense factor
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a @ b if small else None
    if isinstance(a, (IndexMap, Sparse)) and isinstance(b, (IndexMap, Sparse)):
        return _sparse_product(a, b)
    if isinstance(a, Conv) and _is_diagonal(b):
        per_channel = _channel_constant(np.ones(b.in_size) if b.scale is None else b.scale, a.in_shape[0])
        if per_channel is not None:
            return a.channel_scaled(in_scale=per_channel)
    if _is_diagonal(a) and isinstance(b, Conv):
        per_channel = _channel_constant(np.ones(a.in_size) if a.scale is None else a.scale, b.out_shape[0])
        if per_channel is not None:
            return b.channel_scaled(out_scale=per_channel)
    if isinstance(a, ConvTranspose) and _is_diagonal(b):  # its input channels are its convolution's outputs
        per_channel = _channel_constant(np.ones(b.in_size) if b.scale is None else b.scale, a.in_shape[0])
        if per_channel is not None:
            return ConvTranspose(a.conv.channel_scaled(out_scale=per_channel))
    if _is_diagonal(a) and isinstance(b, ConvTranspose):
        per_channel = _channel_constant(np.ones(a.in_size) if a.scale is None else a.scale, b.out_shape[0])
        if per_channel is not None:
            return ConvTranspose(b.conv.channel_scaled(in_scale=per_channel))
    if isinstance(a, np.ndarray) and small:
        return backward(b, a)  # a @ B
    if isinstance(b, np.ndarray) and small:
        return forward(a, b.T).T  # A @ b
    return None


def compose(a, b, limit: int | None = None):
    """``a o b`` (``a`` applied after ``b``): the matrix ``a @ b``.

    Two dense matrices are multiplied when the product has no more entries than the
    larger factor or at most ``limit``; index maps and sparse factors merge; a diagonal
    scale constant per channel folds into the kernel of a convolution or a transposed one; an
    identity disappears.
    Otherwise a :class:`Composite`, multiplied out to a dense matrix (when it has at most
    ``limit`` entries) if its exact ``absolute()`` would not be structured.
    """
    limit = FOLD_LIMIT if limit is None else limit
    if shape(a)[1] != shape(b)[0]:
        raise ValueError(f"cannot compose {shape(a)} after {shape(b)}")
    direct = _compose_pair(a, b, limit)
    if direct is not None:
        return direct
    ops = list(b.ops if isinstance(b, Composite) else [b]) + list(a.ops if isinstance(a, Composite) else [a])
    merged = [ops[0]]
    for op in ops[1:]:
        pair = _compose_pair(op, merged[-1], limit)
        if pair is not None:
            merged[-1] = pair
        else:
            merged.append(op)
    if len(merged) == 1:
        return merged[0]
    result = Composite(merged)
    if not result.exact_absolute and matrix_size(result) <= limit:
        return result.dense()
    return result


def add(a, b, limit: int | None = None):
    """``a + b`` for two weights of one shape."""
    limit = FOLD_LIMIT if limit is None else limit
    if shape(a) != shape(b):
        raise ValueError(f"cannot add weights of shapes {shape(a)} and {shape(b)}")
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a + b
    if isinstance(a, Conv) and isinstance(b, Conv) and (
        a.in_shape, a.kernel.shape, a.strides, a.pads, a.dilations, a.groups
    ) == (b.in_shape, b.kernel.shape, b.strides, b.pads, b.dilations, b.groups):
        return a.with_kernel(a.kernel + b.kernel)
    if isinstance(a, (IndexMap, Sparse)) and isinstance(b, (IndexMap, Sparse)):
        ra, ca, va = _coo(a)
        rb, cb, vb = _coo(b)
        return _simplify_sparse(Sparse(np.r_[ra, rb], np.r_[ca, cb], np.r_[va, vb], shape(a)))
    if matrix_size(a) <= limit:
        return dense(a) + dense(b)
    return Sum([a, b])


def vstack(weights: Sequence, limit: int | None = None):
    """Rows of the weights one after another (all with the same number of columns)."""
    limit = FOLD_LIMIT if limit is None else limit
    weights = list(weights)
    if len(weights) == 1:
        return weights[0]
    if all(isinstance(w, np.ndarray) for w in weights):
        return np.vstack(weights)
    total = sum(shape(w)[0] for w in weights) * shape(weights[0])[1]
    if total <= limit and all(isinstance(w, np.ndarray) or matrix_size(w) <= limit for w in weights):
        return np.vstack([dense(w) for w in weights])
    return Blocks([shape(w)[0] for w in weights], [shape(weights[0])[1]], {(k, 0): w for k, w in enumerate(weights)})


def block_diagonal(weights: Sequence):
    """``diag(w_1, ..., w_k)``: dense when every block is, else a :class:`BlockDiagonal`."""
    weights = list(weights)
    if all(isinstance(w, np.ndarray) for w in weights):
        rows_ = sum(w.shape[0] for w in weights)
        cols = sum(w.shape[1] for w in weights)
        out = np.zeros((rows_, cols))
        r = c0 = 0
        for w in weights:
            out[r : r + w.shape[0], c0 : c0 + w.shape[1]] = w
            r += w.shape[0]
            c0 += w.shape[1]
        return out
    return BlockDiagonal(weights)


def blocks(row_sizes: Sequence[int], col_sizes: Sequence[int], grid: dict, limit: int | None = None):
    """A grid of blocks: a dense matrix when all blocks are dense and it is at most ``limit`` entries."""
    limit = FOLD_LIMIT if limit is None else limit
    total = sum(row_sizes) * sum(col_sizes)
    if all(isinstance(w, np.ndarray) for w in grid.values()) and total <= max(limit, 1):
        out = np.zeros((sum(row_sizes), sum(col_sizes)))
        rs, cs = np.cumsum((0,) + tuple(row_sizes)), np.cumsum((0,) + tuple(col_sizes))
        for (i, j), w in grid.items():
            out[rs[i] : rs[i + 1], cs[j] : cs[j + 1]] = w
        return out
    return Blocks(row_sizes, col_sizes, grid)


def eye(size: int, limit: int | None = None):
    """The identity: ``np.eye`` when small, an IndexMap otherwise."""
    limit = FOLD_LIMIT if limit is None else limit
    return np.eye(size) if size * size <= limit else identity(size)


def iter_ops(w) -> Iterable:
    """``w`` and the operators inside it (for reporting)."""
    yield w
    if isinstance(w, Composite):
        for o in w.ops:
            yield from iter_ops(o)
    elif isinstance(w, Blocks):
        for o in w.blocks.values():
            yield from iter_ops(o)
    elif isinstance(w, Sum):
        for o in w.terms:
            yield from iter_ops(o)
    elif isinstance(w, Repeat):
        yield from iter_ops(w.op)
