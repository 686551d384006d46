"""Where a sweep's queries run: local worker processes (the default) or a Ray cluster.

Both backends take the jobs to run and yield one :class:`JobOutcome` per job as it finishes,
in completion order, with the same rules:

* a query gets the solver timeout ``timeout``; a worker still running ``kill_grace`` seconds
  after that is **killed** and the query reported as ``timeout`` (the sweep goes on);
* a worker that **dies** (a crash, the OOM killer, a user's ``kill``) has its query retried
  ``retries`` times (once by default); after that the query is reported as ``error`` with the
  reason;
* an exception inside the worker (a bad point, a network that changed on disk) is reported as
  ``error`` with its one-line message, not retried: it would fail the same way again;
* a local worker interrupted by Ctrl-C (``KeyboardInterrupt``, which the terminal sends to the
  whole process group) ends the run with ``KeyboardInterrupt``: its query has no answer and gets
  no row, so the next run of the sweep runs it.

:class:`LocalBackend` runs each query in its own process through
:func:`reluverify.parallel.run_tasks` (forked, so the networks the main process loaded are
shared); its workers die with the main process (:func:`reluverify.sweep.worker.die_with_parent`).
:class:`RayBackend` submits the same worker function as Ray tasks (``ray`` is imported only
there: ``pip install "reluverify[distributed]"``); the networks travel as ONNX bytes through Ray's
object store, so the nodes need reluverify installed but not the network files.
"""

from __future__ import annotations

import gc
import os
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from reluverify.errors import ReluverifyError
from reluverify.ray_cluster import BackendError, connect
from reluverify.sweep.plan import Job
from reluverify.sweep.worker import guarded, load_network, one_blas_thread, restore_blas_threads, run_job, warm_up

DEFAULT_KILL_GRACE_S = 5.0


@dataclass
class JobOutcome:
    """How one job ended: ``status`` is ``ok`` (``value`` is the worker's answer), ``timeout`` or ``error``."""

    job: Job
    status: str
    value: dict | None
    seconds: float
    reason: str
    attempts: int
    started: float
    """Wall-clock time (epoch seconds) the last attempt started."""
    finished: float
    backend: str
    worker: str | None = None


def _limit(timeout: float | None, kill_grace: float) -> float | None:
    return None if timeout is None else float(timeout) + float(kill_grace)


class LocalBackend:
    """``jobs`` worker processes on this machine (see the module docstring)."""

    name = "local"

    def __init__(self, jobs: int = 1, timeout: float | None = 60.0, kill_grace: float = DEFAULT_KILL_GRACE_S,
                 retries: int = 1, worker: Callable = run_job) -> None:
        if jobs < 1:
            raise ReluverifyError("--jobs must be >= 1")
        self.jobs = int(jobs)
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.retries = int(retries)
        self.worker = worker

    def describe(self) -> str:
        return f"{self.jobs} local worker{'s' if self.jobs != 1 else ''}"

    def run(self, jobs: Sequence[Job], settings: dict) -> Iterator[JobOutcome]:
        if not jobs:
            return
        settings = {**settings, "timeout": self.timeout}
        if self.worker is run_job:  # imports, networks, BLAS limit once, here: the forked workers inherit them
            warm_up()
            one_blas_thread()
            for sha, path in {j.network_sha256: j.network for j in jobs}.items():
                try:
                    load_network(path, sha)
                except ReluverifyError:
                    pass  # each of its jobs reports the problem as an error row
        gc.freeze()  # the parent's objects stay out of the workers' garbage collections (fewer copied pages)
        try:
            yield from self._run(jobs, settings)
        finally:
            gc.unfreeze()
            if self.worker is run_job:
                restore_blas_threads()

    def _run(self, jobs: Sequence[Job], settings: dict) -> Iterator[JobOutcome]:
        from reluverify.parallel import run_tasks

        limit = _limit(self.timeout, self.kill_grace)
        queue = deque((job, 1) for job in jobs)
        parent = os.getpid()

        def tasks():
            while queue:
                job, attempt = queue.popleft()
                yield (job, attempt), guarded, (self.worker, job.to_dict(), settings, parent)

        while queue:  # a retry queued after the task generator ended starts another round
            with closing(run_tasks(tasks(), jobs=self.jobs, time_limit=lambda key: limit)) as outcomes:
                for out in outcomes:
                    job, attempt = out.key
                    now = time.time()
                    started = now - out.seconds
                    if out.status == "ok":
                        value = out.value
                        yield JobOutcome(job, "ok", value, out.seconds, value.get("reason", ""), attempt, started,
                                         now, self.name, value.get("worker"))
                    elif out.status == "timeout":
                        reason = f"the worker was killed after {out.seconds:.1f} s (per-query timeout {self.timeout:g} s)"
                        yield JobOutcome(job, "timeout", None, out.seconds, reason, attempt, started, now, self.name)
                    elif out.status == "crashed" and attempt <= self.retries:
                        queue.appendleft((job, attempt + 1))
                    elif out.status == "crashed":
                        reason = f"{out.message}, on each of {attempt} attempts"
                        yield JobOutcome(job, "error", None, out.seconds, reason, attempt, started, now, self.name)
                    elif (out.message or "").startswith("KeyboardInterrupt"):
                        raise KeyboardInterrupt  # Ctrl-C reached the worker too: the query did not fail, no row
                    else:  # "error": an exception in the worker; "cancelled" does not happen (no stop)
                        yield JobOutcome(job, "error", None, out.seconds, out.message or out.status, attempt,
                                         started, now, self.name)


