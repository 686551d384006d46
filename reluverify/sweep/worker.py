"""What runs in a sweep's worker process: one property check, plain data in and out.

:func:`run_job` takes a job (:meth:`reluverify.sweep.plan.Job.to_dict`) and the sweep's settings
(a dict: ``timeout``, ``strategy``, ``max_memory``) and returns the answer as a dict of plain values (verdict,
label, seconds, statistics, counterexample, reason, worker). It never sees the results store.

Networks are cached per process by their file's sha256. The local backend loads every network
in the main process before forking, so its workers find them already loaded; a Ray worker gets
the ONNX bytes through the object store and keeps them in a temporary file (the counterexample
check runs onnxruntime on a file).

:func:`guarded` wraps a worker so that it dies with the process that started it: on Linux
through ``PR_SET_PDEATHSIG`` (SIGKILL when the parent dies, SIGKILL included), elsewhere through
a thread that polls the parent's pid. A sweep killed with SIGKILL thus leaves no worker behind.

**Test-only hooks.** Two environment variables make the default worker misbehave on purpose so
that the tests can exercise crash and timeout handling end to end through the command line; they
are not for users:

* ``RELUVERIFY_TEST_CRASH_KEY=PREFIX[,PREFIX...]`` -- a job whose key starts with a prefix makes
  its worker exit at once (``os._exit(86)``), as a segfault or the OOM killer would;
* ``RELUVERIFY_TEST_HANG_KEY=PREFIX[,PREFIX...]`` -- such a job sleeps instead of running, as a
  solver stuck in native code would (only the kill timeout ends it);
* ``RELUVERIFY_TEST_SLOW_S=S`` -- every job sleeps S seconds before it runs (to catch a sweep
  mid-way).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time

from reluverify.memory import current_limit, set_limit

CRASH_ENV, HANG_ENV, SLOW_ENV = "RELUVERIFY_TEST_CRASH_KEY", "RELUVERIFY_TEST_HANG_KEY", "RELUVERIFY_TEST_SLOW_S"
CRASH_EXIT_CODE = 86

_NETWORKS: dict[str, object] = {}
_BLAS_LIMIT = None


# ------------------------------------------------------------------ networks
def load_network(path: str, sha256: str | None = None, data: bytes | None = None):
    """The network of ``path`` (or of the ONNX bytes ``data``), cached by sha256 and checked against it."""
    from reluverify.errors import NetworkError
    from reluverify.onnx_import import load_onnx

    if sha256 is not None and sha256 in _NETWORKS:
        return _NETWORKS[sha256]
    if data is not None:
        folder = os.path.join(tempfile.gettempdir(), "reluverify-networks")
        os.makedirs(folder, exist_ok=True)
        local = os.path.join(folder, f"{sha256 or 'network'}-{os.path.basename(path)}")
        if not os.path.exists(local):
            partial = f"{local}.{os.getpid()}.part"
            with open(partial, "wb") as handle:
                handle.write(data)
            os.replace(partial, local)
        path = local
    network = load_onnx(path, drop_final_softmax=True)  # the properties refuse it where it matters
    if sha256 is not None and network.source_sha256 != sha256:
        raise NetworkError(f"{path}: the file changed since the sweep was planned (sha256 differs)")
    _NETWORKS[network.source_sha256] = network
    return network


def remember_network(network) -> str:
    """Cache a network loaded elsewhere (the command line loads each once to check the points); the key
    it is found by: its file's sha256, or for an in-memory network the hash of its weights."""
    from reluverify.properties.common import network_hash

    key = network_hash(network)
    _NETWORKS[key] = network
    return key


def warm_up() -> None:
    """Import what a job needs, once, in the main process: forked workers then start warm.

    A cold worker spends more time importing the solver, scipy and onnxruntime than a small
    query takes to solve. Only modules are imported (no onnxruntime session is created before
    a fork).
    """
    import importlib

    for name in ("scipy.linalg", "threadpoolctl", "onnxruntime", "reluverify.onnx_runtime",
                 "reluverify.properties.registry", "reluverify.solver.decide"):
        try:
            importlib.import_module(name)
        except ImportError:  # the worker will say what is missing
            pass


def one_blas_thread() -> None:
    """BLAS limited to one thread in this process from now on (and in the processes it forks).

    A sweep runs one query per process, so one BLAS thread each is fastest (as the solver's own
    default). Set once per process: the solver's per-query limit rescans every loaded library,
    which costs a fresh worker about 0.1 s.
    """
    global _BLAS_LIMIT
    if _BLAS_LIMIT is None:
        from threadpoolctl import threadpool_limits

        _BLAS_LIMIT = threadpool_limits(limits=1)


def restore_blas_threads() -> None:
    """Undo :func:`one_blas_thread` in this process."""
    global _BLAS_LIMIT
    if _BLAS_LIMIT is not None:
        _BLAS_LIMIT.restore_original_limits()
        _BLAS_LIMIT = None


# ------------------------------------------------------------------ the job
def _matches(variable: str, key: str) -> bool:
    prefixes = [p.strip() for p in os.environ.get(variable, "").split(",") if p.strip()]
    return any(key.startswith(p) for p in prefixes)


def _test_hooks(key: str) -> None:
    slow = os.environ.get(SLOW_ENV)
    if slow:
        time.sleep(float(slow))
    if _matches(CRASH_ENV, key):
        os._exit(CRASH_EXIT_CODE)
    if _matches(HANG_ENV, key):
        while True:
            time.sleep(60)


def job_property(network, job: dict):
    """The property a job (or a row) checks on ``network``: the registered property of its kind (Def. 1
    or Def. 3), from the job's point, delta, epsilon, norm, decision rule and domain."""
    from reluverify.properties.registry import property_kind

    domain = None if job.get("domain") is None else tuple(job["domain"])
    return property_kind(job["kind"]).build(network, **{**job, "domain": domain})


def job_options(settings: dict):
    """The solver options of a job: the sweep's strategy and per-query timeout, one process (the sweep
    runs the queries in parallel), BLAS left alone (the worker limits it once)."""
    from reluverify.solver.options import ParallelOptions, SolverOptions

    options = SolverOptions(strategy=settings.get("strategy", "auto"), parallel=ParallelOptions(blas_threads=None))
    return options.with_timeout(settings.get("timeout"))


def run_job(job: dict, settings: dict, network_data: bytes | None = None) -> dict:
    """Check one job's property (Def. 1 or Def. 3) and return its answer as plain data."""
    _test_hooks(job["key"])
    if settings.get("max_memory") and current_limit() is None:  # a Ray worker; forked ones inherit it
        set_limit(settings["max_memory"])
    one_blas_thread()
    network = load_network(job["network"], job["network_sha256"], network_data)
    result = job_property(network, job).check(job_options(settings))
    return {
        "verdict": result.verdict,
        "solver_verdict": result.solver_verdict or None,
        "label": result.label,
        "seconds": result.seconds,
        "statistics": result.statistics,
        "counterexample": result.counterexample.to_dict() if result.counterexample is not None else None,
        "reason": result.reason,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }


# ------------------------------------------------------------------ dying with the parent
def die_with_parent(parent_pid: int) -> None:
    """Make this process die when ``parent_pid`` (its parent) dies, however that happens."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - fall back on polling below
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="reluverify-parent-watch", daemon=True).start()


def guarded(worker, job: dict, settings: dict, parent_pid: int, *extra):
    """Run ``worker(job, settings, *extra)`` in a process that dies with ``parent_pid``."""
    die_with_parent(parent_pid)
    return worker(job, settings, *extra)
