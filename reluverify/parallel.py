"""Run tasks in worker processes, one process per task, with hard time limits.

A task is ``(key, function, args)``; the function runs in a fresh child process (forked
where the platform allows, so the parent's imports are shared) and its return value comes
back through a pipe. The parent never waits on a child that misbehaves:

* a child that outlives its time limit is killed (``status="timeout"``);
* a child that dies without answering (a crash, a kill by the OOM killer or by a user) is
  reported as ``status="crashed"`` with its exit code;
* an exception inside the function comes back as ``status="error"`` with a one-line message;
* an allocation that fails inside the function (``MemoryError``, e.g. beyond ``--max-memory``)
  comes back as ``status="memory"`` with the one-line message of
  :func:`reluverify.memory.out_of_memory`, which names the limit;
* ``stop()`` returning True (e.g. once a violation is found) kills every running child at
  once and starts no further task.

Only plain, picklable data crosses the process boundary, never live solver objects.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator

from reluverify.errors import MemoryLimitError
from reluverify.memory import current_limit, is_allocation_failure, out_of_memory


@dataclass
class TaskOutcome:
    key: Any
    status: str  # "ok", "timeout", "crashed", "error", "memory", "cancelled"
    value: Any = None
    seconds: float = 0.0
    message: str = ""


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _child(connection, function, args) -> None:
    from reluverify.solver.progress import _OBSERVER

    _OBSERVER.set(None)  # a worker never draws the parent's progress line
    try:
        value = function(*args)
        connection.send(("ok", value, ""))
    except MemoryLimitError as exc:
        connection.send(("memory", None, str(exc)))
    except MemoryError:
        connection.send(("memory", None, str(out_of_memory())))
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        if current_limit() is not None and is_allocation_failure(str(exc)):
            connection.send(("memory", None, str(out_of_memory())))
            return
        first = (str(exc).splitlines() or [""])[0]
        detail = traceback.format_exc(limit=-3).strip().splitlines()
        connection.send(("error", None, f"{type(exc).__name__}: {first}" if first else detail[-1]))
    finally:
        connection.close()


@dataclass
class _Running:
    key: Any
    process: Any
    connection: Any
    started: float
    limit: float | None


def run_tasks(
    tasks: Iterable[tuple[Any, Callable, tuple]],
    jobs: int = 1,
    time_limit: Callable[[Any], float | None] = lambda key: None,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[TaskOutcome]:
    """Yield one :class:`TaskOutcome` per task, in completion order (see the module docstring)."""
    context = _context()
    pending = iter(tasks)
    running: dict[int, _Running] = {}
    exhausted = False
    jobs = max(1, int(jobs))
    try:
        while True:
            while not exhausted and len(running) < jobs and not stop():
                try:
                    key, function, args = next(pending)
                except StopIteration:
                    exhausted = True
                    break
                parent_end, child_end = context.Pipe(duplex=False)
                # not daemonic: a task may share its own search among processes (bench --jobs-per-instance);
                # every child is killed in the finally below, however this generator ends
                process = context.Process(target=_child, args=(child_end, function, args))
                process.start()
                child_end.close()
                running[process.sentinel] = _Running(key, process, parent_end, time.monotonic(), time_limit(key))
            if not running:
                if exhausted or stop():
                    return
                continue
            now = time.monotonic()
            deadlines = [r.started + r.limit - now for r in running.values() if r.limit is not None]
            timeout = max(0.0, min(deadlines)) if deadlines else 0.5
            ready = wait([r.connection for r in running.values()] + list(running), timeout=min(timeout, 0.5))
            finished: list[int] = []
            for sentinel, task in running.items():
                elapsed = time.monotonic() - task.started
                message = None
                if task.connection in ready or task.connection.poll():
                    try:
                        message = task.connection.recv()
                    except (EOFError, OSError):
                        message = None
                if message is not None:
                    status, value, text = message
                    task.process.join(timeout=5)
                    if task.process.is_alive():
                        task.process.kill()
                    finished.append(sentinel)
                    yield TaskOutcome(task.key, status, value, elapsed, text)
                elif sentinel in ready or not task.process.is_alive():
                    task.process.join(timeout=1)
                    finished.append(sentinel)
                    code = task.process.exitcode
                    yield TaskOutcome(task.key, "crashed", None, elapsed, f"the worker process died (exit code {code})")
                elif task.limit is not None and elapsed > task.limit:
                    _kill(task.process)
                    finished.append(sentinel)
                    yield TaskOutcome(task.key, "timeout", None, elapsed, f"killed after {task.limit:.0f} s")
            for sentinel in finished:
                task = running.pop(sentinel)
                task.connection.close()
            if stop():
                for task in running.values():
                    _kill(task.process)
                    yield TaskOutcome(task.key, "cancelled", None, time.monotonic() - task.started, "stopped early")
                running.clear()
                return
    finally:
        for task in running.values():
            _kill(task.process)


def _kill(process) -> None:
    if process.is_alive():
        process.kill()
    process.join(timeout=5)


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
