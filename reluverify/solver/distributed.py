"""One search's open work spread over the workers of a Ray cluster (any number of nodes).

The calling process coordinates: it searches alone for :data:`ALONE_S` seconds and until the pool
holds two items a worker (most small searches end there), then keeps the search's pool and hands out
*leases*. A worker is a
Ray actor that builds its own copy of the search from a :class:`~reluverify.solver.search.Recipe`
(plain data: never a live solver object), then serves leases: it takes a lease (the pool's most
promising items, :meth:`~reluverify.solver.search.ShareableSearch.take`), works on it and on its
descendants for about :data:`LEASE_S` seconds, and answers with what is still open of it (a
payload), the share of the tree it refuted, the reasons of items it left undecided, its statistics
and a final outcome if it reached one. The coordinator puts the open rest back in the pool, so the
next lease is again the best of the whole search (best-first across every worker), and leases again.

Invariant: every open item is in the coordinator's pool or in exactly one lease in flight, and the
items of a lease count as refuted only when its answer comes back, together with what is left of
it. So a worker lost mid-lease (its node killed, its process ended) loses nothing: its lease goes
back to the pool whole and another worker takes it; the search answers ``unsat`` only when the pool
is empty, no lease is out and the refuted share is exactly 1
(:func:`~reluverify.solver.search.exhausted`). The first final outcome of a worker (``sat``, which
the caller confirms again with onnxruntime; ``unknown``; ``timeout``) ends the search; leases still
out then finish unheeded.

A search with a checkpoint (:mod:`~reluverify.solver.checkpoint`) saves every ``checkpoint.every``
seconds, and at a timeout, its pool together with every lease in flight: by the invariant above that
is all its open work, consistent with the share refuted so far.

The workers stay up for the life of the process (:data:`_WORKERS`), so the searches of one query
(one per input box) pay for starting them once; each worker keeps the copy of the search it is
serving and builds a new one when a lease of another search comes.
"""

from __future__ import annotations

import importlib
import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

from reluverify.ray_cluster import connect
from reluverify.solver.progress import Throttle
from reluverify.solver.result import Statistics
from reluverify.solver.search import Recipe, SearchOutcome, ShareableSearch, grow

LEASE_S = 1.0
"""Seconds a worker works on a lease before it answers (the longest a first counterexample waits to
stop the others, and the most work a lost worker costs) ..."""
SHORT_LEASE_S = 0.1
"""... or while the pool holds fewer than two items per worker (the start of a search: short leases
grow it until every worker has work)."""
QUEUE = 2
"""Leases in flight per worker: the next one waits in the worker's queue while it works on the
current one, so it never idles for a round trip."""
ALONE_S = 0.5
"""Seconds the calling process searches alone before it leases (a search that ends within them, as
many of a query's searches do, costs no round trip; a long one loses at most this much of its
parallel time)."""
GROW_S = 0.05
"""Seconds of work in the calling process between two looks at the pool while it grows to two items a
worker (as :func:`~reluverify.solver.sharing.run_shared` does)."""
WAIT_S = 0.25
"""Seconds between two looks at the deadline while every worker is busy."""


@dataclass
class Answer:
    """A worker's answer to one lease: what is still open of it (a payload, or None), the share it
    refuted, the reasons of items left undecided, its statistics, a final outcome (or None), the
    items it processed, the seconds it worked and its node's ID."""

    rest: Any
    proven: float
    undecided: list[str]
    statistics: Statistics
    outcome: SearchOutcome | None
    processed: int
    seconds: float
    node: str


class Worker:
    """A Ray actor serving leases of one search at a time (see the module docstring); it imports the
    modules ``imports`` at once (those its recipes will build from)."""

    def __init__(self, blas_threads: int | None, imports: tuple[str, ...] = ()) -> None:
        for module in imports:  # the solver's modules, before the first lease needs them
            importlib.import_module(module)
        if blas_threads is not None:  # as in every solver process (options.parallel.blas_threads)
            from threadpoolctl import threadpool_limits

            self.blas = threadpool_limits(limits=blas_threads)
        import ray

        self.key: int | None = None
        self.search: ShareableSearch | None = None
        self.node = ray.get_runtime_context().get_node_id()

    def lease(self, key: int, recipe: Recipe | None, payload: Any, seconds: float, remaining: float | None) -> Answer:
        """Work on ``payload`` (items of search ``key``; ``recipe`` builds that search when this worker
        has not served it yet) for about ``seconds``, ending with ``timeout`` after ``remaining``."""
        if key != self.key:
            if recipe is None:
                raise RuntimeError("a lease of a search this worker has no recipe for")
            self.search, self.key = recipe.build(), key
        search = self.search
        search.reset_statistics()
        search.deadline = None if remaining is None else time.monotonic() + remaining
        search.add(payload)
        started = time.monotonic()
        outcome = search.work(seconds)
        rest = search.split_off(1)[0] if search.open_count() else None
        return Answer(rest, search.proven, list(search.undecided), search.statistics, outcome,
                      search.statistics.work_items, time.monotonic() - started, self.node)


class _Handle:
    """The coordinator's view of one worker."""

    def __init__(self, actor) -> None:
        self.actor = actor
        self.key: int | None = None  # the search whose recipe the worker holds
        self.rate = 0.0  # items processed per second, measured on its last lease
        self.out = 0  # its leases in flight


_WORKERS: list[_Handle] = []
"""The workers started by this process (kept between searches) ..."""
_SESSION: list[str] = []
"""... in this Ray session (a new ``ray.init`` starts new ones)."""
_KEYS = itertools.count(1)


