"""Operators made of others in sequence or in sum: :class:`Composite` and :class:`Sum`.

:class:`Composite` applies ``ops[0]`` first and ``ops[-1]`` last; :class:`Sum` adds terms of one
shape. Both flatten nested instances of themselves. :func:`~.algebra.compose` and
:func:`~.algebra.add` build them only when no simpler exact form exists.

Invariant: ``absolute()`` is exact. A Composite gives it structurally when
:attr:`Composite.exact_absolute` holds, else (as a Sum always does) from the dense matrix,
refused above :data:`~.base.DENSE_LIMIT` entries.

``abs_bound()`` (entries at least ``|W|``, what interval radii read) never makes the matrix
dense: a Composite's is its exact ``absolute()`` when that is structured, else the composite of
its factors' bounds, ``|A_k| ... |A_1| >= |A_k ... A_1|``; a Sum's is the sum of its terms'
bounds, ``sum |T_i| >= |sum T_i|``. Both are equalities when no two products (terms) of
opposite signs meet in one entry, and looser otherwise: an interval radius through them is
that of interval arithmetic step by step through each factor (term), still sound. Exactness
matters only for tightness; symbolic passes (back-substitution, ``forward``/``backward``) read
the factors themselves and lose nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from reluverify.linear_ops.base import _check_dense_size, _readonly
from reluverify.linear_ops.dispatch import (
    Nested, _structure, abs_bound, absolute, backward, dense, describe, forward, rows, scaled, shape, signature,
)


class Composite(Nested):
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

    def parts(self):
        return self.ops

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

    def abs_bound(self):
        """``|A_k| ... |A_1|`` of the factors' bounds (entries at least ``|W|``), structured: exactly
        ``|W|`` when :attr:`exact_absolute` holds (and the factors' bounds are exact). :func:`~.algebra.compose`
        multiplies out the products that are not ``exact_absolute`` up to its ``limit``, so only
        larger ones reach the looser bound."""
        return Composite([abs_bound(o) for o in self.ops])

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

    def signature(self):
        return "Composite[" + ",".join(signature(o) for o in self.ops) + "]"

    def describe(self):
        return "+".join(describe(o) for o in self.ops)


class Sum(Nested):
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

    def parts(self):
        return self.terms

    def forward(self, x):
        return sum(forward(t, x) for t in self.terms)

    def backward(self, c):
        return sum(backward(t, c) for t in self.terms)

    def absolute(self):
        return np.abs(self.dense())

    def abs_bound(self):
        """``sum |T_i|`` (entries at least ``|sum T_i|``, equal where the terms' entries share signs)."""
        return Sum([abs_bound(t) for t in self.terms])

    def rows(self, index):
        return sum(rows(t, index) for t in self.terms)

    def scaled(self, alpha):
        return Sum([scaled(t, alpha) for t in self.terms])

    def signature(self):
        return "Sum[" + ",".join(signature(t) for t in self.terms) + "]"

    def describe(self):
        return "sum of " + ", ".join(describe(t) for t in self.terms)
