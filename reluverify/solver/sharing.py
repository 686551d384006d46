"""One search's open work shared among worker processes, stopping all at the first counterexample.

A *shareable search* (input splitting's boxes, ReLU branch and bound's sub-problems) implements
:class:`~reluverify.solver.search.ShareableSearch`: it has a pool of open work items, can run for a
while, give away part of its pool as plain data, and take work given away by another copy of itself.

:func:`run_shared` grows the pool in the calling process until every worker can have a share,
then forks ``jobs`` workers, each with a copy of the search and one share. A worker that runs dry
tells the parent, which asks the worker with the most open items for half of them and forwards
the answer (work stealing). The search is over when every worker is idle with no transfer under
way (``unsat`` unless some item was left undecided), at the first final outcome of a worker (the
others are killed at once), or at the deadline. Workers exchange only plain data (arrays, dicts);
each worker's statistics are merged into the caller's at the end.

Invariant: every open item is in exactly one place at any time: a worker's pool, a message in
flight, or being processed; so the union of the workers' pools plus what they refuted is the
caller's pool at the fork, and ``unsat`` from all of them is ``unsat`` for the search.

Checkpoints (a search with a ``checkpoint``, :mod:`~reluverify.solver.checkpoint`): every
``checkpoint.every`` seconds, and once more at a timeout, the parent takes a *consistent snapshot*.
It starts no new share request, waits until none is in flight (every ``request`` answered and its
``items`` forwarded), then asks every worker for a copy of its pool and its refuted share. A pipe
delivers in order, so items forwarded before the ask are in the receiver's pool when it answers; no
item moves between workers while the answers come, so the copies are the items open at the fork
less those refuted since, each once, and the share refuted is the share before the fork plus the
workers' (the invariant above). Workers never save; the parent saves the snapshot.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.connection import wait

from reluverify.solver.options import SolverOptions
from reluverify.solver.progress import Throttle
from reluverify.solver.search import Recipe, SearchOutcome, ShareableSearch, grow

SLICE_S = 0.25
"""Seconds of work between two looks at the messages (a worker answers a request within this)."""
FINAL_SNAPSHOT_S = 3.0
"""At a timeout, a search with a checkpoint waits at most this long for the workers' last snapshot."""


def share(search: ShareableSearch, options: SolverOptions, recipe: Recipe | None, deadline: float | None,
          progress: Throttle | None, strategy: str) -> SearchOutcome:
    """Run ``search`` on ``options.parallel.jobs`` workers: the workers of a Ray cluster with the ``ray``
    backend (:func:`~reluverify.solver.distributed.run_distributed`; they build their copies from
    ``recipe``), else, or without a recipe, forked processes of this machine (:func:`run_shared`)."""
    parallel = options.parallel
    if parallel.backend == "ray" and recipe is not None:
        from reluverify.solver.distributed import run_distributed

        return run_distributed(search, recipe, parallel.jobs, deadline, progress, strategy, parallel.address,
                               parallel.blas_threads)
    return run_shared(search, parallel.jobs, deadline, progress, strategy)


def run_shared(search: ShareableSearch, jobs: int, deadline: float | None, progress: Throttle | None = None,
               strategy: str = "") -> SearchOutcome:
    """Run ``search`` (see the module docstring) on ``jobs`` worker processes."""
    progress = progress or Throttle(None)
    # enough open items that every worker can start with some
    outcome = grow(search, 2 * jobs)
    if outcome is not None:
        return outcome
    if search.open_count() == 0:
        return search.finish()
    before = search.proven
    parts = search.split_off(jobs)
    context = multiprocessing.get_context("fork")
    workers = []
    for part in parts:
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_worker, args=(search, part, child_end), daemon=True)
        process.start()
        child_end.close()
        workers.append(_Handle(process, parent_end))
    try:
        return _coordinate(search, workers, deadline, progress, strategy, before)
    finally:
        for w in workers:
            if w.process.is_alive():
                w.process.kill()
            w.process.join(timeout=5)
            w.connection.close()


class _Snapshot:
    """A consistent snapshot being taken: ``wanted`` (no new share request), ``asked`` (every worker asked),
    and the workers' ``answers``: (pool copy, proven, undecided, items done)."""

    def __init__(self) -> None:
        self.wanted = self.asked = False
        self.answers: dict = {}


class _Handle:
    def __init__(self, process, connection) -> None:
        self.process, self.connection = process, connection
        self.open = 1
        self.done = 0
        self.proven = 0.0
        self.idle = False
        self.asked: "_Handle | None" = None  # the idle worker a share requested from this one goes to
        self.waiting = False  # this idle worker waits for a share
        self.undecided: list[str] = []
        self.statistics = None


