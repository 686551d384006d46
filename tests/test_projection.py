"""Constant inputs folded into the first layer (reluverify.solver.projection)."""

from __future__ import annotations

import numpy as np
import pytest

from random_queries import random_chain
from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.solver import SolverOptions, solve
from reluverify.solver.projection import project_constant_inputs


def _query(rng, chain, constant, rows=None):
    n, m = chain.input_size, chain.output_size
    lower = rng.uniform(-1.0, 0.0, n)
    upper = lower + rng.uniform(0.2, 1.0, n)
    upper[constant] = lower[constant]
    row = np.zeros((1, n + m))
    row[0, n:] = rng.normal(size=m)
    samples = rng.uniform(lower, upper, (2000, n))
    values = chain.evaluate(samples) @ row[0, n:]
    rhs = np.quantile(values, 0.2)
    disjunct = Disjunct(lower, upper, LinearConstraints(row, [rhs]))
    return Query((chain.to_network(),), lower, upper, (disjunct,), rows)


def test_projected_query_has_the_same_values_on_the_free_inputs():
    rng = np.random.default_rng(0)
    chain = random_chain(rng, [6, 8, 8, 3])
    constant = np.array([True, False, True, True, False, False])
    query = _query(rng, chain, constant)
    projection = project_constant_inputs(query)
    assert projection is not None and projection.query.num_inputs == 3
    reduced = projection.query.relu_chain()
    for _ in range(20):
        free = rng.uniform(projection.query.lower, projection.query.upper)
        full = projection.expand(free)
        np.testing.assert_allclose(full[constant], query.lower[constant])
        np.testing.assert_allclose(reduced.evaluate(free[None])[0], chain.evaluate(full[None])[0], atol=1e-12)
        # every row keeps its value: rows @ [v; y] - rhs is the same in both spaces
        y = chain.evaluate(full[None])[0]
        original = query.disjuncts[0].constraints.residuals(np.concatenate([full, y]))
        projected = projection.query.disjuncts[0].constraints.residuals(np.concatenate([free, y]))
        np.testing.assert_allclose(projected, original, atol=1e-12)


def test_no_projection_without_constant_inputs():
    rng = np.random.default_rng(1)
    chain = random_chain(rng, [3, 5, 2])
    assert project_constant_inputs(_query(rng, chain, np.zeros(3, dtype=bool))) is None


@pytest.mark.parametrize("seed", range(8))
def test_verdicts_agree_with_and_without_projection(seed):
    rng = np.random.default_rng(10 + seed)
    chain = random_chain(rng, [5, 10, 10, 2])
    constant = rng.random(5) < 0.6
    constant[0] = False
    query = _query(rng, chain, constant)
    with_projection = solve(query, SolverOptions(timeout=20))
    without = solve(query, SolverOptions(timeout=20, fold_constant_inputs=False))
    assert {with_projection.verdict, without.verdict} <= {"sat", "unsat"}
    assert with_projection.verdict == without.verdict
    if with_projection.verdict == "sat":
        cex = with_projection.counterexample.inputs
        assert cex.shape == (5,)
        np.testing.assert_array_equal(cex[constant], query.lower[constant])


def test_an_input_row_over_constants_that_fails_makes_the_query_unsat():
    rng = np.random.default_rng(2)
    chain = random_chain(rng, [3, 6, 2])
    constant = np.array([True, True, False])
    base = _query(rng, chain, constant)
    # x0 + x1 <= (their constant sum) - 1: impossible
    rows = LinearConstraints(np.array([[1.0, 1.0, 0.0]]), [base.lower[0] + base.lower[1] - 1.0])
    query = Query(base.networks, base.lower, base.upper, base.disjuncts, rows)
    assert project_constant_inputs(query).empty
    assert solve(query, SolverOptions(timeout=10)).verdict == "unsat"
