"""Input splitting with a proof: the recorder of the proof trees (:class:`ProofRecorder`, and
:class:`NoProof` for a search that records none), and the two steps a proof does differently.

A proof refutes a box only with evidence that the certificate checker recomputes: DeepPoly bounds on
the box, one back-substitution of a weighted combination of a target's rows
(:func:`bound_with_evidence`), or the triangle LP's Farkas multipliers (:func:`refute_residues`).
Each refutation is recorded as a leaf of the target's tree at the box's node; each split as two
children of it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from reluverify.solver import triangle_lp
from reluverify.solver.bounds import alpha_crown
from reluverify.solver.bounds.deeppoly import deeppoly_bounds
from reluverify.solver.certificate import ProofTree
from reluverify.solver.input_split.boxes import Bounded, Boxes
from reluverify.solver.input_split.problem import Problem
from reluverify.solver.result import Statistics


class NoProof:
    """The recorder of a search that records no proof: children stay at their parent's (unused) node."""

    def split(self, node: np.ndarray, alive: np.ndarray, dim: np.ndarray, middle: np.ndarray):
        return node, node


class ProofRecorder:
    """Records the proof in one :class:`~reluverify.solver.certificate.ProofTree` per target."""

    def __init__(self, trees: list[ProofTree]) -> None:
        self.trees = trees

    def split(self, node: np.ndarray, alive: np.ndarray, dim: np.ndarray, middle: np.ndarray):
        """The nodes (B, D) of the lower and the upper halves of boxes at ``node`` split at ``middle``
        along ``dim``, in the tree of every target alive on them."""
        lower_node, upper_node = node.copy(), node.copy()
        for b, position in zip(*np.nonzero(alive)):
            lower_node[b, position], upper_node[b, position] = self.trees[position].add_input_split(
                int(node[b, position]), int(dim[b]), float(middle[b])
            )
        return lower_node, upper_node

    def bound_leaves(self, position: int, nodes: np.ndarray, weights: np.ndarray, gamma: np.ndarray | None) -> None:
        self.trees[position].add_bound_leaves(nodes, weights, gamma)

    def lp_leaf(self, position: int, node: int, farkas: tuple) -> None:
        self.trees[position].add_lp_leaf(node, *farkas)


def bound_with_evidence(problem: Problem, boxes: Boxes, recorder: ProofRecorder) -> tuple[Bounded, np.ndarray]:
    """Bound a batch so that every refutation has evidence: DeepPoly bounds; each row on its own (one
    back-substitution, heuristic slopes); for a conjunction no single row refutes, weights of its rows
    (and multipliers of the input rows) by a short ascent. Returns the bounded boxes and the (B, D)
    mask of the targets refuted on them (each recorded as a bound leaf)."""
    chain, n, margin = problem.chain, problem.n, problem.options.tolerances.prune_margin
    lo, hi, alive, node = boxes.lower, boxes.upper, boxes.alive, boxes.node
    layer_bounds = deeppoly_bounds(chain, lo, hi)
    relaxation = alpha_crown.Relaxation(layer_bounds.pre_lower, layer_bounds.pre_upper, size=lo.shape[0])
    rows_in, rhs_in = problem.input_rows if problem.input_rows is not None else (None, None)
    region = alpha_crown.Region(lo, hi, rows_in, rhs_in)
    mu = np.broadcast_to(problem.rows[None, :, n:], (lo.shape[0],) + problem.rows[:, n:].shape)
    single = alpha_crown.backward(chain, region, relaxation, mu, -problem.rhs[None, :],
                                  input_coef=problem.rows[None, :, :n], record=False)
    values = single.value  # (B, R)
    dead = np.zeros(alive.shape, dtype=bool)
    for position in range(len(problem.targets)):
        owned = np.flatnonzero(problem.owner_matrix[position])
        if owned.size == 0:
            continue
        best = np.argmax(values[:, owned], axis=1)
        hit = alive[:, position] & (values[np.arange(lo.shape[0]), owned[best]] > margin)
        refuted = np.flatnonzero(hit)
        if refuted.size:
            weights = np.zeros((refuted.size, owned.size))
            weights[np.arange(refuted.size), best[refuted]] = 1.0
            recorder.bound_leaves(position, node[refuted, position], weights, None)
            dead[refuted, position] = True
    # conjunctions (and input rows) no single row refutes: a short ascent of weights and gamma
    refuted, weights, gammas = problem.optimised_refutations(lo, hi, alive & ~dead, layer_bounds, slopes=False)
    for position in range(len(problem.targets)):
        index = np.flatnonzero(refuted[:, position])
        if index.size:
            recorder.bound_leaves(position, node[index, position], weights[position], gammas[position])
            dead[index, position] = True
    return Bounded(boxes, layer_bounds, single.lam[:, :, :n], values), dead


def refute_residues(problem: Problem, bounded: Bounded, residue: np.ndarray, recorder: ProofRecorder,
                    statistics: Statistics, deadline: float | None,
                    left_open: Callable[[int, np.ndarray | None], None]) -> np.ndarray:
    """The triangle LP on each residue box, per alive target; a target it refutes is dead on the box (a
    Farkas leaf). A box with no unstable ReLU that the LP does not refute has no certificate: the target
    goes to ``left_open(position, the LP's inputs or None)`` and is dead on the box. Returns the mask of
    the boxes whose every alive target the LP refuted."""
    refuted = np.zeros(len(bounded.boxes), dtype=bool)
    boxes, layer_bounds, tolerances = bounded.boxes, bounded.layer, problem.options.tolerances
    rows_in, rhs_in = problem.input_rows if problem.input_rows is not None else (None, None)
    for b in np.flatnonzero(residue):
        region = alpha_crown.Region(boxes.lower[b : b + 1], boxes.upper[b : b + 1], rows_in, rhs_in)
        relaxation = alpha_crown.Relaxation([a[b : b + 1] for a in layer_bounds.pre_lower],
                                            [a[b : b + 1] for a in layer_bounds.pre_upper], size=1)
        linear = relaxation.unstable_counts()[0] == 0
        refuted[b] = True
        for position in np.flatnonzero(boxes.alive[b]):
            target = problem.targets[position]
            outcome = triangle_lp.solve_triangle_lp(problem.chain, region, relaxation, 0, target.rows, target.rhs,
                                                    tolerances.feasibility, tolerances.pivot, deadline=deadline)
            statistics.lp_calls += 1
            statistics.pivots += outcome.pivots
            if outcome.status == triangle_lp.REFUTED and outcome.farkas is not None:
                recorder.lp_leaf(position, int(boxes.node[b, position]), outcome.farkas)
                boxes.alive[b, position] = False
                continue
            refuted[b] = False
            if linear:
                left_open(int(position), outcome.inputs)
                boxes.alive[b, position] = False
    return refuted
