"""Functions on a weight of either kind: a dense (out, in) ``np.ndarray`` or a :class:`~.base.LinearOp`.

Each function (:func:`forward`, :func:`backward`, :func:`absolute`, :func:`abs_bound`, :func:`rows`, :func:`dense`,
:func:`shape`, :func:`update_digest`, ...) takes the ndarray path when ``w`` is one and asks the
operator otherwise. Invariant: the ndarray path is exactly what the IR computed before operators
existed (``x @ w.T``, ``c @ w``, ``np.abs(w)``, the same digest bytes), except that large dense
products may skip columns that are zero in every row (:data:`SKIP_ZERO_COLUMNS`), which leaves
every sum the same terms without its zeros.

:class:`Nested` is the base of the operators built from other weights (grids, repeats,
compositions, sums): their memory, parameters and finiteness are those of their parts, read
through these functions.
"""

from __future__ import annotations

import numpy as np

from reluverify.linear_ops.base import LinearOp

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
    """``|w|`` exactly (an operator that cannot give it structurally makes it dense)."""
    return np.abs(w) if isinstance(w, np.ndarray) else w.absolute()


def abs_bound(w):
    """A weight with entries at least ``|w|``, as structured as ``w``: ``np.abs(w)`` for a dense
    ``w`` (exact), else :meth:`~.base.LinearOp.abs_bound` (exact where ``absolute()`` is
    structured, else the product or sum of the parts' bounds). Sound for what reads it only
    against non-negative vectors: interval radii ``abs_bound(w) r``, ``r >= 0``."""
    return np.abs(w) if isinstance(w, np.ndarray) else w.abs_bound()


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


class Nested(LinearOp):
    """An operator made of other weights, :meth:`parts`: it holds their memory and parameters, in order."""

    def parts(self) -> tuple:
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        return sum(nbytes(p) for p in self.parts())

    @property
    def parameter_count(self) -> int:
        return sum(parameter_count(p) for p in self.parts())

    def parameters(self) -> tuple[np.ndarray, ...]:
        return tuple(array for p in self.parts() for array in parameters(p))

    def finite(self) -> bool:
        return all(finite(p) for p in self.parts())
