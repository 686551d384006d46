"""One query's search on a 2-node Ray cluster against the same search on local processes, and how the
work grows with the number of workers (work conservation).

``--mode ray`` (default) starts a Ray cluster on this machine as people run one: ``ray start --head``
and a second ``ray start --address`` (one CPU each, token authentication, their own temporary folder
and ports), then decides each instance with ``reluverify vnnlib --jobs 2`` on local processes and with
``--backend ray --address ADDR --jobs 2``, one after the other in alternating order, each a whole
process under ``/usr/bin/time -v`` with the same limit. Peak memory is the command's own (the driver
and, locally, its forked workers) plus, for Ray, the largest growth of the cluster's processes'
resident memory while it ran (sampled every 0.2 s). ``--mode conservation`` runs each instance with
``--jobs`` 1, 2, 4 and 8 (oversubscribed on a small machine), on local processes or with
``--backend ray`` on the workers of such a cluster (4 CPUs a node), and counts the sub-problems
bounded (``statistics.subproblems + boxes`` of ``--json``).

Prints a table, writes ``results/NAME.csv``.

    python benchmarks/distributed.py ../shared/benchmarks/mnistfc --slowest 5 --cap 120 --name ray_mnistfc
    python benchmarks/distributed.py ../shared/benchmarks/mnistfc --slowest 5 --mode conservation --name work_mnistfc
    python benchmarks/distributed.py ../shared/benchmarks/mnistfc --slowest 5 --mode conservation --backend ray --name work_ray
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from side_by_side import timed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SLOWEST = [  # the slowest instances decided of mnistfc props 0-9 at eps 0.03 with --jobs 2 (stop 34's run)
    ("mnist-net_256x4.onnx", "prop_3_0.03.vnnlib"), ("mnist-net_256x6.onnx", "prop_0_0.03.vnnlib"),
    ("mnist-net_256x4.onnx", "prop_9_0.03.vnnlib"), ("mnist-net_256x6.onnx", "prop_5_0.03.vnnlib"),
    ("mnist-net_256x2.onnx", "prop_1_0.03.vnnlib"),
]
RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A head and a worker node on this machine, ``cpus`` CPUs each (default 1), token authentication."""

    def __init__(self, cpus: int = 1) -> None:
        self.cpus = cpus
        self.root = tempfile.mkdtemp(prefix="rv-ray-", dir="/tmp")
        home = Path(self.root, "home")
        (home / ".ray").mkdir(parents=True)
        (home / ".ray" / "auth_token").write_text(os.urandom(32).hex())
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self.env = {**os.environ, "HOME": str(home), "PYTHONPATH": path, "RAY_AUTH_MODE": "token",
                    "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: list[subprocess.Popen] = []

    def start(self) -> None:
        self._node("head", "--head", f"--port={self.port}", "--include-dashboard=false",
                   f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}")
        self._wait(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close())
        self._node("worker", f"--address={self.address}")
        for name in ("head", "worker"):
            self._wait(lambda name=name: "Ray runtime started" in Path(self.root, f"{name}.log").read_text() or 1 / 0)

    def _node(self, name: str, *options: str) -> None:
        ports = [f"--{flag}={free_port()}" for flag in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                        "metrics-export-port", "runtime-env-agent-port")]
        log = Path(self.root, f"{name}.log").open("w")
        self.nodes.append(subprocess.Popen(
            [*RAY, "start", "--block", f"--num-cpus={self.cpus}", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
             f"--temp-dir={self.root}/{name}", *ports, *options],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    @staticmethod
    def _wait(probe, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                probe()
                return
            except (OSError, ZeroDivisionError):
                time.sleep(0.2)
        raise SystemExit("the Ray cluster did not start")

    def resident_mb(self) -> float:
        """The resident memory of every process of this cluster (their command lines name its folder)."""
        total = 0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if self.root.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                        total += int(Path(f"/proc/{entry}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                except (OSError, IndexError, ValueError):
                    continue
        return total / 2**20

    def stop(self) -> None:
        for node in self.nodes:
            try:
                os.killpg(node.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(3)
        for node in self.nodes:
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            node.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def decide(folder: Path, net: str, spec: str, cap: float, jobs: int, env: dict, extra=()) -> dict:
    command = [sys.executable, "-m", "reluverify", "vnnlib", str(folder / net), str(folder / spec), "--json",
               "--quiet", "--timeout", str(cap), "--jobs", str(jobs), *extra]
    out, seconds, peak = timed(command, cap, env=env, cwd=str(REPO))
    try:
        result = json.loads(out)
    except ValueError:
        return {"verdict": out.split()[0] if out else "error", "s": round(seconds, 2), "mb": peak, "work": None, "nodes": 0}
    stats = result["statistics"]
    return {"verdict": result["verdict"], "s": round(seconds, 2), "mb": peak,
            "work": stats["subproblems"] + stats["boxes"], "nodes": stats.get("nodes", 0)}


def with_cluster_memory(cluster: Cluster, run) -> tuple[dict, float]:
    """``run()`` and the largest growth of the cluster's resident memory (MB) while it ran."""
    base, peak, done = cluster.resident_mb(), [0.0], threading.Event()

    def sample():
        while not done.wait(0.2):
            peak[0] = max(peak[0], cluster.resident_mb() - base)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        return run(), round(peak[0], 1)
    finally:
        done.set()
        sampler.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--slowest", type=int, default=5, help="how many of the known slowest instances (default 5)")
    parser.add_argument("--cap", type=float, default=120.0)
    parser.add_argument("--mode", choices=("ray", "conservation"), default="ray")
    parser.add_argument("--workers", default="1,2,4,8", help="--mode conservation: the --jobs values")
    parser.add_argument("--backend", choices=("local", "ray"), default="local", help="--mode conservation: where")
    parser.add_argument("--name", default="distributed")
    args = parser.parse_args()
    instances = SLOWEST[: args.slowest]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "reluverify")], check=False)
    rows = []
    if args.mode == "conservation":
        counts = [int(j) for j in args.workers.split(",")]
        cluster = Cluster(cpus=4) if args.backend == "ray" else None
        try:
            if cluster is not None:
                cluster.start()
            for net, spec in instances:
                row = {"onnx": net, "vnnlib": spec}
                for jobs in counts:
                    if cluster is not None and jobs > 1:
                        r = decide(args.folder, net, spec, args.cap, jobs, cluster.env,
                                   ("--backend", "ray", "--address", cluster.address))
                    else:
                        r = decide(args.folder, net, spec, args.cap, jobs, env)
                    row.update({f"j{jobs}_verdict": r["verdict"], f"j{jobs}_s": r["s"], f"j{jobs}_work": r["work"]})
                base = row[f"j{counts[0]}_work"] or 0
                for jobs in counts:
                    work = row[f"j{jobs}_work"]
                    row[f"j{jobs}_ratio"] = round(work / base, 3) if work and base else None
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
    else:
        cluster = Cluster()
        try:
            cluster.start()
            ray_extra = ("--backend", "ray", "--address", cluster.address)
            for index, (net, spec) in enumerate(instances):
                row = {"onnx": net, "vnnlib": spec}
                order = ("local", "ray") if index % 2 == 0 else ("ray", "local")
                for which in order:
                    if which == "local":
                        row["local"] = decide(args.folder, net, spec, args.cap, 2, env)
                    else:
                        row["ray"], row["ray_cluster_mb"] = with_cluster_memory(
                            cluster, lambda: decide(args.folder, net, spec, args.cap, 2, cluster.env, ray_extra))
                flat = {"onnx": net, "vnnlib": spec, "ray_cluster_mb": row["ray_cluster_mb"]}
                for which in ("local", "ray"):
                    flat.update({f"{which}_{k}": v for k, v in row[which].items()})
                flat["ratio"] = round(flat["ray_s"] / flat["local_s"], 3)
                rows.append(flat)
                print(" ".join(f"{k}={v}" for k, v in flat.items()), flush=True)
        finally:
            cluster.stop()
    out = REPO / "results" / f"{args.name}.csv"
    out.parent.mkdir(exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n| instance | {' | '.join(k for k in rows[0] if k not in ('onnx', 'vnnlib'))} |")
    print("|" + " --- |" * (len(rows[0]) - 1))
    for row in rows:
        name = f"{row['onnx'].replace('mnist-net_', '').replace('.onnx', '')} {row['vnnlib'].replace('.vnnlib', '')}"
        print(f"| {name} | {' | '.join(str(v) for k, v in row.items() if k not in ('onnx', 'vnnlib'))} |")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
