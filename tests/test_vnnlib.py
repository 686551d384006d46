"""VNN-LIB 1.0 reader: every benchmark spec parses into the right Query; errors name file and line."""

from __future__ import annotations

import time

import numpy as np
import pytest

from reluverify.errors import SpecError
from reluverify.network import ReluChain
from reluverify.vnnlib import parse_vnnlib, read_vnnlib

HEADER = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"


def _net(n_in, n_out):
    return ReluChain((np.ones((n_out, n_in)),), (np.zeros(n_out),)).to_network()


def test_every_benchmark_spec_parses(acasxu_dir, mnist_dir, test_bench_dir):
    specs = sorted(acasxu_dir.glob("*.vnnlib")) + sorted(mnist_dir.glob("*.vnnlib")) + sorted(
        test_bench_dir.glob("*.vnnlib")
    )
    assert len(specs) >= 10 + 30 + 4
    for path in specs:
        spec = read_vnnlib(path)
        query = spec.to_query(_net(spec.num_inputs, spec.num_outputs))
        assert np.all(query.lower <= query.upper)


def test_mnist_spec_parses_fast_and_right(mnist_dir):
    path = mnist_dir / "prop_0_0.03.vnnlib"
    assert path.stat().st_size > 70_000
    start = time.perf_counter()
    spec = read_vnnlib(path)
    assert time.perf_counter() - start < 1.0
    assert (spec.num_inputs, spec.num_outputs) == (784, 10)
    assert len(spec.disjuncts) == 9  # label 8 against each other label
    lower, upper, matrix, rhs = spec.disjuncts[0]
    assert np.all(upper - lower <= 0.06 + 1e-6) and np.all(lower >= 0) and np.all(upper <= 1)
    # (>= Y_0 Y_8)  <=>  Y_8 - Y_0 <= 0
    assert matrix.shape == (1, 794) and rhs[0] == 0
    assert matrix[0, 784 + 8] == 1 and matrix[0, 784 + 0] == -1


def test_acas_prop6_has_input_disjunction(acasxu_dir):
    spec = read_vnnlib(acasxu_dir / "prop_6.vnnlib")
    assert len(spec.disjuncts) == 8  # 2 input regions x 4 output disjuncts
    x1_ranges = {(d[0][1], d[1][1]) for d in spec.disjuncts}
    assert x1_ranges == {(0.11140846, 0.499999896), (-0.499999896, -0.11140846)}


def test_acas_prop1_semantics(acasxu_dir):
    spec = read_vnnlib(acasxu_dir / "prop_1.vnnlib")
    (lower, upper, matrix, rhs), = spec.disjuncts
    assert np.allclose(lower, [0.6, -0.5, -0.5, 0.45, -0.5])
    assert np.allclose(upper, [0.679857769, 0.5, 0.5, 0.5, -0.45])
    # (>= Y_0 3.99..)  <=>  -Y_0 <= -3.99..
    assert np.allclose(matrix, [[0, 0, 0, 0, 0, -1, 0, 0, 0, 0]]) and np.isclose(rhs[0], -3.991125645861615)


def test_linear_terms_and_equalities():
    text = HEADER + """
    (assert (<= X_0 1)) (assert (>= X_0 -1)) (assert (<= X_1 1)) (assert (>= X_1 -1))
    (assert (<= (+ (* 2 Y_0) (- Y_1) 0.5) (/ X_0 4)))
    (assert (= Y_1 (- 3)))
    """
    spec = parse_vnnlib(text)
    (_, _, matrix, rhs), = spec.disjuncts
    assert matrix.shape == (3, 4)
    assert np.allclose(matrix[0], [-0.25, 0, 2, -1]) and np.isclose(rhs[0], -0.5)
    assert np.allclose(matrix[1:], [[0, 0, 0, 1], [0, 0, 0, -1]]) and np.allclose(rhs[1:], [-3, 3])


def test_nested_and_or_expand_to_dnf():
    text = HEADER + """
    (assert (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1)))
    (assert (or (and (<= Y_0 0) (or (<= Y_1 0) (>= Y_1 5))) (>= Y_0 2)))
    """
    spec = parse_vnnlib(text)
    assert len(spec.disjuncts) == 3


def _error(text, *fragments):
    with pytest.raises(SpecError) as info:
        parse_vnnlib(text, "spec.vnnlib")
    message = str(info.value)
    assert "\n" not in message
    for f in fragments:
        assert f in message, message


def test_syntax_errors_name_file_line_and_expectation():
    _error(HEADER + "(assert (<= X_0 1)\n", "spec.vnnlib:5", "never closed")
    _error(HEADER + "(assert (<= X_0 1)))\n", "spec.vnnlib:5", "unexpected ')'")
    _error(HEADER + "\n(assert (<= X_7 1))", "spec.vnnlib:6", "X_7", "not declared")
    _error(HEADER + "(assert (< X_0 1))", "strict comparison")
    _error(HEADER + "(assert (<= (* X_0 Y_0) 1))", "non-linear")
    _error(HEADER + "(assert (<= X_0 foo))", "expected a number or a variable")
    _error(HEADER + "(declare-fun f () Real)", "unknown command 'declare-fun'")
    _error(HEADER + "(assert (not (<= X_0 1)))", "not")
    _error("(declare-const X_0 Int)(declare-const Y_0 Real)", "sort Int")
    _error("(declare-const X_1 Real)(declare-const Y_0 Real)", "X_0 is not declared")
    _error(HEADER + "(assert (>= X_0 1)) (assert (<= X_0 0))", "inverted bounds")


def test_wrong_arity_and_unbounded_inputs():
    spec = parse_vnnlib(HEADER + "(assert (<= X_0 1)) (assert (>= X_0 0)) (assert (<= X_1 1))", "s.vnnlib")
    with pytest.raises(SpecError, match="declares 2 inputs .* network has 3"):
        spec.to_query(_net(3, 2))
    with pytest.raises(SpecError, match="declares 2 outputs"):
        spec.to_query(_net(2, 4))
    with pytest.raises(SpecError, match="X_1 has no lower bound"):
        spec.to_query(_net(2, 2))


def test_contradictory_disjunct_is_empty_not_an_error():
    text = HEADER + """
    (assert (>= X_0 0)) (assert (<= X_0 1)) (assert (>= X_1 0)) (assert (<= X_1 1))
    (assert (or (and (>= X_0 2) (<= Y_0 0)) (and (<= Y_1 0))))
    """
    query = parse_vnnlib(text).to_query(_net(2, 2))
    assert query.disjuncts[0].is_empty_box() and not query.disjuncts[1].is_empty_box()
