"""A Ray cluster as people run one: ``ray start --head``, ``ray start --address`` on another node, then
``reluverify sweep --backend ray --address HOST:PORT`` (many queries) and ``reluverify vnnlib ... --backend
ray --address HOST:PORT --jobs 2`` (one query's search) -- with token authentication, as recent Ray has it.

Both nodes run on this machine (separate temporary folders and ports), each with one CPU and
``RAY_AUTH_MODE=token`` and a token in their own HOME. The sweep must use both nodes and give the
verdicts the exact oracle gives; the same sweep without ``RAY_AUTH_MODE`` must fail with one line
that names the fix. The nodes run ``ray start --block`` in their own process groups, which the
teardown ends (with every process left in the cluster's own folders): never ``ray stop``, which
would stop every Ray instance on the machine, other people's included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason='Ray is not installed (pip install "reluverify[distributed]")')
pytestmark = pytest.mark.slow

from test_properties_oracles import difference_net  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RAY = [sys.executable, "-m", "ray.scripts.scripts"]
# difference_net changes its label within L-inf radius |x0 - x1| / 2: 0.4, 0.1, 0.3, 0.25
POINTS = [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.2]]
DELTAS = (0.05, 0.2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def own_processes(folder: str) -> list[int]:
    """The processes whose command line names ``folder`` (only this cluster's have it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if folder.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


class Cluster:
    def __init__(self) -> None:
        # short paths: Ray's unix sockets live under the temporary folder (a 107-byte limit)
        self.root = tempfile.mkdtemp(prefix="rv-ray-", dir="/tmp")
        self.home = Path(self.root, "home")
        (self.home / ".ray").mkdir(parents=True)
        (self.home / ".ray" / "auth_token").write_text(os.urandom(32).hex())
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self.env = {**os.environ, "HOME": str(self.home), "PYTHONPATH": path, "RAY_AUTH_MODE": "token",
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: list[subprocess.Popen] = []

    def start(self, name: str, *options: str) -> Path:
        log = Path(self.root, f"{name}.log")
        ports = [f"--{flag}={free_port()}" for flag in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                        "metrics-export-port", "runtime-env-agent-port")]
        # the node's workers sleep a little per query, so that two queries are in flight at once
        env = {**self.env, "RELUVERIFY_TEST_SLOW_S": "0.5"}
        self.nodes.append(subprocess.Popen(
            [*RAY, "start", "--block", "--num-cpus=1", "--disable-usage-stats", f"--temp-dir={self.root}/{name}", *ports,
             *options],
            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
        return log

    def wait_for(self, log: Path, text: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in log.read_text(errors="replace"):
                return
            if any(node.poll() is not None for node in self.nodes):
                break
            time.sleep(0.2)
        pytest.fail(f"Ray node did not start: {log.read_text(errors='replace')[-2000:]}")

    def wait_for_port(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.nodes[0].poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        pytest.fail("the head node's GCS never listened")

    def stop(self) -> None:
        for node in self.nodes:
            try:
                os.killpg(node.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3  # a graceful stop, briefly; then the rest is killed
        while time.monotonic() < deadline and any(node.poll() is None for node in self.nodes):
            time.sleep(0.2)
        for node in self.nodes:
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            node.wait()
        for pid in own_processes(self.root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    if not hasattr(os, "killpg"):
        pytest.skip("needs POSIX process groups")
    cluster = Cluster()
    try:
        head = cluster.start("head", "--head", f"--port={cluster.port}", "--node-ip-address=127.0.0.1",
                             "--include-dashboard=false", f"--dashboard-port={free_port()}",
                             f"--ray-client-server-port={free_port()}")
        cluster.wait_for_port()  # the head's GCS is up: the worker node can join while the head finishes starting
        worker = cluster.start("worker", f"--address={cluster.address}", "--node-ip-address=127.0.0.1")
        cluster.wait_for(head, "Ray runtime started")
        cluster.wait_for(worker, "Ray runtime started")
        yield cluster
    finally:
        cluster.stop()
    assert not own_processes(cluster.root), "Ray processes outlived the test"


def sweep(cluster: Cluster, folder: Path, env: dict, *extra: str):
    net = difference_net(folder)
    points = folder / "points.json"
    points.write_text(json.dumps(POINTS))
    db = folder / "sweep.sqlite"
    argv = [sys.executable, "-m", "reluverify", "sweep", net.path, "--points", str(points), "--delta",
            *map(str, DELTAS), "--db", str(db), "--backend", "ray", "--address", cluster.address, "--jobs", "2",
            "--timeout", "60", "--order", "plan", *extra]
    return subprocess.run(argv, env=env, cwd=folder, capture_output=True, text=True, timeout=180), db


def test_a_sweep_runs_across_a_head_and_a_worker_node(cluster, tmp_path):
    proc, db = sweep(cluster, tmp_path, cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT point_index, delta, verdict, backend, worker FROM results").fetchall()
    assert len(rows) == len(POINTS) * len(DELTAS)
    verdicts = {(i, d): v for i, d, v, _, _ in rows}
    radii = [abs(a - b) / 2 for a, b in POINTS]
    assert verdicts == {(i, d): "robust" if d < r else "not robust" for i, r in enumerate(radii) for d in DELTAS}
    assert {backend for _, _, _, backend, _ in rows} == {"ray"}
    nodes = {worker.rsplit(" node ", 1)[1] for *_, worker in rows}
    assert len(nodes) == 2, f"the queries ran on {nodes}, not on both nodes"


def test_token_authentication_failure_names_the_fix_in_one_line(cluster, tmp_path):
    env = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_MODE"}
    env["RAY_gcs_server_port_wait_time_s"] = "1"  # Ray's own connect window: fail in a second, not twenty
    proc, _ = sweep(cluster, tmp_path, env, "--quiet")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("reluverify:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"reluverify: error: cannot reach the Ray cluster at {cluster.address}")
    assert "RAY_AUTH_MODE=token" in lines[0] and "~/.ray/auth_token" in lines[0]


def test_one_query_spreads_over_a_head_and_a_worker_node(cluster, tmp_path):
    """``vnnlib --backend ray --address ADDR --jobs 2``: one search's leases run on both nodes, with the
    verdict of the search in one process."""
    from random_queries import chain_to_onnx, random_chain
    from test_distributed import BAB, robustness_query

    from reluverify.solver import SolverOptions, solve
    from reluverify.vnnlib_export import write_vnnlib

    query = robustness_query(3, BAB, 0.15)
    net = chain_to_onnx(random_chain(np.random.default_rng(3), BAB), tmp_path / "net.onnx")
    spec = write_vnnlib(query, tmp_path / "spec.vnnlib")
    assert solve(query, SolverOptions(strategy="relu-bab", falsify=False)).verdict == "unsat"
    argv = [sys.executable, "-m", "reluverify", "vnnlib", net, spec, "--strategy", "relu-bab", "--backend", "ray",
            "--address", cluster.address, "--jobs", "2", "--json", "--quiet", "--timeout", "120"]
    proc = subprocess.run(argv, env=cluster.env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["verdict"] == "unsat"
    assert result["statistics"]["nodes"] == 2, result["statistics"]
