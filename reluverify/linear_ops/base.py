"""The base class of the structured operators, and the helpers every operator shares.

An operator ``W`` stands for a dense (out, in) float64 matrix that it never stores. Every value
is a flat C-order vector; inputs come in batches of rows. :class:`LinearOp` fixes the protocol:

* ``shape`` -- ``(out, in)``;
* ``forward(x)`` -- ``x @ W.T`` for ``x`` of shape (N, in);
* ``backward(c)`` -- ``c @ W`` for ``c`` of shape (N, out) (a convolution's transpose);
* ``absolute()`` -- the operator with entries ``|W|``, exactly (a composition that cannot give
  it structurally folds to dense, refused above :data:`DENSE_LIMIT`);
* ``abs_bound()`` -- an operator with entries at least ``|W|`` (elementwise), never dense unless
  the operator is: what interval radii read (``|W x| <= abs_bound(W) r`` for ``|x| <= r``). It is
  ``absolute()`` wherever that is structured; a product or sum that is not gives the product or
  sum of its factors' bounds (``|A B| <= |A| |B|``, ``|A + B| <= |A| + |B|``): sound, looser;
* ``rows(index)`` -- the dense rows ``W[index]`` (here: ``backward`` of unit vectors, in batches);
* ``dense()`` -- the whole matrix (refused above :data:`DENSE_LIMIT` entries);
* ``nbytes`` -- the memory it holds;
* ``scaled(alpha)``, ``parameters()``, ``signature()``, ``parameter_count``, ``finite()``,
  ``describe()`` -- helpers for the IR (hashing, reporting, checks);
* ``structure`` -- ``"monomial"`` (at most one nonzero per row and per column), ``"row"``,
  ``"col"`` (per row, per column) or ``"general"``: what :class:`~.composite.Composite`
  reads to decide whether its ``absolute()`` is exact.

Invariant: operators are immutable (their arrays are read-only, see :func:`_readonly`),
picklable and hold float64 parameters. This module imports nothing else of the package.
"""

from __future__ import annotations

import numpy as np

from reluverify.errors import NetworkError

DENSE_LIMIT = 1 << 26
""":meth:`LinearOp.dense` refuses to build a matrix of more entries than this (512 MiB of float64)."""
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

    def abs_bound(self) -> "np.ndarray | LinearOp":
        """Entries at least ``|W|``; here ``absolute()`` (exact), which every operator whose
        ``absolute()`` is structured keeps."""
        return self.absolute()

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
