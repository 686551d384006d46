"""What the searches share: their outcome, the verdict of an exhausted search, and the protocol of a
search whose open work can be shared among processes.

A search (input splitting's boxes, ReLU branch and bound's sub-problems, a Reluplex run) ends in a
:class:`SearchOutcome`: ``sat`` with the inputs of a candidate the search confirmed, ``unsat``,
``timeout`` or ``unknown`` with a reason. ``disjunct`` names the disjunct of the *query* the
inputs satisfy (a strategy translates a search's own target positions before it reports).

A search that keeps a pool of open work items (boxes, sub-problems) and can hand part of it to a
copy of itself in another process implements :class:`ShareableSearch`;
:func:`reluverify.solver.sharing.run_shared` runs one on several processes of this machine, and
:func:`reluverify.solver.distributed.run_distributed` on the workers of a Ray cluster, each of which
builds its copy from a :class:`Recipe` (plain data, never a live solver object).

Invariant of every search: each open item weighs ``2^-d`` (``d`` the splits that made it), and the
items refuted plus the items open sum to 1. :func:`exhausted` answers ``unsat`` only when the
refuted share is 1, so work lost anywhere can never read as a proof.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from reluverify.solver.result import Statistics


@dataclass
class SearchOutcome:
    status: str  # "sat", "unsat", "timeout", "unknown"
    inputs: np.ndarray | None = None
    disjunct: int | None = None
    reason: str = ""


def exhausted(proven: float, undecided: list[str]) -> SearchOutcome:
    """The outcome of a search whose open work ran out: ``unknown`` if some piece was left undecided,
    else ``unsat`` only if the pieces refuted cover the whole tree (``proven``: each piece ``d``
    splits deep weighs ``2^-d``, so a complete search sums to 1). A share short of 1 means work was
    lost somewhere (a bug), which must never read as a proof."""
    if undecided:
        return SearchOutcome("unknown", reason=undecided[0])
    if abs(proven - 1.0) > 1e-6:
        return SearchOutcome("unknown", reason=f"internal error: the search refuted {proven:.6f} of its tree, not all of it")
    return SearchOutcome("unsat")


class ShareableSearch(Protocol):
    """A search with a pool of open work items that processes can share (plain data only).

    Contract (what :func:`~reluverify.solver.sharing.run_shared` relies on): ``split_off`` takes
    the *whole* pool out and ``add`` puts a payload back, so the items given away plus the items
    kept are always the items held; ``proven`` grows by ``2^-d`` for every item of depth ``d``
    refuted, and ``undecided`` collects the reason of every item left undecided. Between two calls of
    :meth:`work` (also one that ended in a timeout) the pool and ``proven`` are a consistent pair: the
    pool's weight plus ``proven`` is the share of the tree the search started with.
    """

    statistics: Statistics
    deadline: float | None
    """``time.monotonic()`` past which :meth:`work` ends with ``timeout`` (None: no limit)."""
    proven: float
    """The share of the search tree refuted so far."""
    undecided: list[str]
    """Reasons of the items left undecided."""

    def open_count(self) -> int:
        """Items waiting."""

    def work(self, seconds: float) -> SearchOutcome | None:
        """Process items for about ``seconds`` (or until the pool is empty); an outcome (``sat`` with
        its counterexample, ``timeout``, ``unknown``) ends the whole search."""

    def split_off(self, parts: int) -> list[Any]:
        """The pool, taken out and cut into ``parts`` payloads of similar work."""

    def add(self, payload: Any) -> None:
        """Take a payload (from :meth:`split_off` or :meth:`take` of this search or of a copy of it)."""

    def take(self, count: int) -> Any:
        """At most ``count`` items, the ones the search would process next, out of the pool as a payload."""

    def reset_statistics(self) -> None:
        """Count from zero (in a worker process: the caller keeps what was counted before the fork)."""

    def finish(self) -> SearchOutcome:
        """The verdict once no work is left: :func:`exhausted` of ``proven`` and ``undecided``."""

    checkpoint: Any
    """The search's entry in a checkpoint file (:class:`~reluverify.solver.checkpoint.SearchCheckpoint`),
    or None; a worker process gets None (the caller saves the snapshots of a shared search)."""

    def snapshot(self) -> Any:
        """A copy of the pool as one payload (the pool is unchanged), taken between two pieces of work:
        with ``proven``, a consistent pair."""

    def save(self, payloads: list[Any], proven: float, undecided: list[str], done: int) -> None:
        """Save to ``checkpoint`` the open items ``payloads`` (of :meth:`snapshot`) and the refuted share
        ``proven`` taken with them, the reasons ``undecided`` and the count of items ``done``."""

    def save_now(self) -> None:
        """Save this process's pool and ``proven`` (between two pieces of work: a consistent pair) to
        ``checkpoint``, if the search keeps one."""


def grow(search: ShareableSearch, items: int, seconds: float = 0.0, step: float = 0.05) -> SearchOutcome | None:
    """Work on ``search`` in this process for at least ``seconds`` and until its pool holds ``items``
    items (or runs out), before it is shared; a final outcome if one came. An outcome other than
    ``sat`` (a timeout, a spent budget) first saves the search's open work to its checkpoint, if it
    keeps one, as a search in one process does."""
    until = time.monotonic() + seconds
    while search.open_count() and (search.open_count() < items or time.monotonic() < until):
        outcome = search.work(step)
        if outcome is not None:
            if outcome.status != "sat":
                search.save_now()
            return outcome
    return None


@dataclass(frozen=True)
class Recipe:
    """How a worker anywhere builds a copy of a search with an empty pool: the function ``builder``
    (``"package.module:function"``) called with ``arguments``, which are plain data (the query,
    options, arrays, numbers), so a recipe can travel to another machine; the copy then takes the
    payloads of the original (:meth:`ShareableSearch.take`)."""

    builder: str
    arguments: tuple

    def build(self) -> ShareableSearch:
        module, name = self.builder.split(":")
        return getattr(importlib.import_module(module), name)(*self.arguments)
