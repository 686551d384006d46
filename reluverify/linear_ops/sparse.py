"""Operators with a few nonzeros per row: :class:`IndexMap` (at most one) and :class:`Sparse`.

:class:`IndexMap` is ``out[i] = scale[i] * x[index[i]]``: reshapes, transposes, slices, gathers,
zero padding, broadcasting and diagonal scales. :class:`Sparse` is a coordinate-form matrix (max
pooling's differences). Products and sums of the two stay in this family (:func:`_sparse_product`,
:func:`_simplify_sparse`), and come back as an IndexMap whenever every row has at most one nonzero.

Invariant: a Sparse holds its entries summed, without zeros, sorted by row then column; an
IndexMap has at most one nonzero per row, and a row whose index is -1 is zero whatever its scale.
"""

from __future__ import annotations

import numpy as np

from reluverify.linear_ops.base import LinearOp, _as_batch, _readonly, _scatter_add

class IndexMap(LinearOp):
    """``out[i] = scale[i] * x[index[i]]``; ``index[i] == -1`` gives ``out[i] = 0``.

    Covers data movement (reshape is the identity, transposes are permutations, slices,
    gathers, broadcasts), zero padding and diagonal scales. ``scale`` None means all ones.
    At most one nonzero per row; one per column too when no index repeats (``injective``).
    """

    def __init__(self, index, in_size: int, scale=None) -> None:
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        in_size = int(in_size)
        if index.size and (index.min() < -1 or index.max() >= in_size):
            raise ValueError(f"IndexMap: index out of range for {in_size} inputs")
        if scale is not None:
            scale = np.asarray(scale, dtype=np.float64).reshape(-1)
            if scale.shape != index.shape:
                raise ValueError("IndexMap: scale and index differ in length")
            scale = np.where(index < 0, 0.0, scale)
            if np.all(scale == 1.0) and np.all(index >= 0):
                scale = None
        self.index = _readonly(index)
        self.in_size = in_size
        self.scale = None if scale is None else _readonly(scale)
        valid = self.index[self.index >= 0]
        self.injective = bool(np.unique(valid).size == valid.size)
        self.structure = "monomial" if self.injective else "row"
        self.is_identity = bool(
            scale is None and index.size == in_size and np.array_equal(self.index, np.arange(in_size))
        )

    def __reduce__(self):
        return (IndexMap, (np.array(self.index), self.in_size, None if self.scale is None else np.array(self.scale)))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.index.size), self.in_size)

    @property
    def parameter_count(self) -> int:
        return 0 if self.scale is None else int(self.scale.size)

    def _effective_scale(self) -> np.ndarray | None:
        if self.scale is not None:
            return self.scale
        if np.any(self.index < 0):
            return (self.index >= 0).astype(np.float64)
        return None

    def forward(self, x):
        x = _as_batch(x, self.in_size, "IndexMap.forward")
        out = x[:, np.maximum(self.index, 0)]
        scale = self._effective_scale()
        return out if scale is None else out * scale

    def backward(self, c):
        c = _as_batch(c, self.index.size, "IndexMap.backward")
        valid = self.index >= 0
        scale = self._effective_scale()
        values = c if scale is None else c * scale
        if not np.all(valid):
            values = values[:, valid]
        targets = self.index[valid]
        if self.injective:
            out = np.zeros((c.shape[0], self.in_size))
            out[:, targets] = values
            return out
        return _scatter_add(values, targets, self.in_size)

    def absolute(self):
        return self if self.scale is None else IndexMap(self.index, self.in_size, np.abs(self.scale))

    def scaled(self, alpha):
        base = np.ones(self.index.size) if self.scale is None else self.scale
        return IndexMap(self.index, self.in_size, base * float(alpha))

    def rows(self, index):
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        out = np.zeros((index.size, self.in_size))
        cols = self.index[index]
        scale = np.ones(index.size) if self.scale is None else self.scale[index]
        keep = cols >= 0
        out[np.flatnonzero(keep), cols[keep]] = scale[keep]
        return out

    def parameters(self):
        return (self.index,) if self.scale is None else (self.index, self.scale)

    def signature(self):
        return f"IndexMap{self.shape}"

    def describe(self):
        if self.is_identity:
            return "identity"
        if self.index.size == self.in_size and np.array_equal(np.sort(self.index), np.arange(self.in_size)):
            return "scale" if np.array_equal(self.index, np.arange(self.in_size)) else "permutation"
        return "index map"

    def to_sparse(self) -> "Sparse":
        valid = self.index >= 0
        values = np.ones(int(valid.sum())) if self.scale is None else self.scale[valid]
        return Sparse(np.flatnonzero(valid), self.index[valid], values, self.shape)


def identity(size: int) -> IndexMap:
    return IndexMap(np.arange(int(size)), int(size))


def diagonal(scale) -> IndexMap:
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    return IndexMap(np.arange(scale.size), scale.size, scale)


