"""Recording the proof of an ``unsat`` answer as a certificate (format: docs/certificates.md).

The searches record, per disjunct, the tree of their splits and the evidence that refutes each
leaf; :class:`Certificate` assembles the trees and writes the ``.npz`` file. The checker
(``reluverify/proof_check.py``) recomputes every bound from the network and the specification; it
trusts nothing recorded here except the tree's shape, the split values and the evidence's numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

ROOT, INPUT_LOWER, INPUT_UPPER, RELU_ACTIVE, RELU_INACTIVE = 0, 1, 2, 3, 4
BOUND, LP = 0, 1
FORMAT, VERSION = "reluverify-certificate", 1


@dataclass
class ProofTree:
    """One disjunct's proof tree: nodes (node 0 is the root region) and the evidence of its leaves.

    ``bounds_at`` is ``"leaf"`` (intermediate bounds recomputed on each leaf's box: input splitting)
    or ``"root"`` (on the root box, tightened by the ``interm`` rows, then clamped by each leaf's
    phases: ReLU branch and bound).
    """

    disjunct: int
    num_rows: int  # the disjunct's rows
    num_input_rows: int
    bounds_at: str = "leaf"
    parent: list[int] = field(default_factory=lambda: [-1])
    kind: list[int] = field(default_factory=lambda: [ROOT])
    index: list[int] = field(default_factory=lambda: [-1])
    value: list[float] = field(default_factory=lambda: [0.0])
    leaf_node: list[int] = field(default_factory=list)
    leaf_kind: list[int] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    gamma: list[np.ndarray] = field(default_factory=list)
    sparse: list[tuple] = field(default_factory=list)  # (leaf, relu, alpha, beta_lower, beta_upper) arrays
    farkas: list[tuple] = field(default_factory=list)  # (leaf, row, value) arrays
    interm: list[tuple] = field(default_factory=list)  # (layer, neuron, sign, alpha rows) arrays

    def add_split(self, parent: int, kind: int, index: int, value: float = 0.0) -> int:
        """A child of ``parent`` (an input half or a ReLU phase); returns its node id."""
        self.parent.append(int(parent))
        self.kind.append(int(kind))
        self.index.append(int(index))
        self.value.append(float(value))
        return len(self.parent) - 1

    def add_input_split(self, parent: int, variable: int, value: float) -> tuple[int, int]:
        return self.add_split(parent, INPUT_LOWER, variable, value), self.add_split(parent, INPUT_UPPER, variable, value)

    def add_relu_split(self, parent: int, relu: int) -> tuple[int, int]:
        return self.add_split(parent, RELU_ACTIVE, relu), self.add_split(parent, RELU_INACTIVE, relu)

    def add_bound_leaves(self, nodes, weights, gamma, alpha=None, beta=None, unstable=None) -> None:
        """Bound evidence for several leaves: ``weights`` (k, R), ``gamma`` (k, r) or None, and the slopes
        ``alpha`` (k, N) and multipliers ``beta`` (k, N, 2) over all N ReLUs (None: heuristic slopes,
        no multipliers); a slope is recorded where ``unstable`` (k, N), a multiplier where non-zero."""
        nodes = np.asarray(nodes, dtype=np.int64).reshape(-1)
        first = len(self.leaf_node)
        self.leaf_node.extend(nodes.tolist())
        self.leaf_kind.extend([BOUND] * nodes.size)
        self.weights.append(np.asarray(weights, dtype=np.float32).reshape(nodes.size, self.num_rows))
        g = np.zeros((nodes.size, self.num_input_rows), dtype=np.float32) if gamma is None else gamma
        self.gamma.append(np.asarray(g, dtype=np.float32).reshape(nodes.size, self.num_input_rows))
        if alpha is None and beta is None:
            return
        n = alpha.shape[1]
        keep = np.zeros((nodes.size, n), dtype=bool)
        if alpha is not None and unstable is not None:
            keep |= unstable
        if beta is not None:
            keep |= np.any(beta != 0, axis=2)
        leaf, relu = np.nonzero(keep)
        a = alpha[leaf, relu] if alpha is not None else np.zeros(leaf.size)
        b = beta[leaf, relu] if beta is not None else np.zeros((leaf.size, 2))
        self.sparse.append((first + leaf, relu, a, b[:, 0], b[:, 1]))

    def add_lp_leaf(self, node: int, rows: np.ndarray, values: np.ndarray) -> None:
        leaf = len(self.leaf_node)
        self.leaf_node.append(int(node))
        self.leaf_kind.append(LP)
        self.weights.append(np.zeros((1, self.num_rows), dtype=np.float32))
        self.gamma.append(np.zeros((1, self.num_input_rows), dtype=np.float32))
        self.farkas.append((np.full(len(rows), leaf), np.asarray(rows), np.asarray(values)))

    def add_interm_rows(self, layer: int, neurons, signs, alphas) -> None:
        """Rows that tightened the root's bounds of ``layer``: ``alphas`` (k, N) slopes over all ReLUs."""
        self.interm.append((np.full(len(neurons), layer), np.asarray(neurons), np.asarray(signs), np.asarray(alphas)))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        def cat(parts, i, dtype):
            return np.concatenate([p[i] for p in parts]).astype(dtype) if parts else np.zeros(0, dtype)

        out = {
            f"{prefix}parent": np.asarray(self.parent, dtype=np.int64),
            f"{prefix}kind": np.asarray(self.kind, dtype=np.int8),
            f"{prefix}index": np.asarray(self.index, dtype=np.int64),
            f"{prefix}value": np.asarray(self.value, dtype=np.float64),
            f"{prefix}leaf_node": np.asarray(self.leaf_node, dtype=np.int64),
            f"{prefix}leaf_kind": np.asarray(self.leaf_kind, dtype=np.int8),
            f"{prefix}weights": np.concatenate(self.weights) if self.weights else np.zeros((0, self.num_rows), np.float32),
            f"{prefix}gamma": np.concatenate(self.gamma) if self.gamma else np.zeros((0, self.num_input_rows), np.float32),
            f"{prefix}sparse_leaf": cat(self.sparse, 0, np.int64),
            f"{prefix}sparse_relu": cat(self.sparse, 1, np.int64),
            f"{prefix}sparse_alpha": cat(self.sparse, 2, np.float32),
            f"{prefix}sparse_beta_lower": cat(self.sparse, 3, np.float32),
            f"{prefix}sparse_beta_upper": cat(self.sparse, 4, np.float32),
            f"{prefix}farkas_leaf": cat(self.farkas, 0, np.int64),
            f"{prefix}farkas_row": cat(self.farkas, 1, np.int64),
            f"{prefix}farkas_value": cat(self.farkas, 2, np.float64),
        }
        if self.interm:
            out[f"{prefix}interm_layer"] = cat(self.interm, 0, np.int64)
            out[f"{prefix}interm_neuron"] = cat(self.interm, 1, np.int64)
            out[f"{prefix}interm_sign"] = cat(self.interm, 2, np.int8)
            out[f"{prefix}interm_alpha"] = np.concatenate([p[3] for p in self.interm]).astype(np.float32)
        return out

    @property
    def num_leaves(self) -> int:
        return len(self.leaf_node)


@dataclass
class Certificate:
    """The proof trees of an ``unsat`` query, one per disjunct."""

    num_inputs: int
    num_network_inputs: int
    num_outputs: int
    trees: list[ProofTree]

    def header(self, network_sha256: str, spec_sha256: str) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "network_sha256": network_sha256,
            "spec_sha256": spec_sha256,
            "num_inputs": self.num_inputs,
            "num_network_inputs": self.num_network_inputs,
            "num_outputs": self.num_outputs,
            "disjuncts": len(self.trees),
            "trees": [{"disjunct": t.disjunct, "prefix": f"d{t.disjunct}_", "bounds_at": t.bounds_at} for t in self.trees],
        }

    def write(self, path: str, network_sha256: str, spec_sha256: str) -> None:
        arrays = {}
        for tree in self.trees:
            arrays.update(tree.arrays(f"d{tree.disjunct}_"))
        header = json.dumps(self.header(network_sha256, spec_sha256)).encode()
        with open(path, "wb") as handle:
            np.savez_compressed(handle, header=np.frombuffer(header, dtype=np.uint8), **arrays)

    @property
    def num_leaves(self) -> int:
        return sum(t.num_leaves for t in self.trees)
