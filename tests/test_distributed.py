"""One query's search on the workers of a Ray cluster (solver/distributed.py): the same verdicts as the
search in one process, on random small networks, for both shareable strategies; a worker killed
mid-search loses nothing (the verdict stays right, the refuted share reaches exactly 1); the command
line refuses what cannot work in one line."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("ray", reason='Ray is not installed (pip install "reluverify[distributed]")')
pytestmark = pytest.mark.slow

from random_queries import chain_to_onnx, random_chain  # noqa: E402
from reluverify.cli import main  # noqa: E402
from reluverify.query import Disjunct, LinearConstraints, Query  # noqa: E402
from reluverify.solver import SolverOptions, solve  # noqa: E402
from reluverify.solver import distributed  # noqa: E402
from reluverify.solver.options import ParallelOptions  # noqa: E402


def robustness_query(seed: int, sizes: tuple[int, ...], radius: float) -> Query:
    """Def. 1 at a random point of a random chain: some other class reaches the point's class
    somewhere in the L-inf ball (one disjunct per other class)."""
    rng = np.random.default_rng(seed)
    chain = random_chain(rng, sizes)
    x0 = rng.uniform(-1, 1, sizes[0])
    label = int(np.argmax(chain.evaluate(x0[None])[0]))
    n, m = sizes[0], sizes[-1]
    disjuncts = []
    for j in range(m):
        if j != label:
            row = np.zeros((1, n + m))
            row[0, n + label], row[0, n + j] = 1.0, -1.0
            disjuncts.append(Disjunct(x0 - radius, x0 + radius, LinearConstraints(row, np.zeros(1)), f"class {j}"))
    return Query((chain.to_network(),), x0 - radius, x0 + radius, tuple(disjuncts))


def options(strategy: str, backend: str = "local", jobs: int = 1) -> SolverOptions:
    # no falsification: the verdict must come from the (shared) search itself
    return SolverOptions(strategy=strategy, timeout=120, falsify=False,
                         parallel=ParallelOptions(jobs=jobs, backend=backend))


BAB, SPLIT = (10, 50, 50, 50, 5), (5, 40, 40, 40, 3)
CASES = [  # (strategy, sizes, seed, radius, verdict): each needs hundreds of sub-problems or boxes
    ("relu-bab", BAB, 3, 0.15, "unsat"), ("relu-bab", BAB, 12, 0.17, "unsat"), ("relu-bab", BAB, 23, 0.15, "unsat"),
    ("relu-bab", BAB, 12, 0.2, "sat"), ("input-split", SPLIT, 2, 0.6, "unsat"), ("input-split", SPLIT, 13, 0.8, "unsat"),
    ("input-split", SPLIT, 24, 0.8, "sat"),
]


@pytest.mark.parametrize("strategy,sizes,seed,radius,verdict", CASES)
def test_the_search_on_ray_workers_agrees_with_one_process(local_ray, monkeypatch, strategy, sizes, seed, radius,
                                                           verdict):
    monkeypatch.setattr(distributed, "ALONE_S", 0.0)  # lease at once: these searches take a second or two
    query = robustness_query(seed, sizes, radius)
    alone = solve(query, options(strategy))
    spread = solve(query, options(strategy, "ray", 2))
    assert alone.verdict == verdict  # the case is what it was chosen for
    assert spread.verdict == verdict, spread.reason
    if verdict == "sat":
        assert spread.counterexample is not None
    else:  # the workers took leases of the search (it outlived its root)
        assert spread.statistics.leases >= 2 and spread.statistics.nodes == 1
        assert spread.statistics.lost_workers == 0 and len(distributed._WORKERS) == 2


def test_a_worker_killed_mid_search_loses_nothing(local_ray, monkeypatch):
    monkeypatch.setattr(distributed, "LEASE_S", 0.05)  # many short leases: the kill lands mid-lease
    monkeypatch.setattr(distributed, "ALONE_S", 0.0)
    query = robustness_query(23, BAB, 0.17)
    results = []
    thread = threading.Thread(target=lambda: results.append(solve(query, options("relu-bab", "ray", 2))))
    distributed._WORKERS.clear()  # fresh workers: the kill below hits this search's
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(distributed._WORKERS) < 2:
        time.sleep(0.05)
    time.sleep(1.0)  # the workers are up and serving leases
    assert thread.is_alive(), "the search ended before a worker could be killed: make it larger"
    local_ray.kill(distributed._WORKERS[0].actor, no_restart=True)
    thread.join(120)
    result = results[0]
    assert result.statistics.lost_workers == 1
    assert result.verdict == "unsat", result.reason  # exhausted(): the refuted share is exactly 1


def test_the_command_line_refuses_what_cannot_work(tmp_path, capsys):
    net = chain_to_onnx(random_chain(np.random.default_rng(0), (2, 4, 2)), tmp_path / "n.onnx")
    spec = tmp_path / "s.vnnlib"
    spec.write_text("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
                    "(declare-const Y_1 Real)\n(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n"
                    "(assert (<= X_1 1))\n(assert (>= Y_0 Y_1))\n")
    for extra, message in ((["--backend", "ray"], "--jobs N workers: give N >= 2"),
                           (["--address", "auto", "--jobs", "2"], "--address applies to --backend ray only"),
                           (["--backend", "ray", "--jobs", "2", "--proof", str(tmp_path / "p.json")],
                            "--proof runs the search in one process")):
        assert main(["vnnlib", str(net), str(spec), "--quiet", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_verify_of_many_points_sends_ray_users_to_the_sweep(tmp_path, capsys):
    net = chain_to_onnx(random_chain(np.random.default_rng(0), (2, 4, 2)), tmp_path / "n.onnx")
    points = tmp_path / "points.json"
    points.write_text("[[0.1, 0.2], [0.3, 0.4]]")
    assert main(["verify", str(net), "--points", str(points), "--delta", "0.01", "--jobs", "2", "--backend", "ray",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use it with --point or --global" in err[0] and "reluverify sweep" in err[0], err


def test_bench_takes_the_backend_for_each_instance_search(capsys):
    assert main(["bench", "/nonexistent", "--backend", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["reluverify: error: --backend ray spreads one search over --jobs-per-instance N workers: give N >= 2"]


def test_a_search_on_ray_workers_saves_consistent_checkpoints_and_resumes(local_ray, tmp_path, monkeypatch):
    """Every save holds the pool and the leases in flight: with the refuted share, the whole tree; a
    run stopped by its timeout resumes (on local processes) to the verdict."""
    from test_checkpoint import record_saves

    from reluverify.solver import checkpoint

    shares = record_saves(monkeypatch)
    query = robustness_query(23, BAB, 0.17)  # about 4 s of branching in one process
    path = tmp_path / "ray.npz"
    prepared = options("relu-bab", "ray", 2)
    distributed.prepare(2)  # the workers up before the clock starts
    local_ray.get([w.actor.__ray_ready__.remote() for w in distributed._WORKERS])
    stopped = solve(query, replace(prepared, timeout=1.5).with_checkpoint(path, every=0.1))
    assert stopped.verdict == "timeout"  # 4 s of work in one process, about half on two workers
    assert shares and all(abs(share - 1.0) < 1e-9 for share in shares), shares
    entries = checkpoint.read(str(path))
    assert [e.status for e in entries.values()] == ["open"] and next(iter(entries.values())).proven < 1
    resumed = solve(query, options("relu-bab", jobs=2).with_checkpoint(path))
    assert resumed.verdict == "unsat"
