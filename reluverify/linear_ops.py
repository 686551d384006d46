"""Structured linear operators: weights of the IR whose memory is that of their parameters.

A *weight* of an :class:`~reluverify.network.AffineNode` (and of ``ReluChain.weights``) is
either a dense 2-D ``np.ndarray`` of shape (out, in) or one of the operators below. Every
value is a flat C-order vector, as everywhere in the IR. An operator ``W`` answers:

* ``shape`` -- ``(out, in)``;
* ``forward(x)`` -- ``x @ W.T`` for ``x`` of shape (N, in);
* ``backward(c)`` -- ``c @ W`` for ``c`` of shape (N, out) (a convolution's transpose);
* ``absolute()`` -- the operator with entries ``|W|``, exactly (interval arithmetic and the
  z3 encoding read it; a composition that cannot give it structurally folds to dense);
* ``rows(index)`` -- the dense rows ``W[index]``;
* ``dense()`` -- the whole matrix (refused above :data:`DENSE_LIMIT` entries);
* ``nbytes`` -- the memory it holds;
* ``scaled(alpha)``, ``parameters()``, ``signature()``, ``parameter_count``, ``finite()``,
  ``describe()`` -- helpers for the IR (hashing, reporting, checks).

Operators are immutable (their arrays are read-only), picklable and hold float64 parameters.
The module-level functions (:func:`forward`, :func:`backward`, :func:`absolute`, :func:`rows`,
:func:`dense`, :func:`shape`, :func:`compose`, :func:`matrix_size`, ...) accept both kinds and
keep the ndarray path exactly what it was (``x @ w.T``, ``c @ w``, ``np.abs(w)``).

Operators: :class:`Conv` (1-D and 2-D cross-correlation: strides, asymmetric pads, dilations,
groups; average pooling is a Conv with a fixed kernel), :class:`IndexMap` (``out[i] = s_i *
x[index[i]]``: reshapes, transposes, slices, gathers, zero padding, broadcasting and diagonal
scales), :class:`Sparse` (a few nonzeros per row, as max pooling's differences),
:class:`Blocks` (a grid of operators: concatenation, :class:`BlockDiagonal` copies),
:class:`Composite` (a sequence) and :class:`Sum`.

IR level only: nothing here imports from ``reluverify.solver``.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from reluverify.errors import NetworkError

FOLD_LIMIT = 1 << 22
""":func:`compose` multiplies out a product (dense result) of at most this many entries (32 MiB)."""
DENSE_LIMIT = 1 << 26
""":func:`dense` refuses to build a matrix of more entries than this (512 MiB of float64)."""
_WORK = 1 << 22
"""Working-set target (entries) of chunked computations: im2col blocks, unit-vector batches."""



def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


def _as_batch(x: np.ndarray, width: int, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"{what}: expected an array of shape (N, {width}), got {x.shape}")
    return x


def _scatter_add(values: np.ndarray, targets: np.ndarray, size: int) -> np.ndarray:
    """``out[:, t] += values[:, k]`` for every ``k`` with ``targets[k] == t`` (N, size)."""
    out = np.zeros((values.shape[0], size))
    if targets.size == 0:
        return out
    order = np.argsort(targets, kind="stable")
    sorted_targets = targets[order]
    starts = np.flatnonzero(np.r_[True, sorted_targets[1:] != sorted_targets[:-1]])
    out[:, sorted_targets[starts]] = np.add.reduceat(values[:, order], starts, axis=1)
    return out


class LinearOp:
    """Base class of the structured operators (see the module docstring for the protocol)."""

    # "monomial": at most one nonzero per row and per column; "row": per row; "col": per column
    structure = "general"

    @property
    def shape(self) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        return sum(int(p.nbytes) for p in self.parameters())

    @property
    def parameter_count(self) -> int:
        return 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, c: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def absolute(self) -> "np.ndarray | LinearOp":
        raise NotImplementedError

    def scaled(self, alpha: float) -> "np.ndarray | LinearOp":
        raise NotImplementedError

    def parameters(self) -> tuple[np.ndarray, ...]:
        """The arrays that define the operator (with :meth:`signature`: what hashing reads)."""
        raise NotImplementedError

    def signature(self) -> str:
        """The operator's kind and geometry (integers), for hashing and equality of structure."""
        return f"{type(self).__name__}{self.shape}"

    def finite(self) -> bool:
        return all(bool(np.all(np.isfinite(p))) for p in self.parameters() if p.dtype.kind == "f")

    def describe(self) -> str:
        return type(self).__name__.lower()

    def rows(self, index) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        out_size, in_size = self.shape
        if index.size and (index.min() < -out_size or index.max() >= out_size):
            raise IndexError(f"row index out of range for an operator with {out_size} rows")
        index = np.where(index < 0, index + out_size, index)
        result = np.empty((index.size, in_size))
        step = max(1, _WORK // max(1, out_size + in_size))
        for start in range(0, index.size, step):
            part = index[start : start + step]
            unit = np.zeros((part.size, out_size))
            unit[np.arange(part.size), part] = 1.0
            result[start : start + part.size] = self.backward(unit)
        return result

    def dense(self, limit: int | None = None) -> np.ndarray:
        out_size, in_size = self.shape
        _check_dense_size(out_size, in_size, self.describe(), limit)
        return self.rows(np.arange(out_size))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.shape[0]}x{self.shape[1]} {self.describe()}>"


