"""A query as the search sees it: one DAG over all input variables, and one target per disjunct.

The query's outputs ``y`` are the concatenated outputs of its network copies, each reading its
own slice of the input variables ``v`` (auxiliary variables are read by none). :func:`merge`
builds one :class:`~reluverify.network.Network` whose input is the whole ``v`` and whose output is
the whole ``y``, so bounds, gradients and candidates treat every query alike: a disjunct's rows
over ``[v; y]`` are rows over the merged network's input and output. A query with one network
and no auxiliary variables gets that network unchanged.

A :class:`Target` is one disjunct: its box (within the query's) and its rows ``rows @ [v; y] <=
rhs``. The query's own input rows (``input_constraints``, e.g. an L1 ball) are kept apart in
:class:`Problem`; :mod:`~reluverify.solver.nonlinear.region` handles them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify.network import ActivationNode, AffineNode, InputNode, Network, Node, ProductNode
from reluverify.query import LinearConstraints, Query


@dataclass(frozen=True, eq=False)
class Target:
    """Disjunct ``index``: ``lower <= v <= upper`` and ``rows @ [v; y] <= rhs``."""

    index: int
    lower: np.ndarray
    upper: np.ndarray
    rows: np.ndarray
    rhs: np.ndarray


@dataclass(frozen=True, eq=False)
class Problem:
    """The merged network (input ``v``, output ``y``), the targets, and the query's input rows."""

    network: Network
    targets: tuple[Target, ...]
    input_rows: LinearConstraints

    @property
    def num_inputs(self) -> int:
        return self.network.input_size


def build_problem(query: Query) -> Problem:
    """The query as a :class:`Problem`; disjuncts with an empty box are left out."""
    targets = tuple(
        Target(k, d.lower, d.upper, d.constraints.matrix, d.constraints.rhs)
        for k, d in enumerate(query.disjuncts)
        if not d.is_empty_box()
    )
    return Problem(merge(query), targets, query.input_constraints)


def merge(query: Query) -> Network:
    """One network mapping all input variables ``v`` to all outputs ``y`` (see the module docstring)."""
    if len(query.networks) == 1 and query.num_auxiliary == 0:
        return query.networks[0]
    n = query.num_inputs
    nodes: list[Node] = [InputNode(n)]
    outputs: list[int] = []
    offset = 0
    for network in query.networks:
        size = network.input_size
        select = np.zeros((size, n))
        select[:, offset : offset + size] = np.eye(size)
        nodes.append(AffineNode((0,), (select,), np.zeros(size)))  # this copy's input slice
        index = {0: len(nodes) - 1}
        for old, node in enumerate(network.nodes[1:], start=1):
            if isinstance(node, AffineNode):
                nodes.append(AffineNode(tuple(index[s] for s in node.sources), node.weights, node.bias))
            elif isinstance(node, ActivationNode):
                nodes.append(ActivationNode(node.kind, index[node.source], node.size))
            elif isinstance(node, ProductNode):
                nodes.append(ProductNode(index[node.left], index[node.right], node.size))
            index[old] = len(nodes) - 1
        outputs.append(index[len(network.nodes) - 1])
        offset += size
    m = query.num_outputs
    weights, row = [], 0
    for out in outputs:
        size = nodes[out].size
        place = np.zeros((m, size))
        place[row : row + size] = np.eye(size)
        weights.append(place)
        row += size
    nodes.append(AffineNode(tuple(outputs), tuple(weights), np.zeros(m)))
    return Network(tuple(nodes), input_shape=(n,), output_shape=(m,))
