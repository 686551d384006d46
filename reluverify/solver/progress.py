"""Progress of one solver run, for people watching a long query (the CLI's live line).

The searches report a :class:`Progress` value through a callback that the caller passes to
:func:`reluverify.solver.solve`; the callback never influences the search, and
:class:`Throttle` keeps the searches from calling it more than a few times a second.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator


@dataclass(frozen=True)
class Progress:
    """Where a search stands.

    ``proven`` is the fraction of the work already refuted: of the input volume for input
    splitting (boxes refuted, weighted by their volume), of the search tree for ReLU branch and
    bound (a sub-problem at depth ``d`` weighs ``2 ** -d``). ``best_bound`` is the lowest bound of
    an open box or sub-problem over its disjunct's rows (positive: it is refuted), when known.
    """

    strategy: str
    elapsed: float
    done: int
    open: int
    proven: float
    best_bound: float | None = None
    disjunct: int | None = None
    bracket: tuple[float, float] | None = None
    """A search for a largest value (``max-eps``): the (lower, upper) bracket it has reached."""


ProgressCallback = Callable[[Progress], None]

_OBSERVER: ContextVar[ProgressCallback | None] = ContextVar("reluverify_progress_observer", default=None)


@contextmanager
def observe(callback: ProgressCallback | None) -> Iterator[None]:
    """Within the block, every :func:`reluverify.solver.solve` in this process that is given no
    callback of its own reports to ``callback`` (how the command line shows a live line without
    passing it through every property). Worker processes start without an observer."""
    token = _OBSERVER.set(callback)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def observer() -> ProgressCallback | None:
    return _OBSERVER.get()


class Throttle:
    """Calls ``callback`` at most every ``interval`` seconds (and never when it is None)."""

    def __init__(self, callback: ProgressCallback | None, interval: float = 0.25) -> None:
        self.callback = callback
        self.interval = interval
        self.started = time.monotonic()
        self.last = -float("inf")

    def __bool__(self) -> bool:
        return self.callback is not None

    def due(self) -> bool:
        return self.callback is not None and time.monotonic() - self.last >= self.interval

    def report(self, strategy: str, done: int, open_: int, proven: float, best_bound=None, disjunct=None, force=False,
               bracket=None):
        if self.callback is None or not (force or self.due()):
            return
        self.last = time.monotonic()
        self.callback(Progress(strategy, self.last - self.started, int(done), int(open_), float(proven),
                               None if best_bound is None else float(best_bound), disjunct, bracket))
