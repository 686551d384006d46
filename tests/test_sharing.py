"""One query's search shared among worker processes (reluverify.solver.sharing): the same verdicts
as one process, counterexamples confirmed in the caller, statistics merged, no process left behind,
the deadline kept."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest

from conftest import benchmark_dir
from random_queries import planted_counterexample_query, random_chain, robust_query
from reluverify.onnx_import import load_onnx
from reluverify.solver import SolverOptions, solve
from reluverify.vnnlib import load_query


def _children_alive() -> int:
    return len(multiprocessing.active_children())


@pytest.mark.parametrize("strategy", ["relu-bab", "input-split"])
@pytest.mark.parametrize("seed", range(4))
def test_shared_search_gives_the_same_verdicts(strategy, seed):
    rng = np.random.default_rng(seed)
    chain = random_chain(rng, [4, 24, 24, 3])
    for query in (robust_query(rng, chain, slack=0.01), planted_counterexample_query(rng, chain).query):
        one = solve(query, SolverOptions(timeout=30, strategy=strategy))
        two = solve(query, SolverOptions(timeout=30, strategy=strategy, falsify=False).with_jobs(2))
        assert one.verdict in ("sat", "unsat") and two.verdict == one.verdict
        if two.verdict == "sat":
            assert two.counterexample is not None and two.counterexample.reference == "onnxruntime"
    assert _children_alive() == 0


def test_mnist_relu_bab_shared_between_two_processes():
    folder = benchmark_dir("mnistfc")
    query = load_query(load_onnx(folder / "mnist-net_256x2.onnx"), folder / "prop_5_0.03.vnnlib")
    result = solve(query, SolverOptions(timeout=120).with_jobs(2))
    assert result.verdict == "unsat"
    assert result.statistics.subproblems > 10 and result.statistics.relu_splits > 0  # the workers' counts came back
    assert _children_alive() == 0


def test_acasxu_input_split_shared_between_two_processes():
    folder = benchmark_dir("acasxu")
    query = load_query(load_onnx(folder / "ACASXU_run2a_1_2_batch_2000.onnx"), folder / "prop_3.vnnlib")
    one = solve(query, SolverOptions(timeout=120))
    two = solve(query, SolverOptions(timeout=120).with_jobs(2))
    assert one.verdict == two.verdict == "unsat"
    assert two.statistics.boxes >= 0.5 * one.statistics.boxes
    assert _children_alive() == 0


def test_shared_search_keeps_the_deadline():
    folder = benchmark_dir("mnistfc")
    # 256x4 prop 3 takes minutes (prop 0, once used here, is now proven in about a second)
    query = load_query(load_onnx(folder / "mnist-net_256x4.onnx"), folder / "prop_3_0.03.vnnlib")
    started = time.monotonic()
    result = solve(query, SolverOptions(timeout=4).with_jobs(2))
    assert result.verdict == "timeout"
    assert time.monotonic() - started < 12
    assert _children_alive() == 0


class _ListSearch:
    """A shareable search over plain items that does no work: what the protocol does with its pool."""

    def __init__(self, items) -> None:
        from reluverify.solver.result import Statistics

        self.items = list(items)
        self.statistics, self.undecided, self.proven = Statistics(), [], 0.0

    def open_count(self) -> int:
        return len(self.items)

    def split_off(self, parts: int) -> list:
        items, self.items = self.items, []
        return [items[k::parts] for k in range(parts)]

    def add(self, payload) -> None:
        self.items.extend(payload)

    def work(self, seconds: float):
        time.sleep(min(seconds, 0.01))

    def reset_statistics(self) -> None:
        pass


@pytest.mark.parametrize("size", [1, 2, 7, 40])
def test_a_worker_asked_for_work_keeps_the_half_it_does_not_give(size):
    """Work stealing moves items, never drops them: once a worker with ``size`` items was asked for a
    share, the share and what it kept are its items, each once. (A worker once kept nothing: the
    other half of its pool was lost, and ``--jobs 2`` proved MNIST 256x4 prop 9 with 30% of its
    search tree never looked at.)"""
    import threading

    from reluverify.solver.sharing import _worker

    search = _ListSearch(range(size))
    parent, child = multiprocessing.Pipe()
    thread = threading.Thread(target=_worker, args=(search, [], child), daemon=True)
    thread.start()
    parent.send(("request",))
    while True:
        assert parent.poll(10), "the worker did not answer"
        kind, *data = parent.recv()
        if kind == "share":
            break
    share, left = data
    parent.send(("stop",))
    thread.join(timeout=5)
    given = [] if share is None else list(share)
    assert sorted(given + search.items) == list(range(size))
    assert left == len(search.items) == size - len(given)
    assert len(given) == (size // 2 if size > 1 else 0)


def test_an_unsat_shared_search_has_refuted_its_whole_tree(monkeypatch):
    """The share of the tree refuted (a sub-problem ``d`` splits deep weighs ``2^-d``) adds up to 1
    when two processes prove MNIST 256x4 prop 9, as when one does; a search that refuted less than
    all of it ends ``unknown`` (:func:`input_split.exhausted`), never ``unsat``."""
    from reluverify.solver.relu_bab import search as relu_bab
    from reluverify.solver.search import exhausted

    shares = []
    finish = relu_bab._Search.finish
    monkeypatch.setattr(relu_bab._Search, "finish", lambda self: shares.append(self.proven) or finish(self))
    folder = benchmark_dir("mnistfc")
    query = load_query(load_onnx(folder / "mnist-net_256x4.onnx"), folder / "prop_9_0.03.vnnlib")
    result = solve(query, SolverOptions(timeout=120).with_jobs(2))
    assert result.verdict == "unsat"
    assert shares and abs(shares[-1] - 1.0) < 1e-9
    assert exhausted(0.7, []).status == "unknown" and exhausted(1.0, []).status == "unsat"
    assert exhausted(1.0, ["a leaf was undecided"]).status == "unknown"


def test_bench_shares_each_instance_among_processes(mnist_dir, tmp_path):
    """``bench --jobs-per-instance 2``: an instance runs in a task process, whose search forks its own
    workers (a task process must be allowed children)."""
    import csv

    from reluverify.cli import main

    out = tmp_path / "bench.csv"
    assert main(["bench", str(mnist_dir), "--filter", "256x2.onnx", "--limit", "2", "--jobs-per-instance", "2",
                 "--csv", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["verdict"] for r in rows] == [r["expected"] for r in rows], [r["reason"] for r in rows]
