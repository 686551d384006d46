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
        two = solve(query, SolverOptions(timeout=30, strategy=strategy, jobs=2, falsify=False))
        assert one.verdict in ("sat", "unsat") and two.verdict == one.verdict
        if two.verdict == "sat":
            assert two.counterexample is not None and two.counterexample.reference == "onnxruntime"
    assert _children_alive() == 0


def test_mnist_relu_bab_shared_between_two_processes():
    folder = benchmark_dir("mnistfc")
    query = load_query(load_onnx(folder / "mnist-net_256x2.onnx"), folder / "prop_5_0.03.vnnlib")
    result = solve(query, SolverOptions(timeout=120, jobs=2))
    assert result.verdict == "unsat"
    assert result.statistics.subproblems > 10 and result.statistics.relu_splits > 0  # the workers' counts came back
    assert _children_alive() == 0


def test_acasxu_input_split_shared_between_two_processes():
    folder = benchmark_dir("acasxu")
    query = load_query(load_onnx(folder / "ACASXU_run2a_1_2_batch_2000.onnx"), folder / "prop_3.vnnlib")
    one = solve(query, SolverOptions(timeout=120))
    two = solve(query, SolverOptions(timeout=120, jobs=2))
    assert one.verdict == two.verdict == "unsat"
    assert two.statistics.boxes >= 0.5 * one.statistics.boxes
    assert _children_alive() == 0


def test_shared_search_keeps_the_deadline():
    folder = benchmark_dir("mnistfc")
    # 256x4 prop 3 takes minutes (prop 0, once used here, is now proven in about a second)
    query = load_query(load_onnx(folder / "mnist-net_256x4.onnx"), folder / "prop_3_0.03.vnnlib")
    started = time.monotonic()
    result = solve(query, SolverOptions(timeout=4, jobs=2))
    assert result.verdict == "timeout"
    assert time.monotonic() - started < 12
    assert _children_alive() == 0
