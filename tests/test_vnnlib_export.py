"""A compiled query written as VNN-LIB 1.0 reads back (``load_query``) as the same query."""

from __future__ import annotations

import numpy as np
import pytest

from random_queries import random_chain, random_query
from reluverify.errors import ReluverifyError
from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.vnnlib import load_query
from reluverify.vnnlib_export import vnnlib_text, write_vnnlib


def expected_readback(query: Query, k: int):
    """Disjunct ``k`` as the module docstring says the reader sees it: (empty, lower, upper, rows, rhs)."""
    n, m = query.num_inputs, query.num_outputs
    d = query.disjuncts[k]
    lower, upper = d.lower.copy(), d.upper.copy()
    extra = query.input_constraints
    rows = list(zip(d.constraints.matrix, d.constraints.rhs))
    rows += [(np.concatenate([a, np.zeros(m)]), b) for a, b in zip(extra.matrix, extra.rhs)]
    kept, empty = [], False
    for row, rhs in rows:
        nz = np.flatnonzero(row)
        if nz.size == 0:
            empty |= rhs < 0
        elif nz.size == 1 and nz[0] < n:
            i = nz[0]
            if row[i] > 0:
                upper[i] = min(upper[i], rhs / row[i])
            else:
                lower[i] = max(lower[i], rhs / row[i])
        else:
            kept.append((row, rhs))
    empty |= bool(np.any(lower > upper))
    matrix = np.array([r for r, _ in kept]).reshape(len(kept), n + m)
    return empty, lower, upper, matrix, np.array([b for _, b in kept])


def test_random_queries_round_trip(tmp_path):
    written = 0
    for seed in range(120):
        rng = np.random.default_rng(seed)
        sizes = [int(rng.integers(1, 4)), *rng.integers(1, 5, size=int(rng.integers(1, 3))), int(rng.integers(1, 4))]
        chain = random_chain(rng, sizes, cancel=bool(rng.random() < 0.3))
        query = random_query(rng, chain, input_rows=int(rng.integers(0, 3)))
        path = tmp_path / f"q{seed}.vnnlib"
        expected = [expected_readback(query, k) for k in range(len(query.disjuncts))]
        if len(expected) == 1 and expected[0][0]:
            with pytest.raises(ReluverifyError, match="only disjunct is empty"):
                write_vnnlib(query, path)
            continue
        write_vnnlib(query, path)
        back = load_query(query.networks[0], path)
        written += 1
        assert back.num_inputs == query.num_inputs and back.num_outputs == query.num_outputs
        assert len(back.disjuncts) == len(query.disjuncts) and back.input_constraints.num_rows == 0
        for k, (empty, lower, upper, matrix, rhs) in enumerate(expected):
            d = back.disjuncts[k]
            assert (d.is_empty_box() or np.any(~np.any(d.constraints.matrix != 0, axis=1) & (d.constraints.rhs < 0))) == empty
            if empty:
                continue
            np.testing.assert_array_equal(d.lower, lower)
            np.testing.assert_array_equal(d.upper, upper)
            np.testing.assert_array_equal(d.constraints.matrix, matrix)  # bit for bit: repr(float) round-trips
            np.testing.assert_array_equal(d.constraints.rhs, rhs)
        # the same points are counterexamples (away from the rounded single-input bounds)
        v = rng.uniform(query.lower - 0.1, query.upper + 0.1, size=(200, query.num_inputs))
        y = query.outputs(v)
        for point, out in zip(v, y):
            before = query.satisfied_disjuncts(point, out) if query.in_region(point) else []
            after = back.satisfied_disjuncts(point, out) if back.in_region(point) else []
            assert before == after
    assert written > 80


def test_numbers_are_exact_decimals():
    chain = random_chain(np.random.default_rng(0), [2, 3, 2])
    lower, upper = np.array([0.1, -1e-300]), np.array([1 / 3, 2.5e10])
    mat = np.array([[0.0, 1 / 7, 1.0, -3e-17]])
    q = Query((chain.to_network(),), lower, upper, (Disjunct(lower, upper, LinearConstraints(mat, [-0.0])),))
    text = vnnlib_text(q)
    assert "(<= X_0 0.3333333333333333)" in text and "(>= X_1 -1e-300)" in text
    assert "(<= (+ (* 0.14285714285714285 X_1) (* 1.0 Y_0) (* -3e-17 Y_1)) -0.0)" in text


def test_queries_that_are_not_one_network_are_refused():
    rng = np.random.default_rng(1)
    net = random_chain(rng, [2, 3, 1]).to_network()
    box = np.zeros(4), np.ones(4)
    two = Query((net, net), *box, (Disjunct(*box, LinearConstraints(np.ones((1, 6)), [0.0])),))
    with pytest.raises(ReluverifyError, match="2 network copies"):
        vnnlib_text(two)
    aux = Query((net,), np.zeros(3), np.ones(3), (Disjunct(np.zeros(3), np.ones(3), LinearConstraints(np.ones((1, 4)), [0.0])),),
                num_auxiliary=1)
    with pytest.raises(ReluverifyError, match="auxiliary variables"):
        vnnlib_text(aux)
