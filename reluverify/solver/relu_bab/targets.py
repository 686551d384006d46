"""What one search bounds: its targets (the disjuncts of one box) and its items, the open
(sub-problem, target) pairs that a batch bounds.

A sub-problem keeps per target its optimised parameters, shaped (B, T, ...) for B sub-problems and
T targets; the bound engine takes one objective per batch entry, shaped (items, 1, ...). An item
is one open pair; :func:`item_params` gathers the items' parameters from their sub-problems and
:func:`scatter_params` writes them back, so a batch is bounded for its open pairs only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify.solver.bounds import alpha_crown


@dataclass(frozen=True)
class Disjunction:
    """One disjunct as the search sees it: rows over ``[v; y]`` (``v`` = the query's input variables)."""

    rows: np.ndarray  # (R, n_v + m)
    rhs: np.ndarray  # (R,)

    def objective(self, num_v: int) -> alpha_crown.Objective:
        """The rows as an objective; a disjunct without rows (true on its whole box) is ``0 <= 0``."""
        rows, rhs = (self.rows, self.rhs) if self.rhs.size else (np.zeros((1, self.rows.shape[1])), np.zeros(1))
        return alpha_crown.Objective(rows[:, num_v:], rows[:, :num_v], rhs)


def objectives(targets: list[Disjunction], num_v: int) -> alpha_crown.Objective:
    """The targets' rows as one per-batch objective (entry ``t``: target ``t``)."""
    return alpha_crown.Objective.stacked([t.objective(num_v) for t in targets])


def repeat_region(region: alpha_crown.Region, size: int) -> alpha_crown.Region:
    """``size`` copies of a region that is a batch of one (one per sub-problem or item)."""
    return alpha_crown.Region(np.repeat(region.lower, size, axis=0), np.repeat(region.upper, size, axis=0),
                              region.rows, region.rhs)


@dataclass(frozen=True)
class Items:
    """The open (sub-problem, target) pairs of a batch, grouped by sub-problem: ``owner`` (sub-problem)
    and ``target`` per item, and ``first`` (B,), each sub-problem's first item (every sub-problem has one)."""

    owner: np.ndarray
    target: np.ndarray
    first: np.ndarray

    @staticmethod
    def of(open_: np.ndarray) -> "Items":
        """The items of an open mask (B, T) with at least one open target per row."""
        owner, target = np.nonzero(open_)
        first = np.searchsorted(owner, np.arange(open_.shape[0]))
        return Items(owner, target, first)

    @property
    def size(self) -> int:
        return int(self.owner.size)

    def all_of(self, flags: np.ndarray) -> np.ndarray:
        """Per sub-problem: ``flags`` (items, ...) holds for every one of its items."""
        return np.logical_and.reduceat(flags, self.first, axis=0)

    def min_of(self, values: np.ndarray) -> np.ndarray:
        """Per sub-problem: the minimum of ``values`` (items, ...) over its items."""
        return np.minimum.reduceat(values, self.first, axis=0)


def item_params(params: alpha_crown.Parameters, items: Items) -> alpha_crown.Parameters:
    """Per item, its sub-problem's parameters for its target (S = 1)."""
    o, t = items.owner, items.target
    return alpha_crown.Parameters(
        [a[o, t][:, None] for a in params.alpha],
        None if params.beta is None else [b[o, t][:, None] for b in params.beta],
        None if params.gamma is None else params.gamma[o, t][:, None],
        params.weights[o, t][:, None],
    )


def scatter_params(target: alpha_crown.Parameters, items: Items, source: alpha_crown.Parameters) -> None:
    """Write the items' parameters (S = 1) into their sub-problems' rows of ``target`` (B, T, ...)."""
    o, t = items.owner, items.target
    for a, b in zip(target.alpha, source.alpha):
        a[o, t] = b[:, 0]
    if target.beta is not None:
        for a, b in zip(target.beta, source.beta):
            a[o, t] = b[:, 0]
    if target.gamma is not None:
        target.gamma[o, t] = source.gamma[:, 0]
    target.weights[o, t] = source.weights[:, 0]