def _check_dense_size(out_size: int, in_size: int, what: str, limit: int | None = None) -> None:
    limit = DENSE_LIMIT if limit is None else limit
    if out_size * in_size > limit:
        raise NetworkError(
            f"the {what} operator ({out_size} x {in_size}) is too large to use as a dense matrix "
            f"({out_size * in_size} entries, the limit is {limit}); this step needs the structured operator"
        )


# --------------------------------------------------------------------- IndexMap
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


# ------------------------------------------------------------------------- Conv
class Conv(LinearOp):
    """Cross-correlation of an input of shape (C, H, W) or (C, L) with ``kernel`` (M, C/groups, *k).

    ``pads`` is ONNX's ``[begin..., end...]`` (zero padding); no bias (biases stay in the
    affine node). The output has shape (M, *out_spatial), flattened in C order.
    """

    def __init__(self, kernel, in_shape, strides=None, pads=None, dilations=None, groups: int = 1) -> None:
        kernel = np.asarray(kernel, dtype=np.float64)
        nd = kernel.ndim - 2
        if nd not in (1, 2):
            raise NetworkError(f"only 1-D and 2-D convolutions are supported, not {nd}-D")
        in_shape = tuple(int(d) for d in in_shape)
        strides = [1] * nd if strides is None else [int(s) for s in strides]
        dilations = [1] * nd if dilations is None else [int(d) for d in dilations]
        pads = [0] * (2 * nd) if pads is None else [int(p) for p in pads]
        groups = int(groups)
        if len(in_shape) != nd + 1 or len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd:
            raise NetworkError("convolution: input shape, strides, dilations and pads do not match the kernel's rank")
        if min(strides + dilations) < 1 or min(pads) < 0 or groups < 1:
            raise NetworkError("convolution: strides and dilations must be positive, pads non-negative")
        m, cg = kernel.shape[:2]
        if m % groups or in_shape[0] != cg * groups:
            raise NetworkError(
                f"convolution: {in_shape[0]} input channels and {m} output channels do not fit "
                f"{groups} groups of a kernel with {cg} input channels"
            )
        out_spatial = []
        for i in range(nd):
            eff = (kernel.shape[2 + i] - 1) * dilations[i] + 1
            span = in_shape[1 + i] + pads[i] + pads[i + nd] - eff
            if span < 0:
                raise NetworkError("convolution: the kernel is larger than the padded input")
            out_spatial.append(span // strides[i] + 1)
        self.kernel = _readonly(kernel)
        self.in_shape = in_shape
        self.strides = tuple(strides)
        self.pads = tuple(pads)
        self.dilations = tuple(dilations)
        self.groups = groups
        self.nd = nd
        self.out_shape = (m,) + tuple(out_spatial)
        # 2-D view of the geometry (a 1-D convolution has H = 1)
        if nd == 1:
            self._k2 = kernel.reshape(m, cg, 1, kernel.shape[2])
            self._in2 = (in_shape[0], 1, in_shape[1])
            self._s2, self._d2 = (1, strides[0]), (1, dilations[0])
            self._p2 = (0, 0, pads[0], pads[1])  # top, bottom, left, right
            self._out2 = (m, 1, out_spatial[0])
        else:
            self._k2 = self.kernel
            self._in2 = in_shape
            self._s2, self._d2 = tuple(strides), tuple(dilations)
            self._p2 = (pads[0], pads[2], pads[1], pads[3])  # top, bottom, left, right
            self._out2 = self.out_shape
        self._kt = None

    def __reduce__(self):
        return (Conv, (np.array(self.kernel), self.in_shape, self.strides, self.pads, self.dilations, self.groups))

    @property
    def shape(self):
        return (math.prod(self.out_shape), math.prod(self.in_shape))

    @property
    def parameter_count(self) -> int:
        return int(self.kernel.size)

    def with_kernel(self, kernel) -> "Conv":
        return Conv(kernel, self.in_shape, self.strides, self.pads, self.dilations, self.groups)

    def _windows(self, xp: np.ndarray) -> np.ndarray:
        kh, kw = self._k2.shape[2:]
        (sh, sw), (dh, dw) = self._s2, self._d2
        eff = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
        win = np.lib.stride_tricks.sliding_window_view(xp, eff, axis=(2, 3))
        _, oh, ow = self._out2
        return win[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, ::dh, ::dw]  # (N, C, OH, OW, KH, KW)

    def forward(self, x):
        x = _as_batch(x, self.shape[1], "Conv.forward")
        n = x.shape[0]
        c, h, w = self._in2
        m, oh, ow = self._out2
        g = self.groups
        kh, kw = self._k2.shape[2:]
        pt, pb, pl, pr = self._p2
        out = np.empty((n, m, oh, ow))
        per_sample = max(1, c * oh * ow * kh * kw)
        step = max(1, _WORK // per_sample)
        for start in range(0, n, step):
            xs = x[start : start + step].reshape(-1, c, h, w)
            if any(self._p2):
                xs = np.pad(xs, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
            win = self._windows(xs)
            if g == 1:
                part = np.tensordot(win, self._k2, axes=([1, 4, 5], [1, 2, 3]))  # (n, OH, OW, M)
                out[start : start + step] = part.transpose(0, 3, 1, 2)
            else:
                cg, mg = c // g, m // g
                win = win.reshape(win.shape[0], g, cg, oh, ow, kh, kw)
                kern = self._k2.reshape(g, mg, cg, kh, kw)
                part = np.einsum("ngchwij,gmcij->ngmhw", win, kern, optimize=True)
                out[start : start + step] = part.reshape(part.shape[0], m, oh, ow)
        return out.reshape(n, -1)

    def backward(self, cvec):
        cvec = _as_batch(cvec, self.shape[0], "Conv.backward")
        n = cvec.shape[0]
        c, h, w = self._in2
        m, oh, ow = self._out2
        g = self.groups
        kh, kw = self._k2.shape[2:]
        (sh, sw), (dh, dw) = self._s2, self._d2
        pt, pb, pl, pr = self._p2
        co = cvec.reshape(n, m, oh, ow)
        if g == 1:
            # channels last: one matrix product for every kernel offset (col2im), then kh * kw strided adds
            grad = np.zeros((n, h + pt + pb, w + pl + pr, c))
            rows = np.ascontiguousarray(co.transpose(0, 2, 3, 1)).reshape(-1, m)  # (n oh ow, M)
            if self._kt is None:  # the kernel as (M, KH KW C): each offset's (M, C) block contiguous in C
                object.__setattr__(self, "_kt", np.ascontiguousarray(self._k2.transpose(0, 2, 3, 1)).reshape(m, -1))
            cols = (rows @ self._kt).reshape(n, oh, ow, kh, kw, c)
            for i in range(kh):
                for j in range(kw):
                    grad[:, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw, :] += cols[:, :, :, i, j, :]
            return np.ascontiguousarray(grad[:, pt : pt + h, pl : pl + w, :].transpose(0, 3, 1, 2)).reshape(n, -1)
        grad = np.zeros((n, c, h + pt + pb, w + pl + pr))
        cg, mg = c // g, m // g
        cog = co.reshape(n, g, mg, oh, ow)
        kern = self._k2.reshape(g, mg, cg, kh, kw)
        for i in range(kh):
            for j in range(kw):
                part = np.einsum("ngmhw,gmc->ngchw", cog, kern[:, :, :, i, j]).reshape(n, c, oh, ow)
                grad[:, :, i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw] += part
        return grad[:, :, pt : pt + h, pl : pl + w].reshape(n, -1)

    def rows(self, index):
        """The rows, written directly: output (m, oh, ow) reads kernel[m, :, i, j] at its window's inputs."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        m, oh, ow = np.unravel_index(index, self._out2)
        big_m, cg, kh, kw = self._k2.shape
        c, h, w = self._in2
        (sh, sw), (dh, dw) = self._s2, self._d2
        pt, _, pl, _ = self._p2
        channel = (m // (big_m // self.groups))[:, None] * cg + np.arange(cg)[None, :]  # (n, Cg)
        hh = oh[:, None] * sh - pt + np.arange(kh)[None, :] * dh  # (n, KH)
        ww = ow[:, None] * sw - pl + np.arange(kw)[None, :] * dw  # (n, KW)
        inside = ((hh >= 0) & (hh < h))[:, None, :, None] & ((ww >= 0) & (ww < w))[:, None, None, :]
        inside = np.broadcast_to(inside, (index.size, cg, kh, kw))
        cols = (channel[:, :, None, None] * h + hh[:, None, :, None]) * w + ww[:, None, None, :]
        which = np.broadcast_to(np.arange(index.size)[:, None, None, None], inside.shape)
        out = np.zeros((index.size, self.shape[1]))
        out[which[inside], cols[inside]] = self._k2[m][inside]
        return out

    def absolute(self):
        return self.with_kernel(np.abs(self.kernel))

    def scaled(self, alpha):
        return self.with_kernel(self.kernel * float(alpha))

    def parameters(self):
        return (self.kernel,)

    def signature(self):
        return f"Conv{self.in_shape}{self.kernel.shape}s{self.strides}p{self.pads}d{self.dilations}g{self.groups}"

    def describe(self):
        kernel = "x".join(str(k) for k in self.kernel.shape[2:])
        stride = "x".join(str(s) for s in self.strides) if len(set(self.strides)) > 1 else str(self.strides[0])
        group = f" groups {self.groups}" if self.groups > 1 else ""
        return f"conv {self.kernel.shape[0]}x{kernel}/{stride}{group}"

    def channel_scaled(self, out_scale=None, in_scale=None) -> "Conv":
        """The convolution followed by a per-output-channel scale / preceded by a per-input-channel one."""
        k = np.array(self.kernel)
        if out_scale is not None:
            k = k * np.asarray(out_scale, dtype=np.float64).reshape((-1,) + (1,) * (k.ndim - 1))
        if in_scale is not None:
            s = np.asarray(in_scale, dtype=np.float64).reshape(self.groups, -1)  # (G, Cg)
            mg = k.shape[0] // self.groups
            k = k * np.repeat(s, mg, axis=0).reshape(k.shape[:2] + (1,) * (k.ndim - 2))
        return self.with_kernel(k)


# ----------------------------------------------------------------------- Blocks
class Blocks(LinearOp):
    """A grid of operators: rows split as ``row_sizes``, columns as ``col_sizes``; absent blocks are zero."""

    def __init__(self, row_sizes: Sequence[int], col_sizes: Sequence[int], blocks: dict) -> None:
        self.row_sizes = tuple(int(r) for r in row_sizes)
        self.col_sizes = tuple(int(c) for c in col_sizes)
        self.row_starts = tuple(int(s) for s in np.cumsum((0,) + self.row_sizes))
        self.col_starts = tuple(int(s) for s in np.cumsum((0,) + self.col_sizes))
        clean = {}
        for (i, j), w in sorted(blocks.items()):
            if shape(w) != (self.row_sizes[i], self.col_sizes[j]):
                raise ValueError(f"Blocks: block ({i}, {j}) has shape {shape(w)}, expected "
                                 f"{(self.row_sizes[i], self.col_sizes[j])}")
            if isinstance(w, np.ndarray):
                w = _readonly(np.asarray(w, dtype=np.float64))
            clean[(int(i), int(j))] = w
        self.blocks = clean
        rows_used = np.bincount([i for i, _ in clean], minlength=len(self.row_sizes)) if clean else np.zeros(1)
        cols_used = np.bincount([j for _, j in clean], minlength=len(self.col_sizes)) if clean else np.zeros(1)
        row_ok = rows_used.max() <= 1 and all(_structure(w) in ("row", "monomial") for w in clean.values())
        col_ok = cols_used.max() <= 1 and all(_structure(w) in ("col", "monomial") for w in clean.values())
        self.structure = "monomial" if row_ok and col_ok else "row" if row_ok else "col" if col_ok else "general"

    def __reduce__(self):
        return (Blocks, (self.row_sizes, self.col_sizes, dict(self.blocks)))

    @property
    def shape(self):
        return (self.row_starts[-1], self.col_starts[-1])

    @property
    def nbytes(self):
        return sum(nbytes(w) for w in self.blocks.values())

    @property
    def parameter_count(self):
        return sum(parameter_count(w) for w in self.blocks.values())

    def _map(self, fn) -> "Blocks":
        return Blocks(self.row_sizes, self.col_sizes, {k: fn(w) for k, w in self.blocks.items()})

    def forward(self, x):
        x = _as_batch(x, self.shape[1], "Blocks.forward")
        out = np.zeros((x.shape[0], self.shape[0]))
        for (i, j), w in self.blocks.items():
            out[:, self.row_starts[i] : self.row_starts[i + 1]] += forward(w, x[:, self.col_starts[j] : self.col_starts[j + 1]])
        return out

    def backward(self, c):
        c = _as_batch(c, self.shape[0], "Blocks.backward")
        out = np.zeros((c.shape[0], self.shape[1]))
        for (i, j), w in self.blocks.items():
            out[:, self.col_starts[j] : self.col_starts[j + 1]] += backward(w, c[:, self.row_starts[i] : self.row_starts[i + 1]])
        return out

    def absolute(self):
        return self._map(absolute)

    def scaled(self, alpha):
        return self._map(lambda w: scaled(w, alpha))

    def rows(self, index):
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        out = np.zeros((index.size, self.shape[1]))
        group = np.searchsorted(np.asarray(self.row_starts[1:]), index, side="right")
        for (i, j), w in self.blocks.items():
            sel = np.flatnonzero(group == i)
            if sel.size:
                out[sel, self.col_starts[j] : self.col_starts[j + 1]] = rows(w, index[sel] - self.row_starts[i])
        return out

    def parameters(self):
        params = []
        for w in self.blocks.values():
            params.extend(parameters(w))
        return tuple(params)

    def signature(self):
        inner = ",".join(f"{k}:{signature(w)}" for k, w in self.blocks.items())
        return f"Blocks{self.row_sizes}{self.col_sizes}[{inner}]"

    def finite(self):
        return all(finite(w) for w in self.blocks.values())

    def describe(self):
        kinds = sorted({describe(w) for w in self.blocks.values()})
        return "blocks of " + ", ".join(kinds)


class BlockDiagonal(Blocks):
    """Independent copies side by side: ``diag(w_1, ..., w_k)``."""

    def __init__(self, weights: Sequence) -> None:
        weights = list(weights)
        super().__init__([shape(w)[0] for w in weights], [shape(w)[1] for w in weights],
                         {(k, k): w for k, w in enumerate(weights)})

    def __reduce__(self):
        return (BlockDiagonal, ([self.blocks[(k, k)] for k in range(len(self.row_sizes))],))


class Repeat(LinearOp):
    """``count`` copies of ``op`` on consecutive parts of the vector: ``diag(op, ..., op)``.

    The map of a tensor with a leading batch-like axis (a MatMul over the last axis of a 3-D
    tensor, a convolution of a batch of images); its memory is that of one copy.
    """

    def __init__(self, op, count: int) -> None:
        self.op = _readonly(np.asarray(op, dtype=np.float64)) if isinstance(op, np.ndarray) else op
        self.count = int(count)
        if self.count < 1:
            raise ValueError("Repeat needs at least one copy")
        self.structure = _structure(self.op)

    def __reduce__(self):
        return (Repeat, (self.op, self.count))

    @property
    def shape(self):
        out_size, in_size = shape(self.op)
        return (out_size * self.count, in_size * self.count)

    @property
    def nbytes(self):
        return nbytes(self.op)

    @property
    def parameter_count(self):
        return parameter_count(self.op)

    def forward(self, x):
        x = _as_batch(x, self.shape[1], "Repeat.forward")
        return forward(self.op, x.reshape(x.shape[0] * self.count, -1)).reshape(x.shape[0], -1)

    def backward(self, c):
        c = _as_batch(c, self.shape[0], "Repeat.backward")
        return backward(self.op, c.reshape(c.shape[0] * self.count, -1)).reshape(c.shape[0], -1)

    def absolute(self):
        return Repeat(absolute(self.op), self.count)

    def scaled(self, alpha):
        return Repeat(scaled(self.op, alpha), self.count)

    def rows(self, index):
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        out_size, in_size = shape(self.op)
        copy, inner = np.divmod(index, out_size)
        out = np.zeros((index.size, in_size * self.count))
        part = rows(self.op, inner)
        cols = copy[:, None] * in_size + np.arange(in_size)[None, :]
        np.put_along_axis(out, cols, part, axis=1)
        return out

    def parameters(self):
        return parameters(self.op)

    def signature(self):
        return f"Repeat{self.count}[{signature(self.op)}]"

    def finite(self):
        return finite(self.op)

    def describe(self):
        return f"{self.count} x {describe(self.op)}"


def repeat(op, count: int):
    """``count`` copies of ``op`` block-diagonally (``op`` itself for one copy)."""
    return op if int(count) == 1 else Repeat(op, count)


# -------------------------------------------------------------- Composite, Sum
class Composite(LinearOp):
    """``ops[-1] o ... o ops[0]`` (``ops[0]`` is applied first).

    Its ``absolute()`` is exact and structured when at most one factor is general, every
    factor applied before it has at most one nonzero per column and every factor after it
    at most one per row (then no two products of entries meet in one sum); otherwise it
    is the absolute value of the dense matrix (refused above :data:`DENSE_LIMIT`).
    """

    def __init__(self, ops: Sequence) -> None:
        flat = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, Composite) else [op])
        if len(flat) < 2:
            raise ValueError("Composite needs at least two operators")
        for inner, outer in zip(flat, flat[1:]):
            if shape(outer)[1] != shape(inner)[0]:
                raise ValueError(f"Composite: {shape(outer)} cannot follow {shape(inner)}")
        self.ops = tuple(_readonly(np.asarray(o, dtype=np.float64)) if isinstance(o, np.ndarray) else o for o in flat)
        kinds = [_structure(o) for o in self.ops]
        cols = all(k in ("col", "monomial") for k in kinds)
        rows_ = all(k in ("row", "monomial") for k in kinds)
        self.structure = "monomial" if cols and rows_ else "row" if rows_ else "col" if cols else "general"

    def __reduce__(self):
        return (Composite, (list(self.ops),))

    @property
    def shape(self):
        return (shape(self.ops[-1])[0], shape(self.ops[0])[1])

    @property
    def nbytes(self):
        return sum(nbytes(o) for o in self.ops)

    @property
    def parameter_count(self):
        return sum(parameter_count(o) for o in self.ops)

    @property
    def exact_absolute(self) -> bool:
        kinds = [_structure(o) for o in self.ops]
        general = next((k for k, kind in enumerate(kinds) if kind not in ("col", "monomial")), None)
        return general is None or all(kind in ("row", "monomial") for kind in kinds[general + 1 :])

    def forward(self, x):
        for op in self.ops:
            x = forward(op, x)
        return x

    def backward(self, c):
        for op in reversed(self.ops):
            c = backward(op, c)
        return c

    def absolute(self):
        if self.exact_absolute:
            return Composite([absolute(o) for o in self.ops])
        return np.abs(self.dense())

    def scaled(self, alpha):
        # scale the factor with the fewest parameters to rescale (any factor is exact)
        ops = list(self.ops)
        k = min(range(len(ops)), key=lambda i: shape(ops[i])[0])
        ops[k] = scaled(ops[k], alpha)
        return Composite(ops)

    def rows(self, index):
        r = rows(self.ops[-1], index)
        for op in reversed(self.ops[:-1]):
            r = backward(op, r)
        return r

    def dense(self, limit: int | None = None):
        _check_dense_size(*self.shape, self.describe(), limit)
        # the dense matrix of one factor (a dense one, else the first general one), the others applied around it
        kinds = [_structure(o) for o in self.ops]
        pick = next((k for k, o in enumerate(self.ops) if isinstance(o, np.ndarray)), None)
        if pick is None:
            pick = next((k for k, kind in enumerate(kinds) if kind != "monomial"), len(self.ops) - 1)
        m = dense(self.ops[pick], limit)
        for op in self.ops[pick + 1 :]:
            m = forward(op, m.T).T
        for op in reversed(self.ops[:pick]):
            m = backward(op, m)
        return np.array(m)

    def parameters(self):
        params = []
        for o in self.ops:
            params.extend(parameters(o))
        return tuple(params)

    def signature(self):
        return "Composite[" + ",".join(signature(o) for o in self.ops) + "]"

    def finite(self):
        return all(finite(o) for o in self.ops)

    def describe(self):
        return "+".join(describe(o) for o in self.ops)


class Sum(LinearOp):
    """``sum(terms)`` of operators of one shape; ``absolute()`` is dense (sums can cancel)."""

    def __init__(self, terms: Sequence) -> None:
        flat = []
        for t in terms:
            flat.extend(t.terms if isinstance(t, Sum) else [t])
        shapes = {shape(t) for t in flat}
        if len(shapes) != 1:
            raise ValueError(f"Sum of operators of shapes {sorted(shapes)}")
        self.terms = tuple(flat)

    def __reduce__(self):
        return (Sum, (list(self.terms),))

    @property
    def shape(self):
        return shape(self.terms[0])

    @property
    def nbytes(self):
        return sum(nbytes(t) for t in self.terms)

    @property
    def parameter_count(self):
        return sum(parameter_count(t) for t in self.terms)

    def forward(self, x):
        return sum(forward(t, x) for t in self.terms)

    def backward(self, c):
        return sum(backward(t, c) for t in self.terms)

    def absolute(self):
        return np.abs(self.dense())

    def rows(self, index):
        return sum(rows(t, index) for t in self.terms)

    def scaled(self, alpha):
        return Sum([scaled(t, alpha) for t in self.terms])

    def parameters(self):
        params = []
        for t in self.terms:
            params.extend(parameters(t))
        return tuple(params)

    def signature(self):
        return "Sum[" + ",".join(signature(t) for t in self.terms) + "]"

    def finite(self):
        return all(finite(t) for t in self.terms)

    def describe(self):
        return "sum of " + ", ".join(describe(t) for t in self.terms)


# --------------------------------------------------------- dispatching helpers
def is_dense(w) -> bool:
    return isinstance(w, np.ndarray)


def shape(w) -> tuple[int, int]:
    return tuple(int(d) for d in w.shape)


def matrix_size(w) -> int:
    """Number of entries of the (dense) matrix ``w`` stands for."""
    out_size, in_size = shape(w)
    return out_size * in_size


SKIP_ZERO_COLUMNS = 1 << 16
"""Dense products of at least this many coefficients look for columns that are zero in every row
(inactive ReLUs in back-substitution) and multiply only the others: the same sums, without the zeros."""


def _used_columns(a: np.ndarray) -> np.ndarray | None:
    """The columns of a large 2-D ``a`` that are non-zero in some row, when they are at most 3/4 of
    them (the product then multiplies only those); None when the whole product is the better deal."""
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.size < SKIP_ZERO_COLUMNS:
        return None
    # the columns used by the first rows are among those used by all: when they are already too many,
    # the whole product is the better deal without looking at the other rows
    if a.shape[0] > 64 and np.count_nonzero(np.any(a[:64] != 0, axis=0)) > 0.75 * a.shape[1]:
        return None
    used = np.flatnonzero(np.any(a != 0, axis=0))
    return used if used.size <= 0.75 * a.shape[1] else None


def forward(w, x: np.ndarray) -> np.ndarray:
    """``x @ w.T`` for x (N, in) -> (N, out); a 1-D x gives a 1-D result."""
    if isinstance(w, np.ndarray):
        used = _used_columns(x)
        return x @ w.T if used is None else x[:, used] @ w[:, used].T
    if np.ndim(x) == 1:
        return w.forward(np.asarray(x)[None, :])[0]
    return w.forward(x)


def backward(w, c: np.ndarray) -> np.ndarray:
    """``c @ w`` for c (N, out) -> (N, in); a 1-D c gives a 1-D result."""
    if isinstance(w, np.ndarray):
        used = _used_columns(c)
        return c @ w if used is None else c[:, used] @ w[used]
    if np.ndim(c) == 1:
        return w.backward(np.asarray(c)[None, :])[0]
    return w.backward(c)


def matvec(w, v: np.ndarray) -> np.ndarray:
    """``w @ v`` for a vector v (the dense path is literally ``w @ v``)."""
    if isinstance(w, np.ndarray):
        return w @ v
    return w.forward(np.asarray(v, dtype=np.float64)[None, :])[0]


def absolute(w):
    return np.abs(w) if isinstance(w, np.ndarray) else w.absolute()


def rows(w, index) -> np.ndarray:
    return w[np.asarray(index)] if isinstance(w, np.ndarray) else w.rows(index)


def dense(w, limit: int | None = None) -> np.ndarray:
    """The dense matrix (NetworkError above ``limit``, default :data:`DENSE_LIMIT`, entries for an operator)."""
    return w if isinstance(w, np.ndarray) else w.dense(limit)


def nbytes(w) -> int:
    return int(w.nbytes)


def parameter_count(w) -> int:
    return int(w.size) if isinstance(w, np.ndarray) else int(w.parameter_count)


def parameters(w) -> tuple[np.ndarray, ...]:
    return (w,) if isinstance(w, np.ndarray) else w.parameters()


def signature(w) -> str:
    return f"dense{w.shape}" if isinstance(w, np.ndarray) else w.signature()


def finite(w) -> bool:
    return bool(np.all(np.isfinite(w))) if isinstance(w, np.ndarray) else w.finite()


def describe(w) -> str:
    return f"dense {w.shape[0]}x{w.shape[1]}" if isinstance(w, np.ndarray) else w.describe()


def scaled(w, alpha: float):
    return w * alpha if isinstance(w, np.ndarray) else w.scaled(alpha)


def _structure(w) -> str:
    return "general" if isinstance(w, np.ndarray) else w.structure


def update_digest(digest, w) -> None:
    """Feed ``w`` to a hashlib digest (a dense matrix exactly as the solver's fingerprints always did)."""
    if isinstance(w, np.ndarray):
        digest.update(np.ascontiguousarray(w, dtype=np.float64).tobytes())
        digest.update(str(w.shape).encode())
        return
    digest.update(w.signature().encode())
    for p in w.parameters():
        digest.update(np.ascontiguousarray(p).tobytes())
        digest.update(f"{p.dtype}{p.shape}".encode())


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
    if isinstance(a, np.ndarray) and small:
        return backward(b, a)  # a @ B
    if isinstance(b, np.ndarray) and small:
        return forward(a, b.T).T  # A @ b
    return None


def compose(a, b, limit: int = FOLD_LIMIT):
    """``a o b`` (``a`` applied after ``b``): the matrix ``a @ b``.

    Two dense matrices are multiplied when the product has no more entries than the
    larger factor or at most ``limit``; index maps and sparse factors merge; a diagonal
    scale constant per channel folds into a convolution's kernel; an identity disappears.
    Otherwise a :class:`Composite`, multiplied out to a dense matrix (when it has at most
    ``limit`` entries) if its exact ``absolute()`` would not be structured.
    """
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


def add(a, b, limit: int = FOLD_LIMIT):
    """``a + b`` for two weights of one shape."""
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


def vstack(weights: Sequence, limit: int = FOLD_LIMIT):
    """Rows of the weights one after another (all with the same number of columns)."""
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


def blocks(row_sizes: Sequence[int], col_sizes: Sequence[int], grid: dict, limit: int = FOLD_LIMIT):
    """A grid of blocks: a dense matrix when all blocks are dense and it is at most ``limit`` entries."""
    total = sum(row_sizes) * sum(col_sizes)
    if all(isinstance(w, np.ndarray) for w in grid.values()) and total <= max(limit, 1):
        out = np.zeros((sum(row_sizes), sum(col_sizes)))
        rs, cs = np.cumsum((0,) + tuple(row_sizes)), np.cumsum((0,) + tuple(col_sizes))
        for (i, j), w in grid.items():
            out[rs[i] : rs[i + 1], cs[j] : cs[j + 1]] = w
        return out
    return Blocks(row_sizes, col_sizes, grid)


def eye(size: int, limit: int = FOLD_LIMIT):
    """The identity: ``np.eye`` when small, an IndexMap otherwise."""
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