# ---------------------------------------------------------------------- Ray
def _ray_task(worker: Callable, job: dict, settings: dict, network_data: bytes):
    value = worker(job, settings, network_data)
    try:  # which node ran it: host names alone do not tell the nodes of one machine (or of containers) apart
        import ray

        value = {**value, "worker": f"{value.get('worker')} node {ray.get_runtime_context().get_node_id()[:12]}"}
    except Exception:  # noqa: BLE001 - a worker function run outside Ray (tests)
        pass
    return value


class RayBackend:
    """Ray tasks on a cluster at ``address`` (``None``: ``RAY_ADDRESS``, else a fresh local instance).

    ``address="auto"`` joins the cluster that ``ray start`` runs on this machine; ``HOST:PORT``
    the one whose head ran ``ray start --head --port=PORT`` on HOST. A cluster with token
    authentication is reached with ``RAY_AUTH_MODE=token`` and its token (Ray's own settings,
    read by ``ray.init``); a refused connection is a :class:`BackendError` naming that fix. Each
    answer's ``worker`` names the node that ran it (``host:pid node ID``). An already
    initialised Ray (``ray.init`` called by the program) is used as it is. ``jobs`` caps the
    queries in flight (default: the cluster's CPUs); a local instance started here gets ``jobs``
    CPUs and is shut down at the end. ``init_options`` go to ``ray.init``.
    """

    name = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None, timeout: float | None = 60.0,
                 kill_grace: float = DEFAULT_KILL_GRACE_S, retries: int = 1, worker: Callable = run_job,
                 init_options: dict | None = None) -> None:
        self.address = address
        self.jobs = jobs
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.retries = int(retries)
        self.worker = worker
        self.init_options = dict(init_options or {})

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "Ray"
        return f"{where}" + (f", {self.jobs} queries at a time" if self.jobs else "")

    def _connect(self):
        return connect(self.address, self.jobs, self.init_options)

    def run(self, jobs: Sequence[Job], settings: dict) -> Iterator[JobOutcome]:
        if not jobs:
            return
        ray, owned = self._connect()
        try:
            yield from self._run(ray, list(jobs), {**settings, "timeout": self.timeout})
        finally:
            if owned:
                ray.shutdown()

    def _run(self, ray, jobs: list[Job], settings: dict) -> Iterator[JobOutcome]:
        from ray.exceptions import RayTaskError, TaskCancelledError

        data = {}
        for job in jobs:
            if job.network_sha256 not in data:
                with open(job.network, "rb") as handle:
                    data[job.network_sha256] = ray.put(handle.read())
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        capacity = self.jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        limit = _limit(self.timeout, self.kill_grace)
        queue = deque((job, 1) for job in jobs)
        flying: dict = {}  # ObjectRef -> (job, attempt, submitted wall time, monotonic start)
        try:
            while queue or flying:
                while queue and len(flying) < capacity:
                    job, attempt = queue.popleft()
                    ref = remote.remote(self.worker, job.to_dict(), settings, data[job.network_sha256])
                    flying[ref] = (job, attempt, time.time(), time.monotonic())
                ready, _ = ray.wait(list(flying), num_returns=1, timeout=0.2)
                for ref in ready:
                    job, attempt, started, start = flying.pop(ref)
                    seconds = time.monotonic() - start
                    try:
                        value = ray.get(ref)
                    except TaskCancelledError:
                        continue
                    except RayTaskError as exc:  # an exception inside the worker function
                        cause = getattr(exc, "cause", None) or exc
                        first = (str(cause).splitlines() or [""])[0]
                        yield JobOutcome(job, "error", None, seconds, f"{type(cause).__name__}: {first}", attempt,
                                         started, time.time(), self.name)
                        continue
                    except Exception as exc:  # noqa: BLE001 - the worker died (WorkerCrashedError, node lost, ...)
                        if attempt <= self.retries:
                            queue.appendleft((job, attempt + 1))
                            continue
                        first = (str(exc).splitlines() or [""])[0]
                        reason = f"the worker died ({type(exc).__name__}: {first[:200]}), on each of {attempt} attempts"
                        yield JobOutcome(job, "error", None, seconds, reason, attempt, started, time.time(), self.name)
                        continue
                    yield JobOutcome(job, "ok", value, seconds, value.get("reason", ""), attempt, started,
                                     time.time(), self.name, value.get("worker"))
                if limit is not None:
                    now = time.monotonic()
                    for ref, (job, attempt, started, start) in list(flying.items()):
                        if now - start > limit:
                            ray.cancel(ref, force=True)
                            del flying[ref]
                            reason = (f"the worker was killed after {now - start:.1f} s "
                                      f"(per-query timeout {self.timeout:g} s)")
                            yield JobOutcome(job, "timeout", None, now - start, reason, attempt, started,
                                             time.time(), self.name)
        finally:
            for ref in flying:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
