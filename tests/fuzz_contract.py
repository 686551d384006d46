"""The contract every reader is fuzzed against: a value or a verdict, else one clean line.

Bad input must end in a :class:`~reluverify.errors.ReluverifyError` whose message is one line
(the command line prints it as ``reluverify: error: ...`` and exits with status 2) -- never a
traceback, an internal error (exit status 3) or a hang.

* :func:`clean` calls a reader (the Python entry point the command line uses) and returns its
  value, or the error message after checking it is one non-empty line; any other exception
  propagates, so hypothesis reports (and shrinks) it as a finding.
* :func:`run_main` runs ``reluverify.cli.main`` in this process (fast) and checks the exit
  status (0 or 2) and that stderr is one ``reluverify: error:`` line when it is 2.
* :func:`run_cli` does the same through a real ``python -m reluverify`` subprocess.

Every call runs under a wall-clock guard (:func:`no_hang`): overrunning it is a :class:`Hang`,
which derives from BaseException so that no ``except Exception`` in reluverify can swallow it
(the alarm of pytest-timeout, if any, is suspended meanwhile and re-armed afterwards).
"""

from __future__ import annotations

import contextlib
import io
import signal
import subprocess
import sys
import time
from datetime import timedelta

from hypothesis import HealthCheck, settings

from reluverify.errors import ReluverifyError

HANG_S = 30.0
"""Seconds after which a single call counts as a hang."""


class Hang(BaseException):
    """A reader or command ran past :data:`HANG_S`."""


def fuzz_settings(examples: int, deadline_s: float = 20.0):
    """Bounded, reproducible hypothesis settings: CI replays the same inputs every time."""
    return settings(max_examples=examples, deadline=timedelta(seconds=deadline_s), derandomize=True,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


@contextlib.contextmanager
def no_hang(seconds: float = HANG_S):
    def expired(signum, frame):
        raise Hang(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    start = time.monotonic()
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay:  # pytest-timeout's own alarm goes on with what was left of it
            left = outer_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), outer_interval)


def one_line(message: str) -> bool:
    return bool(message.strip()) and message.splitlines() == [message] and "Traceback" not in message


def clean(function, *args, **kwargs):
    """``function(*args, **kwargs)``, or the message of the ReluverifyError it raised (checked)."""
    with no_hang():
        try:
            return function(*args, **kwargs)
        except ReluverifyError as exc:
            message = str(exc)
            assert one_line(message), f"not one line: {message!r}"
            return ErrorLine(message)


class ErrorLine(str):
    """The one-line message of a clean error (a str, so tests can search it)."""


def _check_status(status: int, stderr: str, argv) -> None:
    assert status in (0, 2), f"exit status {status} for {argv}: {stderr[-2000:]}"
    if status == 2:
        assert stderr.startswith("reluverify: error: "), stderr[-2000:]
        assert one_line(stderr.rstrip("\n")), f"stderr is not one line: {stderr[-2000:]!r}"


def run_main(argv, seconds: float = HANG_S) -> tuple[int, str, str]:
    """``reluverify ARGV`` in this process: (status, stdout, stderr), the contract checked."""
    from reluverify.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = [str(a) for a in argv]
    with no_hang(seconds), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    _check_status(status, err.getvalue(), argv)
    return status, out.getvalue(), err.getvalue()


def run_cli(argv, seconds: float = 120.0, env=None) -> subprocess.CompletedProcess:
    """``python -m reluverify ARGV`` in a subprocess, the contract checked."""
    argv = [str(a) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "reluverify", *argv], capture_output=True, text=True,
                          timeout=seconds, env=env)
    _check_status(proc.returncode, proc.stderr, argv)
    return proc
