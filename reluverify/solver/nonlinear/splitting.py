"""Where to split a box that bounds could not decide: an input dimension or a relaxation interval.

* **Input split** -- halve the input dimension with the largest influence: its width times the
  magnitude of the alive disjuncts' tightest rows' linear-bound coefficients. Every relaxation
  of the children is at least as tight, and all of them become exact as boxes shrink.
* **Relaxation split** -- halve the interval of one *relaxed value* (the input of a sigmoid, tanh
  or ReLU, or an operand of a product): the two children clamp it below and above the middle
  (0 for a ReLU or sign input, which makes its relaxation exact; an integer for floor). The value chosen is the one whose
  relaxations cost the tightest rows most (BaBSR-like): the rows' multiplier at each consumer
  times the consumer's relaxation gap (for an activation, the vertical distance of its two
  lines at the interval's middle; for a product, half the product of its operands' widths).
"""

from __future__ import annotations

import numpy as np

from reluverify.network import ActivationNode, Network, ProductNode
from reluverify.solver.nonlinear.bounds import DagBounds, Layout, back_substitute
from reluverify.solver.nonlinear.relaxations import split_point


def input_influence(coef: np.ndarray, alive: np.ndarray, width: np.ndarray) -> np.ndarray:
    """(B, n): width times the summed |coefficients| of each box's alive tightest rows (coef (B, D, n))."""
    return (np.abs(coef) * alive[:, :, None]).sum(axis=1) * width


class RelaxationScorer:
    """Scores the relaxed values of a network (see the module docstring); one per network."""

    def __init__(self, network: Network, layout: Layout) -> None:
        self.network = network
        self.layout = layout
        self.consumers: dict[int, list[tuple[int, int | None]]] = {k: [] for k in layout.nodes}
        self.kind = np.full(layout.size, "", dtype=object)  # the activation reading each relaxed value ("" for products)
        for k, node in enumerate(network.nodes):
            if isinstance(node, ActivationNode):
                self.consumers[node.source].append((k, None))
                self.kind[layout.slices[node.source]] = node.kind
            elif isinstance(node, ProductNode):
                self.consumers[node.left].append((k, node.right))
                self.consumers[node.right].append((k, node.left))
        self.relu_input = self.kind == "relu"

    def scores(self, bounds: DagBounds, rows: np.ndarray, alive: np.ndarray) -> np.ndarray:
        """(B, layout.size) scores for rows (B, D, n + m) of which ``alive`` (B, D) count."""
        network, n = self.network, self.network.input_size
        multiplier = rows[:, :, n:] * alive[:, :, None]
        _, _, seen = back_substitute(network, bounds.relaxations, len(network.nodes) - 1, multiplier, record=True)
        out = np.zeros((rows.shape[0], self.layout.size))
        for source, uses in self.consumers.items():
            total = 0.0
            for k, other in uses:
                if k not in seen:
                    continue
                weight = np.abs(seen[k]).sum(axis=1)  # (B, size)
                if other is None:
                    relax = bounds.relaxations[k]
                    if relax.lower_slope.ndim != 2:
                        continue
                    mid = 0.5 * (bounds.lower[source] + bounds.upper[source])
                    gap = (relax.upper_slope - relax.lower_slope) * mid + relax.upper_offset - relax.lower_offset
                else:
                    gap = 0.5 * (bounds.upper[source] - bounds.lower[source]) * (bounds.upper[other] - bounds.lower[other])
                total = total + weight * np.nan_to_num(gap, nan=0.0, posinf=0.0, neginf=0.0)
            out[:, self.layout.slices[source]] = total
        return out

    def split_points(self, lower: np.ndarray, upper: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Where to cut the chosen relaxed values: where the activation reading it says
        (:func:`~reluverify.solver.nonlinear.relaxations.split_point`: 0 for a ReLU or sign input that
        straddles it, an integer for floor, else the middle); the middle for a product's operand."""
        out = 0.5 * (lower + upper)
        kinds = self.kind[index]
        for kind in set(kinds.tolist()) - {""}:
            chosen = kinds == kind
            out = np.where(chosen, split_point(kind, lower, upper), out)
        return out
