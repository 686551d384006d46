"""The pool of open sub-problems: one row each in a set of stacked arrays.

A row holds a sub-problem's pre-activation bounds and split phases per hidden layer, its optimised
parameters per target, its bound per target (``values``, +inf where the target is refuted), their
minimum (``value``), its depth and its node in the proof tree. Rows are plain arrays, so a payload
of rows can go to another process (:mod:`~reluverify.solver.sharing`).

Invariant: every row pushed is in the pool until it is popped, whole (its arrays stay aligned), and
exactly once; the order of rows is irrelevant, rows are selected by value.
"""

from __future__ import annotations

import numpy as np

from reluverify.solver.bounds import alpha_crown

MEMORY_MB = 1024
"""The pool is drained depth first above this size; at 1.5 times it the search stops with ``unknown``."""


class Pool:
    """Sub-problems as stacked arrays (one row each); order is irrelevant, selection is by value."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.size = 0

    def push(self, arrays: dict[str, np.ndarray]) -> None:
        k = next(iter(arrays.values())).shape[0]
        if k == 0:
            return
        if not self.arrays:
            self.arrays = {name: np.empty((max(64, 2 * k),) + a.shape[1:], a.dtype) for name, a in arrays.items()}
        capacity = next(iter(self.arrays.values())).shape[0]
        if self.size + k > capacity:
            grow = max(capacity, k)
            self.arrays = {
                name: np.concatenate([a, np.empty((grow,) + a.shape[1:], a.dtype)]) for name, a in self.arrays.items()
            }
        for name, a in arrays.items():
            self.arrays[name][self.size : self.size + k] = a
        self.size += k

    def pop(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """Remove and return the rows ``index`` (the rows at the end move into the holes)."""
        index = np.asarray(index)
        out = {name: a[index] for name, a in self.arrays.items()}  # copies (fancy indexing)
        size = self.size - index.size
        taken = np.zeros(self.size, dtype=bool)
        taken[index] = True
        holes = np.flatnonzero(taken[:size])  # taken rows that stay inside the pool's new size
        tail = size + np.flatnonzero(~taken[size:])  # rows kept beyond it: as many as the holes
        for a in self.arrays.values():
            a[holes] = a[tail]
        self.size = size
        return out

    def view(self, name: str) -> np.ndarray:
        return self.arrays[name][: self.size] if self.arrays else np.zeros(0)

    @property
    def nbytes(self) -> int:
        if not self.arrays or not self.size:
            return 0
        capacity = next(iter(self.arrays.values())).shape[0]
        return sum(a.nbytes for a in self.arrays.values()) * self.size // capacity

    @property
    def outgrown(self) -> bool:
        """The pool holds more than 1.5 times :data:`MEMORY_MB`: the search must stop."""
        return self.nbytes > 1.5 * (MEMORY_MB * 2**20)

    def select(self, batch: int) -> dict[str, np.ndarray]:
        """Pop ``batch`` rows: the lowest bounds, or the deepest when the pool is above :data:`MEMORY_MB`
        (children are smaller than their parents' subtrees: depth first drains it)."""
        key = -self.view("depth") if self.nbytes > MEMORY_MB * 2**20 else self.view("value")
        index = np.argpartition(key, batch - 1)[:batch] if batch < self.size else np.arange(self.size)
        return self.pop(index)


def pack(relaxation: alpha_crown.Relaxation, params: alpha_crown.Parameters, values, depth, node) -> dict[str, np.ndarray]:
    """Sub-problems as pool rows: bounds and splits (B, n_j), per target parameters (B, T, ...) and
    bounds ``values`` (B, T; +inf where the target is refuted), and ``value`` (B,), their minimum."""
    arrays = {"value": values.min(axis=1), "values": values, "depth": depth, "node": node}
    for j, (lo, hi, s, a) in enumerate(zip(relaxation.lower, relaxation.upper, relaxation.split, params.alpha)):
        arrays[f"lower{j}"], arrays[f"upper{j}"], arrays[f"split{j}"] = lo, hi, s
        arrays[f"alpha{j}"] = a
        arrays[f"beta{j}"] = params.beta[j]
    if params.gamma is not None:
        arrays["gamma"] = params.gamma
    arrays["weights"] = params.weights
    return arrays


def unpack(arrays: dict[str, np.ndarray], layers: int) -> tuple[alpha_crown.Relaxation, alpha_crown.Parameters]:
    """The rows of :func:`pack` (or of :meth:`Pool.pop`) as a relaxation and parameters again."""
    relaxation = alpha_crown.Relaxation(
        [arrays[f"lower{j}"] for j in range(layers)],
        [arrays[f"upper{j}"] for j in range(layers)],
        [arrays[f"split{j}"] for j in range(layers)],
        arrays["value"].shape[0],
    )
    params = alpha_crown.Parameters(
        [arrays[f"alpha{j}"] for j in range(layers)],
        [arrays[f"beta{j}"] for j in range(layers)],
        arrays.get("gamma"),
        arrays["weights"],
    )
    return relaxation, params
