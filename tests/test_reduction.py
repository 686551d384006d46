"""The network reduced to a leaf's free ReLUs (solver/reduction.py) and Reluplex on it.

* where the fixed phases hold, the reduced chain computes the network's outputs (random dense
  chains; a CNN whose convolutions are never made dense);
* it is small: its ReLUs are the free ones plus carried values, not the network's;
* ReLU branch and bound whose leaves go to Reluplex after one split (so every leaf runs on a reduced
  tableau) agrees with Reluplex alone on random queries, and never answers ``unsat`` where a
  planted counterexample exists.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import benchmark_dir
from random_queries import planted_counterexample_query, random_chain, random_query
from reluverify.onnx_import import load_onnx
from reluverify.solver import SolverOptions, solve
from reluverify.solver.options import BranchAndBoundOptions
from reluverify.solver.reduction import reduced_chain


def _pattern(chain, x, rng, free_fraction):
    """The phases of ``chain`` at ``x`` (1 active, 0 inactive), a random fraction of them set free (-1)."""
    _, pre = chain.forward(x[None, :])
    phases = np.concatenate([(p[0] > 0).astype(np.int8) for p in pre])
    return np.where(rng.random(phases.size) < free_fraction, -1, phases).astype(np.int8)


def test_reduced_chain_equals_the_network_where_the_phases_hold(rng):
    for _ in range(150):
        sizes = [int(rng.integers(1, 5))] + [int(rng.integers(1, 8)) for _ in range(int(rng.integers(1, 4)))] + [int(rng.integers(1, 4))]
        chain = random_chain(rng, sizes)
        n = chain.input_size
        lower = rng.uniform(-1, 0, n)
        upper = lower + rng.uniform(0.1, 2, n)
        x = rng.uniform(lower, upper)
        phases = _pattern(chain, x, rng, free_fraction=rng.uniform(0, 1))
        reduced = reduced_chain(chain, lower, upper, phases)
        # points with the same phases: x itself, and points where only free neurons changed phase
        points = [x] + [p for p in rng.uniform(lower, upper, size=(200, n))
                        if np.all((_pattern(chain, p, rng, 0.0) == phases) | (phases == -1))]
        points = np.array(points)
        expected = chain.evaluate(points)
        got = reduced.evaluate(points)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * (1 + np.abs(expected).max()))
        assert reduced.num_relus <= int(np.sum(phases == -1)) * len(sizes) + chain.output_size * len(sizes)


def test_reduced_cnn_leaf_is_small_and_exact():
    folder = benchmark_dir("collins_rul_cnn")
    chain = load_onnx(folder / "onnx" / "NN_rul_full_window_20.onnx").relu_chain()
    assert not chain.is_dense  # convolutions stay structured
    rng = np.random.default_rng(7)
    n = chain.input_size
    lower, upper = np.full(n, 0.2), np.full(n, 0.3)
    x = rng.uniform(lower, upper)
    phases = _pattern(chain, x, rng, free_fraction=0.0)
    phases[np.flatnonzero(phases >= 0)[:: max(1, phases.size // 12)]] = -1  # a dozen free ReLUs
    reduced = reduced_chain(chain, lower, upper, phases)
    assert reduced.is_dense and reduced.num_relus < 0.2 * chain.num_relus
    np.testing.assert_allclose(reduced.evaluate(x[None]), chain.evaluate(x[None]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_relu_bab_with_reluplex_leaves_agrees_with_reluplex(seed):
    rng = np.random.default_rng(100 + seed)
    leaves = SolverOptions(timeout=20, strategy="relu-bab", bab=BranchAndBoundOptions(leaf_depth=1), falsify=False)
    exact = SolverOptions(timeout=20, strategy="relu-split", falsify=False)
    decided = leaves_run = 0
    for _ in range(12):
        sizes = [int(rng.integers(2, 4)), int(rng.integers(3, 7)), int(rng.integers(3, 7)), int(rng.integers(2, 4))]
        chain = random_chain(rng, sizes)
        query = random_query(rng, chain)
        a, b = solve(query, leaves), solve(query, exact)
        leaves_run += a.statistics.leaves
        if a.verdict in ("sat", "unsat") and b.verdict in ("sat", "unsat"):
            decided += 1
            assert a.verdict == b.verdict, (sizes, a.verdict, b.verdict, a.reason)
    assert decided >= 8 and leaves_run > 0  # Reluplex did decide leaves on reduced tableaux
    for _ in range(4):
        chain = random_chain(rng, [3, 6, 6, 2])
        planted = planted_counterexample_query(rng, chain)
        assert solve(planted.query, leaves).verdict != "unsat"
