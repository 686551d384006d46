"""Batches of open boxes (:class:`Boxes`), the stack that holds them (:class:`BoxStack`), a batch with its
bounds (:class:`Bounded`), and the shrinking of boxes by linear input constraints (:func:`tighten_boxes`).

Invariant: every array of a batch has one row per box, in the same order; each selection (take, the
children of a split, concatenation) applies to all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from reluverify.solver.bounds.deeppoly import LayerBounds
from reluverify.solver.checkpoint import fits

INITIAL_CAPACITY = 64


@dataclass
class Boxes:
    """A batch of B boxes over n inputs, for D targets; row ``b`` of every array describes box ``b``.

    ``lower``, ``upper`` (B, n): the box. ``alive`` (B, D): the targets not yet refuted on it.
    ``depth`` (B,): the splits that made it (it holds ``2 ** -depth`` of the search box). ``node``
    (B, D): its node in each target's proof tree (0 when no proof is recorded). ``pre_lower``,
    ``pre_upper`` (B, N): pre-activation bounds of the N ReLUs that hold on the box (N = 0 when none
    are kept). ``params`` (B, D, P) float32: per target, the packed ascent parameters
    (:class:`~reluverify.solver.input_split.parameters.ParameterLayout`) its parent ended with, and
    ``warm`` (B, D) the targets that have them (P = 0 when none are kept).
    """

    lower: np.ndarray
    upper: np.ndarray
    alive: np.ndarray
    depth: np.ndarray
    node: np.ndarray
    pre_lower: np.ndarray
    pre_upper: np.ndarray
    params: np.ndarray
    warm: np.ndarray

    @classmethod
    def fresh(cls, lower: np.ndarray, upper: np.ndarray, targets: int, relus: int = 0, params: int = 0) -> "Boxes":
        """Boxes (k, n) nothing is known on yet: every target alive, depth 0, at the proof trees' root,
        with ``relus`` unbounded pre-activations and ``params`` zero parameters per target kept."""
        k = lower.shape[0]
        return cls(lower, upper, np.ones((k, targets), dtype=bool), np.zeros(k, dtype=np.int64),
                   np.zeros((k, targets), dtype=np.int64), np.full((k, relus), -np.inf), np.full((k, relus), np.inf),
                   np.zeros((k, targets, params), dtype=np.float32), np.zeros((k, targets), dtype=bool))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def copy(self) -> "Boxes":
        return Boxes(*(a.copy() for a in self.arrays()))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fields by name (a checkpoint's arrays, :mod:`~reluverify.solver.checkpoint`)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray], template: "Boxes") -> "Boxes | None":
        """The boxes of :meth:`to_arrays` for a search whose boxes are laid out as ``template``'s, or None
        when they are not. Kept pre-activation bounds or parameters of another width than ``template``'s
        (they depend on the options) are dropped: unbounded, no parameters."""
        arrays = dict(arrays)
        like = template.to_arrays()
        rows = next(iter(arrays.values())).shape[0] if arrays else 0
        fresh = Boxes.fresh(np.zeros((rows, 0)), np.zeros((rows, 0)), template.alive.shape[1],
                            template.pre_lower.shape[1], template.params.shape[2]).to_arrays()
        for names in (("pre_lower", "pre_upper"), ("params", "warm")):
            if any(name in arrays and arrays[name].shape[1:] != like[name].shape[1:] for name in names):
                for name in names:
                    arrays[name] = fresh[name]
        return Boxes(**arrays) if fits(arrays, like) else None

    def __len__(self) -> int:
        return self.lower.shape[0]

    def take(self, index) -> "Boxes":
        """The boxes ``index`` selects (an index array, a mask or a slice), every field alike."""
        return Boxes(*(a[index] for a in self.arrays()))

    @staticmethod
    def concatenate(parts: list["Boxes"]) -> "Boxes":
        return Boxes(*(np.concatenate(arrays) for arrays in zip(*(p.arrays() for p in parts))))

    def with_pre_bounds(self, bounds: LayerBounds) -> "Boxes":
        """The boxes with ``bounds`` (valid on them) as their pre-activation bounds."""
        k = len(self)
        flat = [np.concatenate(b, axis=1) if b else np.zeros((k, 0)) for b in (bounds.pre_lower, bounds.pre_upper)]
        return replace(self, pre_lower=flat[0], pre_upper=flat[1])

    def middle(self, dim: np.ndarray) -> np.ndarray:
        """Per box, the midpoint of its side along input ``dim[b]``."""
        rows = np.arange(len(self))
        return 0.5 * (self.lower[rows, dim] + self.upper[rows, dim])

    def children(self, dim: np.ndarray, middle: np.ndarray, lower_node: np.ndarray, upper_node: np.ndarray) -> "Boxes":
        """Each box halved at ``middle`` along ``dim``: all lower halves (at ``lower_node``), then all upper
        halves (at ``upper_node``), one split deeper; the other fields are the parent's."""
        rows = np.arange(len(self))
        left_upper = self.upper.copy()
        left_upper[rows, dim] = middle
        right_lower = self.lower.copy()
        right_lower[rows, dim] = middle
        twice = Boxes.concatenate([self, self])
        return replace(twice, lower=np.concatenate([self.lower, right_lower]),
                       upper=np.concatenate([left_upper, self.upper]), depth=twice.depth + 1,
                       node=np.concatenate([lower_node, upper_node]))


