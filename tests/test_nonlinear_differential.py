"""The nonlinear procedure on ReLU-only queries against the exact Reluplex solver.

``solve_nonlinear`` accepts any DAG; on ReLU chains the exact procedure (``solve``) is the
reference. The two must never contradict each other (one ``sat``, the other ``unsat``), on
random queries with input rows, sub-boxes, empty boxes and exactly-equal outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from random_queries import random_chain, random_query

from reluverify.solver import SolverOptions, solve
from reluverify.solver.nonlinear import NonlinearOptions, solve_nonlinear
from reluverify.solver.result import SAT, UNSAT


@pytest.mark.parametrize("seed", range(30))
def test_never_contradicts_reluplex_on_relu_chains(seed):
    rng = np.random.default_rng(500 + seed)
    inputs = int(rng.integers(1, 4))
    sizes = [inputs] + [int(rng.integers(2, 6)) for _ in range(int(rng.integers(1, 3)))] + [int(rng.integers(1, 4))]
    chain = random_chain(rng, sizes, cancel=bool(seed % 3 == 0))
    query = random_query(rng, chain)
    ours = solve_nonlinear(query, NonlinearOptions(timeout=5.0, random_samples=200, attack_steps=20))
    exact = solve(query, SolverOptions(timeout=10.0))
    assert {ours.verdict, exact.verdict} != {SAT, UNSAT}, (ours.reason, exact.reason)
    for k, (a, b) in enumerate(zip(ours.disjunct_verdicts, exact.disjunct_verdicts)):
        assert {a, b} != {SAT, UNSAT}, f"disjunct {k}"
    if ours.verdict == SAT:
        assert query.in_region(ours.counterexample.inputs, 1e-9)