def _coordinate(search, workers: list[_Handle], deadline, progress: Throttle, strategy: str, before: float) -> SearchOutcome:
    by_connection = {w.connection: w for w in workers}
    checkpoint = getattr(search, "checkpoint", None)
    final: SearchOutcome | None = None
    ending: tuple[SearchOutcome, float] | None = None  # the outcome, and until when the last snapshot may take
    snapshot = _Snapshot()
    while True:
        if ending is None and deadline is not None and time.monotonic() > deadline:
            final = SearchOutcome("timeout", reason="time budget exhausted with the work shared among processes")
            if checkpoint is None:
                break
            ending = (final, time.monotonic() + FINAL_SNAPSHOT_S)
            final = None
        if ending is not None and time.monotonic() > ending[1]:
            final = ending[0]  # no last snapshot in time: the previous one stays
            break
        ready = wait(list(by_connection), timeout=SLICE_S)
        for connection in ready:
            w = by_connection[connection]
            try:
                kind, *data = connection.recv()
            except (EOFError, OSError):
                final = SearchOutcome("unknown", reason=f"a worker process died (exit code {w.process.exitcode})")
                break
            if kind == "status":
                w.open, w.done, w.proven = data
                w.idle = False
            elif kind == "idle":
                w.idle, w.open, w.undecided = True, 0, data[0]
                w.done, w.proven = data[1], data[2]
            elif kind == "share":
                receiver, w.asked = w.asked, None
                receiver.waiting = False
                if data[0] is not None:
                    receiver.connection.send(("items", data[0]))
                    receiver.idle = False
                    receiver.open = -1  # unknown until its next status
                w.open = data[1]
            elif kind == "snapshot":
                snapshot.answers[w] = data
            elif kind == "outcome":
                if data[0].status == "sat" or checkpoint is None:
                    final = data[0]
                    break
                if ending is None:  # a worker's timeout or spent budget: the last snapshot first
                    ending = (data[0], time.monotonic() + FINAL_SNAPSHOT_S)
        if final is not None:
            break
        if checkpoint is not None and not snapshot.wanted and (ending is not None or checkpoint.due()):
            snapshot.wanted = True
        if snapshot.wanted:
            # no new share request: once none is in flight, every worker is asked for its pool
            if not snapshot.asked and not any(w.asked is not None for w in workers):
                for w in workers:
                    w.connection.send(("snapshot",))
                snapshot.asked = True
            if snapshot.asked and len(snapshot.answers) == len(workers):
                answers = snapshot.answers.values()
                search.save([a[0] for a in answers], before + sum(a[1] for a in answers),
                            search.undecided + [u for a in answers for u in a[2]], _done(search) + sum(a[3] for a in answers))
                snapshot = _Snapshot()
                if ending is not None:
                    final = ending[0]
                    break
        else:
            for receiver in workers:
                if receiver.idle and not receiver.waiting:
                    donors = [d for d in workers if not d.idle and d.asked is None and d.open != 0]
                    if not donors:
                        break
                    donor = max(donors, key=lambda d: d.open)
                    donor.connection.send(("request",))
                    donor.asked = receiver
                    receiver.waiting = True
        if ending is None and all(w.idle for w in workers) and not any(w.asked is not None for w in workers):
            break
        if progress:
            progress.report(strategy, search.statistics.work_items + sum(w.done for w in workers),
                            sum(max(w.open, 0) for w in workers), before + sum(w.proven for w in workers))
    # collect every worker's statistics (a worker that is killed keeps its own)
    for w in workers:
        if w.process.is_alive():
            try:
                w.connection.send(("stop",))
            except (BrokenPipeError, OSError):
                continue
    end = time.monotonic() + 2.0
    pending = [w for w in workers if w.process.is_alive()]
    while pending and time.monotonic() < end:
        for connection in wait([w.connection for w in pending], timeout=max(0.0, end - time.monotonic())):
            w = by_connection[connection]
            try:
                kind, *data = connection.recv()
            except (EOFError, OSError):
                pending.remove(w)
                continue
            if kind == "stats":
                w.statistics, w.undecided = data[0], data[1]
                pending.remove(w)
    for w in workers:
        if w.statistics is not None:
            search.statistics.merge(w.statistics)
        search.undecided.extend(w.undecided)
    search.proven = before + sum(w.proven for w in workers)
    if final is not None:
        return final
    return search.finish()


def _worker(search, part, connection) -> None:
    """A worker's loop (in the forked process): work, answer requests, report when dry."""
    from reluverify.solver.progress import _OBSERVER

    _OBSERVER.set(None)
    search.reset_statistics()
    search.checkpoint = None  # the parent saves the snapshots
    search.add(part)
    try:
        while True:
            while connection.poll():
                kind, *data = connection.recv()
                if kind == "items":
                    search.add(data[0])
                elif kind == "request":
                    connection.send(("share", _give_half(search), search.open_count()))
                elif kind == "snapshot":
                    connection.send(_snapshot(search))
                elif kind == "stop":
                    connection.send(("stats", search.statistics, search.undecided))
                    return
            if search.open_count():
                outcome = search.work(SLICE_S)
                if outcome is not None:
                    connection.send(("outcome", outcome))
                    _wait_for_stop(search, connection)
                    return
                connection.send(("status", search.open_count(), _done(search), search.proven))
            else:
                connection.send(("idle", search.undecided, _done(search), search.proven))
                connection.poll(None)
    except (EOFError, BrokenPipeError, OSError, KeyboardInterrupt):
        return


def _give_half(search):
    """Half of ``search``'s open items as a payload (None when it has fewer than two); it keeps the
    other half. ``split_off`` takes the whole pool out, so the kept half goes back in: the items
    given plus the items kept are the items it had (the invariant of the module docstring)."""
    if search.open_count() < 2:
        return None
    kept, given = search.split_off(2)
    search.add(kept)
    return given


def _done(search) -> int:
    return search.statistics.work_items


def _snapshot(search) -> tuple:
    """A worker's answer to a snapshot request: a copy of its pool, its refuted share and undecided reasons,
    and its items done (taken between two slices of work, a consistent pair)."""
    return ("snapshot", search.snapshot(), search.proven, list(search.undecided), _done(search))


def _wait_for_stop(search, connection) -> None:
    """After a final outcome: answer until the parent says stop (a share request gets nothing; items in
    flight are still taken, and a snapshot request answered, so that a last snapshot is whole)."""
    while True:
        kind, *data = connection.recv()
        if kind == "stop":
            connection.send(("stats", search.statistics, search.undecided))
            return
        if kind == "request":
            connection.send(("share", None, 0))
        elif kind == "items":
            search.add(data[0])
        elif kind == "snapshot":
            connection.send(_snapshot(search))
