"""Operators that place other weights side by side: :class:`Blocks`, :class:`BlockDiagonal`, :class:`Repeat`.

:class:`Blocks` is a grid (concatenations, the stacked layers of a chain with skip connections),
:class:`BlockDiagonal` independent copies of different weights, :class:`Repeat` ``count`` copies
of one weight (a MatMul over the last axis of a 3-D tensor) held once. Each applies its parts
to slices of the vector through :mod:`.dispatch`, so a part may be dense or any operator.

Invariant: a part's place is fixed by the row and column sizes; absent blocks are zero, and
dense parts are stored read-only as float64.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from reluverify.linear_ops.base import _as_batch, _readonly
from reluverify.linear_ops.dispatch import (
    Nested, _structure, abs_bound, absolute, backward, describe, forward, rows, scaled, shape, signature,
)


class Blocks(Nested):
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

    def parts(self):
        return tuple(self.blocks.values())

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

    def abs_bound(self):
        return self._map(abs_bound)

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

    def signature(self):
        inner = ",".join(f"{k}:{signature(w)}" for k, w in self.blocks.items())
        return f"Blocks{self.row_sizes}{self.col_sizes}[{inner}]"

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


class Repeat(Nested):
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

    def parts(self):
        return (self.op,)

    def forward(self, x):
        x = _as_batch(x, self.shape[1], "Repeat.forward")
        return forward(self.op, x.reshape(x.shape[0] * self.count, -1)).reshape(x.shape[0], -1)

    def backward(self, c):
        c = _as_batch(c, self.shape[0], "Repeat.backward")
        return backward(self.op, c.reshape(c.shape[0] * self.count, -1)).reshape(c.shape[0], -1)

    def absolute(self):
        return Repeat(absolute(self.op), self.count)

    def abs_bound(self):
        return Repeat(abs_bound(self.op), self.count)

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

    def signature(self):
        return f"Repeat{self.count}[{signature(self.op)}]"

    def describe(self):
        return f"{self.count} x {describe(self.op)}"


def repeat(op, count: int):
    """``count`` copies of ``op`` block-diagonally (``op`` itself for one copy)."""
    return op if int(count) == 1 else Repeat(op, count)
