"""Constant inputs folded into the first layer: the same query over the inputs that vary.

Specifications often pin most inputs to one value (a sensor window with two perturbed samples,
a patch attack on an image). Such an input is a constant: ``W x + b`` with ``x_i = c_i`` fixed is
``W[:, free] x_free + (b + W[:, fixed] c)``. The projected query has the free network inputs (and
the auxiliary variables) as its input variables, the first layer restricted to them (dense: one
column per free input), and every row's fixed columns moved to its right-hand side. It has
exactly the solutions of the original one, restricted to the free coordinates; so strategies
that depend on the number of inputs (input splitting) apply to what actually varies, and bounds
stop carrying constant columns. Counterexamples are expanded back and confirmed on the original
query, never on the projection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify import linear_ops as lops
from reluverify.network import ReluChain
from reluverify.query import Disjunct, LinearConstraints, Query

FOLD_LIMIT = 1 << 24
"""The largest dense first layer (entries) a projection builds; beyond it the query is left as is."""


@dataclass(frozen=True, eq=False)
class InputProjection:
    """``query`` over the original query's free network inputs and auxiliaries (see the module docstring)."""

    query: Query
    keep: np.ndarray  # indices of the original input variables that stay (free network inputs, then auxiliaries)
    template: np.ndarray  # an original input vector carrying the constant values
    empty: bool = False  # a constant input row fails: the original query has no solution at all

    def expand(self, inputs: np.ndarray) -> np.ndarray:
        """The original input vector of a projected one."""
        full = self.template.copy()
        full[self.keep] = np.asarray(inputs, dtype=np.float64).reshape(-1)
        return full


def project_constant_inputs(query: Query, tolerance: float = 1e-9) -> InputProjection | None:
    """The projection of ``query`` onto its varying inputs, or None when no network input is constant
    (or when the first layer restricted to the free inputs would be too large to hold dense)."""
    n_x = query.num_network_inputs
    constant = query.lower[:n_x] == query.upper[:n_x]
    if not np.any(constant):
        return None
    chain = query.relu_chain()
    free = np.flatnonzero(~constant)
    if free.size == 0:
        return None  # nothing varies: the query is a single point, decided as it is
    first = chain.weights[0]
    if lops.shape(first)[0] * max(free.size, 1) > FOLD_LIMIT:
        return None
    values = np.where(constant, query.lower[:n_x], 0.0)
    bias = chain.biases[0] + lops.forward(first, values[None, :])[0]
    if lops.is_dense(first):
        columns = first[:, free]
    else:
        unit = np.zeros((free.size, n_x))
        unit[np.arange(free.size), free] = 1.0
        columns = lops.forward(first, unit).T if free.size else np.zeros((lops.shape(first)[0], 0))
    reduced = ReluChain((np.ascontiguousarray(columns),) + tuple(chain.weights[1:]), (bias,) + tuple(chain.biases[1:]))
    keep = np.concatenate([free, np.arange(n_x, query.num_inputs)])
    fixed = np.flatnonzero(constant)
    num_v = query.num_inputs
    template = np.concatenate([values, np.zeros(query.num_auxiliary)])

    def rows(constraints: LinearConstraints, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Keep the columns of the free inputs (and of whatever follows the input variables)."""
        matrix = constraints.matrix
        shift = matrix[:, fixed] @ values[fixed]
        kept = np.concatenate([keep, np.arange(num_v, width)])
        return matrix[:, kept], constraints.rhs - shift

    in_matrix, in_rhs = rows(query.input_constraints, num_v)
    # an input row over constants only holds or fails outright (it stays, as a zero row, so that the
    # input rows keep their numbers: certificates name them)
    only_constant = ~np.any(in_matrix != 0, axis=1)
    scale = 1.0 + np.abs(query.input_constraints.rhs)
    empty = bool(np.any(only_constant & (in_rhs < -tolerance * scale)))
    width = num_v + query.num_outputs
    disjuncts = []
    for d in query.disjuncts:
        matrix, rhs = rows(d.constraints, width)
        disjuncts.append(Disjunct(d.lower[keep], d.upper[keep], LinearConstraints(matrix, rhs), d.label))
    network = reduced.to_network(input_shape=(int(free.size),), output_shape=(query.num_outputs,))
    projected = Query(
        (network,),
        query.lower[keep],
        query.upper[keep],
        tuple(disjuncts),
        LinearConstraints(in_matrix, in_rhs),
        query.num_auxiliary,
        query.description,
    )
    projected._cache["chain"] = reduced
    return InputProjection(projected, keep, template, empty)