class BoxStack:
    """A LIFO of boxes in growing arrays: the first ``size`` rows of ``held``, the top last."""

    def __init__(self, template: Boxes) -> None:
        """An empty stack for boxes with the fields' widths and types of ``template``."""
        self.held = Boxes(*(np.zeros((INITIAL_CAPACITY,) + a.shape[1:], dtype=a.dtype) for a in template.arrays()))
        self.size = 0

    def push(self, boxes: Boxes) -> None:
        k = len(boxes)
        while self.size + k > len(self.held):
            self.held = Boxes(*(np.concatenate([a, np.zeros_like(a)]) for a in self.held.arrays()))
        for a, new in zip(self.held.arrays(), boxes.arrays()):
            a[self.size : self.size + k] = new
        self.size += k

    def pop(self, k: int) -> Boxes:
        """The top ``k`` boxes (fewer if fewer are held), as copies, in the order they were pushed."""
        k = min(k, self.size)
        self.size -= k
        return Boxes(*(a[self.size : self.size + k].copy() for a in self.held.arrays()))


@dataclass
class Bounded:
    """Boxes with what bounding them found: ``layer``, every layer's bounds on each box, and per row of the
    targets the input coefficients ``coef`` (B, R, n) and the value ``lower`` (B, R) of the row's linear
    lower bound over the box."""

    boxes: Boxes
    layer: LayerBounds
    coef: np.ndarray
    lower: np.ndarray

    def take(self, index: np.ndarray) -> "Bounded":
        layer = self.layer
        return Bounded(
            self.boxes.take(index),
            LayerBounds([b[index] for b in layer.pre_lower], [b[index] for b in layer.pre_upper],
                        layer.out_lower[index], layer.out_upper[index], layer.infeasible[index]),
            self.coef[index],
            self.lower[index],
        )


def tighten_boxes(lower: np.ndarray, upper: np.ndarray, rows: np.ndarray, rhs: np.ndarray, rounds: int = 2):
    """Shrink boxes (B, n) to the hull of their points that satisfy ``rows @ x <= rhs``.

    Interval propagation: ``a_j x_j <= rhs - sum_{k != j} min(a_k x_k)`` for every row and
    variable. Sound: no point of a box that satisfies the rows is cut. Returns the new
    bounds and a mask of boxes found empty.
    """
    lo, hi = lower.copy(), upper.copy()
    if rows.shape[0] == 0:
        return lo, hi, np.zeros(lo.shape[0], dtype=bool)
    a = rows[None, :, :]  # (1, R, n)
    nonzero = a != 0
    safe = np.where(nonzero, a, 1.0)
    for _ in range(rounds):
        contribution = np.minimum(a * lo[:, None, :], a * hi[:, None, :])  # (B, R, n)
        rest = contribution.sum(axis=2, keepdims=True) - contribution
        bound = (rhs[None, :, None] - rest) / safe
        slack = 1e-12 * (1.0 + np.abs(bound))
        new_hi = np.where(a > 0, bound + slack, np.inf).min(axis=1)
        new_lo = np.where(a < 0, bound - slack, -np.inf).max(axis=1)
        lo, hi = np.maximum(lo, new_lo), np.minimum(hi, new_hi)
    empty = np.any(lo > hi, axis=1)
    hi = np.maximum(hi, lo)
    return lo, hi, empty
