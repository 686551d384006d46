"""Structured linear operators: weights of the IR whose memory is that of their parameters.

A *weight* of an :class:`~reluverify.network.AffineNode` (and of ``ReluChain.weights``) is
either a dense 2-D ``np.ndarray`` of shape (out, in) or a :class:`LinearOp`. Every value is a
flat C-order vector, as everywhere in the IR. Callers use this package as one namespace
(``from reluverify import linear_ops as lops``; ``lops.forward(w, x)``, ``lops.Conv``); its
modules, each importing only those listed before it:

* :mod:`.base` -- :class:`LinearOp`, the protocol every operator answers, and shared helpers;
* :mod:`.dispatch` -- functions on a weight of either kind (:func:`forward`, :func:`backward`,
  :func:`absolute`, :func:`abs_bound`, :func:`rows`, :func:`dense`, :func:`shape`, :func:`update_digest`, ...),
  whose ndarray path is exactly ``x @ w.T``, ``c @ w``, ``np.abs(w)``;
* :mod:`.sparse` -- :class:`IndexMap` (reshapes, transposes, slices, gathers, zero padding,
  broadcasting, diagonal scales) and :class:`Sparse` (max pooling's differences);
* :mod:`.convolution` -- :class:`Conv` (1-D and 2-D; average pooling is a Conv too) and
  :class:`ConvTranspose`, its transpose;
* :mod:`.blockwise` -- :class:`Blocks`, :class:`BlockDiagonal`, :class:`Repeat`;
* :mod:`.composite` -- :class:`Composite` (a sequence) and :class:`Sum`;
* :mod:`.algebra` -- :func:`compose`, :func:`add`, :func:`vstack`, :func:`blocks`, ...: the
  simplest exact form of a product, sum or stack.

The tunables :data:`DENSE_LIMIT` (:mod:`.base`), :data:`SKIP_ZERO_COLUMNS` (:mod:`.dispatch`) and
:data:`FOLD_LIMIT` (:mod:`.algebra`) live in the module that reads them; reading one here reads it
there (so a value patched there is the value seen here).

IR level only: nothing here imports from ``reluverify.solver``.
"""

from __future__ import annotations

from reluverify.linear_ops import algebra as _algebra
from reluverify.linear_ops import base as _base
from reluverify.linear_ops import dispatch as _dispatch
from reluverify.linear_ops.algebra import add, block_diagonal, blocks, compose, eye, iter_ops, vstack
from reluverify.linear_ops.base import LinearOp
from reluverify.linear_ops.blockwise import BlockDiagonal, Blocks, Repeat, repeat
from reluverify.linear_ops.composite import Composite, Sum
from reluverify.linear_ops.convolution import Conv, ConvTranspose
from reluverify.linear_ops.dispatch import (
    Nested,
    _used_columns,
    abs_bound,
    absolute,
    backward,
    dense,
    describe,
    finite,
    forward,
    is_dense,
    matrix_size,
    matvec,
    nbytes,
    parameter_count,
    parameters,
    rows,
    scaled,
    shape,
    signature,
    update_digest,
)
from reluverify.linear_ops.sparse import IndexMap, Sparse, diagonal, from_dense, identity

_TUNABLES = {"DENSE_LIMIT": _base, "SKIP_ZERO_COLUMNS": _dispatch, "FOLD_LIMIT": _algebra}

__all__ = [
    "BlockDiagonal", "Blocks", "Composite", "Conv", "ConvTranspose", "IndexMap", "LinearOp", "Nested", "Repeat", "Sparse", "Sum",
    "abs_bound", "absolute", "add", "backward", "block_diagonal", "blocks", "compose", "dense", "describe", "diagonal", "eye",
    "finite", "forward", "from_dense", "identity", "is_dense", "iter_ops", "matrix_size", "matvec", "nbytes",
    "parameter_count", "parameters", "repeat", "rows", "scaled", "shape", "signature", "update_digest", "vstack",
    *_TUNABLES,
]


def __getattr__(name: str):
    if name in _TUNABLES:
        return getattr(_TUNABLES[name], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TUNABLES))
