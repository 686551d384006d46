"""The live progress line: drawn on stderr when it is a terminal (driven here through a pseudo-terminal),
updated in place, cleared at the end, silenced by --quiet, and never on stdout or in --json."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from conftest import benchmark_dir


def _run_with_terminal_stderr(args: list[str], timeout: float = 120.0) -> tuple[str, str, int]:
    """Run the CLI with stderr on a pseudo-terminal and stdout on a pipe; returns (stdout, terminal, status)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "reluverify", *args], stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read().decode()
    proc.wait(timeout=30)
    os.close(controller)
    return out, seen.decode(errors="replace"), proc.returncode


@pytest.fixture(scope="module")
def slow_instance():
    """An MNIST query that runs until its timeout (256x4 prop 3, proven in about 150 s)."""
    folder = benchmark_dir("mnistfc")
    return str(folder / "mnist-net_256x4.onnx"), str(folder / "prop_3_0.03.vnnlib")


def test_progress_line_updates_on_the_terminal_and_leaves_stdout_clean(slow_instance):
    network, spec = slow_instance
    out, terminal, status = _run_with_terminal_stderr(["vnnlib", network, spec, "--timeout", "4"])
    assert status == 0
    updates = [part for part in terminal.split("\r") if "sub-problems done" in part]
    assert len(updates) >= 3, terminal
    assert "relu-bab" in updates[0] and "proven" in updates[0] and "/4 s" in updates[0]
    done = [int(u.split("done ")[1].split(",")[0]) for u in updates]
    assert done[-1] > done[0]  # it moves
    assert terminal.rstrip(" ").endswith("\r")  # cleared at the end
    assert "\r" not in out and "sub-problems" not in out
    assert out.splitlines()[0] in ("timeout", "unsat", "sat")


def test_quiet_and_json_draw_nothing(slow_instance):
    network, spec = slow_instance
    _, terminal, _ = _run_with_terminal_stderr(["vnnlib", network, spec, "--timeout", "2.5", "--quiet"])
    assert "sub-problems" not in terminal
    out, terminal, _ = _run_with_terminal_stderr(["vnnlib", network, spec, "--timeout", "2.5", "--json"])
    assert json.loads(out)["verdict"] in ("timeout", "unsat", "sat")
    assert "\r" not in out


def test_no_line_when_stderr_is_not_a_terminal(slow_instance):
    network, spec = slow_instance
    proc = subprocess.run([sys.executable, "-m", "reluverify", "vnnlib", network, spec, "--timeout", "2.5"],
                          capture_output=True, text=True, timeout=120)
    assert "sub-problems" not in proc.stderr and "\r" not in proc.stderr
