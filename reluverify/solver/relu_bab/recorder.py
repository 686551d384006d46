"""Recording the proof of one search (docs/certificates.md): one object that the search calls at
every split and every refuted sub-problem, and a null one that records nothing.

The search calls its recorder the same way whether a proof is asked for or not:
:meth:`ProofRecorder.splits` numbers the children of every split (their nodes in the proof tree),
:meth:`~ProofRecorder.bound_leaves` keeps the parameters with which a refuted sub-problem's own
bound is positive, :meth:`~ProofRecorder.lp_leaf` the Farkas multipliers of one the exact LP refuted,
and :meth:`~ProofRecorder.root` the rows that tightened the root's intermediate bounds. With no proof
:data:`NO_PROOF` answers every call with nothing (a split's children all get node 0).

Invariant (with a proof): every sub-problem the search refutes is recorded as a leaf at its node, and
every split as the two children of its parent's node; so when the search refutes its whole tree,
the leaves cover the recorded tree.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from reluverify.linear_ops import shape as lops_shape
from reluverify.network import ReluChain
from reluverify.solver.bounds import alpha_crown
from reluverify.solver.certificate import ProofTree
from reluverify.solver.relu_bab.root import RootBounds


class Recorder(Protocol):
    def splits(self, parents: np.ndarray, layer: np.ndarray, neuron: np.ndarray) -> np.ndarray:
        """The nodes (2B,) of the children of splitting ReLU ``(layer, neuron)`` of each parent node
        (B,): first every active child, then every inactive one (as :func:`~.children.make_children`)."""

    def bound_leaves(self, nodes: np.ndarray, relaxation: alpha_crown.Relaxation, params: alpha_crown.Parameters,
                     refuted: np.ndarray) -> None:
        """Sub-problems ``refuted`` (a mask over ``nodes``) are leaves whose evidence is their bound:
        the parameters (one target) with which it is positive."""

    def lp_leaf(self, node: int, farkas: tuple[np.ndarray, np.ndarray]) -> None:
        """Sub-problem ``node`` is a leaf refuted by the exact LP: its Farkas multipliers (rows, values)."""

    def root(self, root: RootBounds) -> None:
        """The root's bounds, tightened by ``root.interm_rows``, are what every leaf's bounds start from."""


class NoProof:
    """The recorder of a search without a proof: records nothing."""

    def splits(self, parents: np.ndarray, layer: np.ndarray, neuron: np.ndarray) -> np.ndarray:
        return np.zeros(2 * parents.size, dtype=np.int64)

    def bound_leaves(self, nodes, relaxation, params, refuted) -> None:
        pass

    def lp_leaf(self, node, farkas) -> None:
        pass

    def root(self, root) -> None:
        pass


NO_PROOF = NoProof()


class ProofRecorder:
    """Records into ``tree`` the proof of a search of one target with ``rows`` rows over ``chain``."""

    def __init__(self, tree: ProofTree, chain: ReluChain, rows: int) -> None:
        self.tree, self.rows = tree, rows
        # ReLUs are numbered in chain order: layer j's first is offsets[j]
        self.offsets = np.cumsum([0] + [w_shape[0] for w_shape in (lops_shape(w) for w in chain.weights[:-1])])

    def splits(self, parents: np.ndarray, layer: np.ndarray, neuron: np.ndarray) -> np.ndarray:
        batch = parents.size
        node = np.zeros(2 * batch, dtype=np.int64)
        relus = self.offsets[layer] + neuron
        for b in range(batch):
            node[b], node[batch + b] = self.tree.add_relu_split(int(parents[b]), int(relus[b]))
        return node

    def bound_leaves(self, nodes: np.ndarray, relaxation: alpha_crown.Relaxation, params: alpha_crown.Parameters,
                     refuted: np.ndarray) -> None:
        if not np.any(refuted):
            return
        dead = np.flatnonzero(refuted)
        relaxation, params = relaxation.take(dead), params.take(dead)
        k = relaxation.batch
        alpha = np.concatenate([a[:, 0, :] for a in params.alpha], axis=1) if params.alpha else np.zeros((k, 0))
        beta = np.concatenate([b[:, 0] for b in params.beta], axis=1) if params.beta else np.zeros((k, 0, 2))
        unstable = np.concatenate(relaxation.unstable(), axis=1) if relaxation.lower else np.zeros((k, 0), bool)
        weights = params.weights[:, 0, : self.rows] if self.rows else np.zeros((k, 0))
        gamma = None if params.gamma is None else params.gamma[:, 0, :]
        self.tree.add_bound_leaves(nodes[dead], weights, gamma, alpha, np.maximum(beta, 0.0), unstable)

    def lp_leaf(self, node: int, farkas: tuple[np.ndarray, np.ndarray]) -> None:
        self.tree.add_lp_leaf(node, *farkas)

    def root(self, root: RootBounds) -> None:
        self.tree.bounds_at = "root"
        for rows in root.interm_rows:
            self.tree.add_interm_rows(*rows)


def recorder_for(tree: ProofTree | None, chain: ReluChain, rows: int) -> Recorder:
    """The recorder of a search: into ``tree``, or :data:`NO_PROOF` when it is None."""
    return NO_PROOF if tree is None else ProofRecorder(tree, chain, rows)