def _workers(ray, jobs: int, blas_threads: int | None, imports: tuple[str, ...] = ()) -> list[_Handle]:
    """``jobs`` workers: those already started (still alive), and new ones spread over the nodes."""
    context = ray.get_runtime_context()
    session = f"{context.get_session_name()} {context.get_job_id()}"
    if _SESSION != [session]:
        _WORKERS.clear()
        _SESSION[:] = [session]
    alive = [w for w in _WORKERS if w.actor is not None]
    actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(Worker)
    while len(alive) < jobs:
        actor = actor_class.options(scheduling_strategy="SPREAD").remote(blas_threads, imports)
        alive.append(_Handle(actor))
    _WORKERS[:] = alive
    return alive[:jobs]


def prepare(jobs: int, address: str | None = None, blas_threads: int | None = 1,
            imports: tuple[str, ...] = ()) -> None:
    """Join the cluster and start ``jobs`` workers now, which import the modules ``imports`` (those
    their recipes will build from) while the caller falsifies and bounds the root, so the first lease
    does not wait for them."""
    ray, _ = connect(address, cpus=jobs)
    _workers(ray, jobs, blas_threads, imports)


def run_distributed(search: ShareableSearch, recipe: Recipe, jobs: int, deadline: float | None,
                    progress: Throttle | None = None, strategy: str = "", address: str | None = None,
                    blas_threads: int | None = 1) -> SearchOutcome:
    """Run ``search`` (its pool holds the work so far) on ``jobs`` workers of the Ray cluster at
    ``address`` (:func:`~reluverify.ray_cluster.connect`), which build their copies from ``recipe``."""
    # alone for a moment, and until every worker can start with some items: a small search (a query
    # often has one per disjunct) ends here without a round trip
    outcome = grow(search, 2 * jobs, ALONE_S, GROW_S)
    if outcome is not None:
        return outcome
    if search.open_count() == 0:
        return search.finish()
    ray, _ = connect(address, cpus=jobs)
    from ray.exceptions import RayActorError, RayTaskError

    progress = progress or Throttle(None)
    workers = _workers(ray, jobs, blas_threads)
    for worker in workers:
        worker.out = 0
    key = next(_KEYS)
    out: dict = {}  # lease reference -> (worker, the lease's payload)
    lost: list[str] = []
    nodes: set[str] = set()
    final: SearchOutcome | None = None
    while final is None:
        if deadline is not None and time.monotonic() > deadline:
            final = SearchOutcome("timeout", reason="time budget exhausted with the work on a Ray cluster")
            break
        while search.open_count():
            free = [w for w in workers if w.out < QUEUE]
            if not free:
                break
            worker = min(free, key=lambda w: w.out)
            seconds = LEASE_S if search.open_count() >= 2 * len(workers) else SHORT_LEASE_S
            slots = sum(QUEUE - w.out for w in free)
            payload = search.take(_lease_size(search.open_count(), worker, slots, seconds))
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            reference = worker.actor.lease.remote(key, recipe if worker.key != key else None, payload, seconds, remaining)
            worker.key = key
            worker.out += 1
            out[reference] = (worker, payload)
        if not out:
            break  # nothing open, nothing out: the search is exhausted
        ready, _ = ray.wait(list(out), num_returns=1, timeout=WAIT_S)
        for reference in ready:
            worker, payload = out.pop(reference)
            worker.out -= 1
            try:
                answer: Answer = ray.get(reference)
            except RayActorError as exc:  # the worker is gone: each of its leases goes back whole
                search.add(payload)
                if worker in workers:
                    worker.actor = None
                    workers.remove(worker)
                    search.statistics.lost_workers += 1
                    lost.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                if not workers:
                    final = SearchOutcome("unknown", reason=f"every Ray worker was lost ({lost[-1]})")
                continue
            except RayTaskError as exc:
                search.add(payload)
                final = SearchOutcome("unknown", reason=f"a Ray worker failed: {_first_line(exc)}")
                break
            search.statistics.merge(answer.statistics)
            search.statistics.leases += 1
            nodes.add(answer.node)
            search.statistics.nodes = max(search.statistics.nodes, len(nodes))
            search.proven += answer.proven
            search.undecided.extend(answer.undecided)
            if answer.rest is not None:
                search.add(answer.rest)
            worker.rate = answer.processed / max(answer.seconds, 1e-3)
            if answer.outcome is not None:
                final = answer.outcome
                break
        if progress:
            progress.report(strategy, search.statistics.work_items,
                            search.open_count() + sum(_size(p) for _, p in out.values()), search.proven)
        if search.checkpoint is not None and final is None and search.checkpoint.due():
            _save(search, out)
    _WORKERS[:] = [w for w in _WORKERS if w.actor is not None]
    if search.checkpoint is not None and final is not None and final.status != "sat":
        _save(search, out)  # a timeout or an unknown: what is left, for the next run
    if final is not None:
        return final
    return search.finish()


def _save(search: ShareableSearch, out: dict) -> None:
    """Save the search's open work to its checkpoint: the pool and every lease in flight (whose items
    count as open until their answers come back), with the share refuted by the answers received: a
    consistent pair at any moment."""
    search.save([search.snapshot(), *(payload for _, payload in out.values())], search.proven, search.undecided,
                search.statistics.work_items)


def _lease_size(open_items: int, worker: _Handle, slots: int, seconds: float) -> int:
    """Items for a lease of ``seconds``: what the worker processes in that time (measured on its last
    lease), at most a fair share of the pool among the free lease slots, at least one."""
    share = math.ceil(open_items / slots)
    if worker.rate <= 0:
        return max(1, share)
    return max(1, min(share, math.ceil(worker.rate * seconds)))


def _size(payload) -> int:
    """The items of a payload (rows of arrays, or boxes)."""
    if isinstance(payload, dict):
        return len(next(iter(payload.values()))) if payload else 0
    return len(payload)


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[-1]