# ----------------------------------------------------------------------- Sparse
class Sparse(LinearOp):
    """A sparse matrix in coordinate form (duplicates summed, zeros dropped, sorted by row)."""

    def __init__(self, rows, cols, values, shape) -> None:
        out_size, in_size = (int(shape[0]), int(shape[1]))
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        cols = np.asarray(cols, dtype=np.int64).reshape(-1)
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if not rows.shape == cols.shape == values.shape:
            raise ValueError("Sparse: rows, cols and values differ in length")
        if rows.size and (rows.min() < 0 or rows.max() >= out_size or cols.min() < 0 or cols.max() >= in_size):
            raise ValueError("Sparse: an entry lies outside the shape")
        key = rows * in_size + cols
        unique, inverse = np.unique(key, return_inverse=True)
        summed = np.bincount(inverse.reshape(-1), weights=values, minlength=unique.size) if key.size else values
        keep = summed != 0.0
        unique, summed = unique[keep], summed[keep]
        self.row_index = _readonly(unique // max(in_size, 1))
        self.col_index = _readonly(unique % max(in_size, 1))
        self.values = _readonly(summed)
        self._shape = (out_size, in_size)
        per_row = np.bincount(self.row_index, minlength=out_size) if out_size else np.zeros(0)
        per_col = np.bincount(self.col_index, minlength=in_size) if in_size else np.zeros(0)
        row_ok = per_row.size == 0 or per_row.max() <= 1
        col_ok = per_col.size == 0 or per_col.max() <= 1
        self.structure = "monomial" if row_ok and col_ok else "row" if row_ok else "col" if col_ok else "general"

    def __reduce__(self):
        return (Sparse, (np.array(self.row_index), np.array(self.col_index), np.array(self.values), self._shape))

    @property
    def shape(self):
        return self._shape

    @property
    def parameter_count(self) -> int:
        return int(self.values.size)

    def forward(self, x):
        x = _as_batch(x, self._shape[1], "Sparse.forward")
        return _scatter_add(x[:, self.col_index] * self.values, self.row_index, self._shape[0])

    def backward(self, c):
        c = _as_batch(c, self._shape[0], "Sparse.backward")
        return _scatter_add(c[:, self.row_index] * self.values, self.col_index, self._shape[1])

    def absolute(self):
        return Sparse(self.row_index, self.col_index, np.abs(self.values), self._shape)

    def scaled(self, alpha):
        return Sparse(self.row_index, self.col_index, self.values * float(alpha), self._shape)

    def rows(self, index):
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        out = np.zeros((index.size, self._shape[1]))
        starts = np.searchsorted(self.row_index, index, side="left")
        counts = np.searchsorted(self.row_index, index, side="right") - starts
        which = np.repeat(np.arange(index.size), counts)
        pos = starts[which] + np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        out[which, self.col_index[pos]] = self.values[pos]
        return out

    def parameters(self):
        return (self.row_index, self.col_index, self.values)

    def describe(self):
        return f"sparse {self.values.size} nonzeros"


def _coo(w) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = w.to_sparse() if isinstance(w, IndexMap) else w
    return s.row_index, s.col_index, s.values


def _sparse_product(a, b) -> LinearOp:
    """``a @ b`` for IndexMap/Sparse operands, as an IndexMap when it has one nonzero per row."""
    if isinstance(a, IndexMap) and isinstance(b, IndexMap):
        inner = a.index
        valid = inner >= 0
        index = np.full(inner.size, -1, dtype=np.int64)
        index[valid] = b.index[inner[valid]]
        scale = np.ones(inner.size) if a.scale is None else np.array(a.scale)
        if b.scale is not None:
            scale[valid] = scale[valid] * b.scale[inner[valid]]
        return IndexMap(index, b.in_size, None if a.scale is None and b.scale is None else scale)
    ra, ca, va = _coo(a)
    rb, cb, vb = _coo(b)  # sorted by row
    inner_size = a.shape[1]
    starts = np.searchsorted(rb, np.arange(inner_size), side="left")
    counts = np.searchsorted(rb, np.arange(inner_size), side="right") - starts
    per = counts[ca]
    total = int(per.sum())
    rep = np.repeat(np.arange(ca.size), per)
    offset = np.arange(total) - np.repeat(np.cumsum(per) - per, per)
    pos = starts[ca][rep] + offset
    result = Sparse(ra[rep], cb[pos], va[rep] * vb[pos], (a.shape[0], b.shape[1]))
    return _simplify_sparse(result)


def _simplify_sparse(s: Sparse) -> LinearOp:
    if s.structure in ("row", "monomial"):
        index = np.full(s.shape[0], -1, dtype=np.int64)
        scale = np.zeros(s.shape[0])
        index[s.row_index] = s.col_index
        scale[s.row_index] = s.values
        return IndexMap(index, s.shape[1], scale)
    return s


def from_dense(matrix: np.ndarray):
    """An IndexMap when every row of ``matrix`` has at most one nonzero (a selection or scale), else the matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    nonzero = matrix != 0
    per_row = nonzero.sum(axis=1)
    if matrix.size == 0 or per_row.max(initial=0) > 1:
        return matrix
    index = np.where(per_row > 0, nonzero.argmax(axis=1), -1)
    scale = np.where(per_row > 0, matrix[np.arange(matrix.shape[0]), np.maximum(index, 0)], 0.0)
    return IndexMap(index, matrix.shape[1], scale)
