"""Edge cases that produced wrong answers in other verifiers, decided by ``solve`` in every
configuration (both strategies, with and without falsification) and by z3; plus the CLI on the
test benchmarks.

Each query's answer is known by construction (margins of at least 1e-3, far above every tolerance),
so an exact verdict is asserted, and every ``sat`` counterexample is checked as in the
differential tests (inside the boxes, onnxruntime outputs satisfy the disjunct).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from onnx_builders import model, save, tensor, value
from random_queries import random_chain, random_query
from reluverify.benchmark import load_instances
from reluverify.cli import main
from reluverify.errors import QueryError, SpecError
from reluverify.network import ActivationNode, AffineNode, InputNode, Network, ReluChain
from reluverify.onnx_import import load_onnx
from reluverify.onnx_runtime import reference_model
from reluverify.query import Disjunct, LinearConstraints, Query, box_query
from reluverify.solver import SolverOptions, solve
from reluverify.solver.confirm import confirm, reference_outputs
from reluverify.solver.z3_encoding import decide_with_z3
from reluverify.vnnlib import load_query, parse_vnnlib
from test_solver_differential import CONFIGS, check_result, compare

CONFIRM_TOLERANCE = SolverOptions().tolerances.confirm


def decide_everywhere(query: Query, expected: str, z3: bool = True) -> dict:
    """Every configuration must reach ``expected``; returns the results by configuration."""
    if z3:
        assert decide_with_z3(query, timeout_s=30).verdict == expected, "z3"
    results = {}
    for name, options in CONFIGS.items():
        result = solve(query, options)
        check_result(query, result, options, name)
        assert result.verdict == expected, (name, result.verdict, result.reason)
        results[name] = result
    return results


def chain(*layers) -> ReluChain:
    return ReluChain(tuple(np.asarray(w, float) for w, _ in layers), tuple(np.asarray(b, float) for _, b in layers))


def at_least(c, d):
    """The row ``c @ y >= d`` as box_query's ``(c', d')`` meaning ``c' @ y <= d'``."""
    return (-np.asarray(c, float), -float(d))


def at_most(c, d):
    return (np.asarray(c, float), float(d))


BOX = (np.array([-1.0]), np.array([1.0]))
ABS = chain(([[1.0], [-1.0]], [0.0, 0.0]), ([[1.0, 1.0]], [0.0]))


# ------------------------------------------------------------------ constant inputs
def test_all_inputs_constant_sat_and_unsat():
    net = chain(([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.25]], [0.1, -0.2, 0.3]), ([[1.0, -1.0, 0.5]], [0.05])).to_network()
    x0 = np.array([0.3, -0.4])
    y = float(net.evaluate(x0)[0])
    sat = decide_everywhere(box_query(net, x0, x0, [[at_least([1.0], y - 1e-3)]]), "sat")
    for result in sat.values():
        np.testing.assert_array_equal(result.counterexample.inputs, x0)
    decide_everywhere(box_query(net, x0, x0, [[at_least([1.0], y + 1e-3)]]), "unsat")
    decide_everywhere(box_query(net, x0, x0, [[at_most([1.0], y - 1e-3)], [at_least([1.0], y + 1e-3)]]), "unsat")


def test_some_inputs_constant():
    """y = relu(x0 + x1) with x1 fixed to 0.25: the maximum 1.25 is at x0 = 1."""
    net = chain(([[1.0, 1.0]], [0.0]), ([[1.0]], [0.0])).to_network()
    lower, upper = np.array([-1.0, 0.25]), np.array([1.0, 0.25])
    for result in decide_everywhere(box_query(net, lower, upper, [[at_least([1.0], 1.249)]]), "sat").values():
        assert result.counterexample.inputs[1] == 0.25
    decide_everywhere(box_query(net, lower, upper, [[at_least([1.0], 1.251)]]), "unsat")


# ------------------------------------------------------------------ inverted and invalid bounds
def test_inverted_bounds_are_refused_at_construction():
    net = ABS.to_network()
    with pytest.raises(QueryError, match="inverted"):
        box_query(net, np.array([1.0]), np.array([-1.0]), [[at_least([1.0], 0.0)]])
    always = LinearConstraints(np.zeros((1, 2)), np.ones(1))
    with pytest.raises(QueryError, match="inverted"):
        Query((net,), np.array([0.5]), np.array([0.5 - 1e-12]), (Disjunct(*BOX, always),))
    with pytest.raises(QueryError, match="NaN"):
        Query((net,), np.array([np.nan]), np.array([1.0]), (Disjunct(*BOX, always),))
    with pytest.raises(QueryError, match="unbounded"):
        Query((net,), np.array([-np.inf]), np.array([1.0]), (Disjunct(*BOX, always),))
    with pytest.raises(QueryError, match="NaN"):
        Query((net,), *BOX, (Disjunct(np.array([np.nan]), np.array([1.0]), always),))


def test_inverted_bounds_in_vnnlib_are_a_cli_error_not_a_verdict(test_bench_dir, tmp_path, capsys):
    spec = tmp_path / "inverted.vnnlib"
    spec.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
                    "(assert (>= X_0 1))\n(assert (<= X_0 -1))\n(assert (<= Y_0 0))\n")
    out = tmp_path / "result.txt"
    status = main(["vnnlib", str(test_bench_dir / "test_nano.onnx"), str(spec), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith("reluverify: error: ") and captured.err.count("\n") == 1
    assert "inverted" in captured.err and "X_0" in captured.err
    assert captured.out == "" and not out.exists(), "no verdict may be reported"


# ------------------------------------------------------------------ empty input regions
def _always(width: int) -> LinearConstraints:
    return LinearConstraints(np.zeros((1, width)), np.ones(1))  # 0 <= 1


def test_disjunct_box_empty_after_intersection_is_unsat():
    net = chain(([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), ([[1.0, 1.0]], [0.0])).to_network()
    lo, hi = np.zeros(2), np.ones(2)
    outside = Disjunct(lo + 2.0, hi + 2.0, _always(3), "beyond the box")  # meets the query box nowhere
    query = Query((net,), lo, hi, (outside,))
    assert query.disjuncts[0].is_empty_box()
    decide_everywhere(query, "unsat")
    # with a second, satisfiable disjunct the empty one is simply skipped
    results = decide_everywhere(query.with_disjuncts([outside, Disjunct(lo, hi, _always(3))]), "sat")
    assert all(r.counterexample.disjunct == 1 and r.disjunct_verdicts[0] == "unsat" for r in results.values())


@pytest.mark.parametrize("rows, rhs", [
    ([[-1.0, -1.0]], [-3.0]),  # x0 + x1 >= 3 on [0, 1]^2
    ([[-1.0, -1.0], [1.0, 0.0]], [-1.6, 0.5]),  # x0 + x1 >= 1.6 and x0 <= 0.5: only jointly infeasible
    ([[1.0, -1.0], [-1.0, 1.0]], [-0.5, -0.5]),  # x0 - x1 <= -0.5 and x1 - x0 <= -0.5
])
def test_input_rows_infeasible_with_the_box_are_unsat(rows, rhs):
    net = chain(([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), ([[1.0, 1.0]], [0.0])).to_network()
    lo, hi = np.zeros(2), np.ones(2)
    query = Query((net,), lo, hi, (Disjunct(lo, hi, _always(3)),), LinearConstraints(np.array(rows), np.array(rhs)))
    decide_everywhere(query, "unsat")


def test_input_rows_feasible_in_the_query_box_but_not_in_the_disjunct_box():
    net = chain(([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), ([[1.0, 1.0]], [0.0])).to_network()
    lo, hi = np.zeros(2), np.full(2, 2.0)
    rows = LinearConstraints(np.array([[-1.0, -1.0]]), np.array([-3.0]))  # x0 + x1 >= 3
    small = Disjunct(np.zeros(2), np.ones(2), _always(3), "small box")
    decide_everywhere(Query((net,), lo, hi, (small,), rows), "unsat")
    results = decide_everywhere(Query((net,), lo, hi, (small, Disjunct(lo, hi, _always(3))), rows), "sat")
    for r in results.values():
        assert r.counterexample.disjunct == 1 and r.counterexample.inputs.sum() >= 3 - 1e-9


def test_vnnlib_whose_every_disjunct_is_empty_is_unsat():
    spec = parse_vnnlib("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
                        "(assert (or (and (>= X_0 2) (<= X_0 1) (<= Y_0 5)) (and (>= X_0 0) (<= X_0 -0.5))))\n")
    query = spec.to_query(ABS.to_network())
    assert all(d.is_empty_box() for d in query.disjuncts)
    decide_everywhere(query, "unsat")


# A disjunct with no rows at all (only its box; VNN-LIB "(and (>= X_0 a) (<= X_0 b))") holds at every
# point of its box. Bug (reported): input splitting has no row to rank and crashes on an empty argmax.


@pytest.mark.parametrize("name", CONFIGS)
def test_disjunct_without_rows_holds_on_its_box(name):
    """Minimal reproducer: y = relu(x) on [-1, 1], one disjunct: x in [0.5, 0.7] and nothing else -> sat."""
    net = RELU.to_network()
    query = Query((net,), *BOX, (Disjunct(np.array([0.5]), np.array([0.7]), LinearConstraints(np.zeros((0, 2)), np.zeros(0))),))
    options = CONFIGS[name]
    result = solve(query, options)
    check_result(query, result, options, name)
    assert result.verdict == "sat" and 0.5 <= result.counterexample.inputs[0] <= 0.7


def test_networks_without_relus():
    linear = ReluChain((np.array([[1.0, 2.0]]),), (np.array([0.5]),)).to_network()  # y = x0 + 2 x1 + 0.5
    lo, hi = -np.ones(2), np.ones(2)
    for r in decide_everywhere(box_query(linear, lo, hi, [[at_least([1.0], 3.5)]]), "sat").values():
        np.testing.assert_array_equal(r.counterexample.inputs, [1.0, 1.0])
    decide_everywhere(box_query(linear, lo, hi, [[at_least([1.0], 3.501)]]), "unsat")
    bare = Network((InputNode(2),))  # the output is the input
    decide_everywhere(box_query(bare, lo, hi, [[at_least([1.0, 1.0], 2.0)]]), "sat")
    decide_everywhere(box_query(bare, lo, hi, [[at_least([1.0, 1.0], 2.001)]]), "unsat")


def test_two_networks_of_different_depth():
    """Stacking pads the shallower copy with relu(h) - relu(-h) layers; the answer must not change."""
    deep = chain(([[1.0]], [0.0]), ([[1.0]], [0.0]), ([[1.0]], [0.0])).to_network()  # relu(relu(x))
    linear = ReluChain((np.array([[2.0]]),), (np.zeros(1),)).to_network()  # 2 x
    lo, hi = -np.ones(2), np.ones(2)

    def query(rhs):  # y_deep + y_linear <= rhs
        row = LinearConstraints(np.array([[0.0, 0.0, 1.0, 1.0]]), np.array([rhs]))
        return Query((deep, linear), lo, hi, (Disjunct(lo, hi, row),))

    for r in decide_everywhere(query(-2.0), "sat").values():
        assert r.counterexample.inputs[0] <= 0.0 and r.counterexample.inputs[1] == -1.0
    decide_everywhere(query(-2.001), "unsat")


# ------------------------------------------------------------------ confirmation at the box boundary
RELU = chain(([[1.0]], [0.0]), ([[1.0]], [0.0]))  # y = relu(x)


def test_confirm_pulls_a_candidate_just_outside_the_box_inside():
    query = box_query(RELU.to_network(), np.array([0.0]), np.array([1.0]), [[at_least([1.0], 0.5)]])
    cex = confirm(query, np.array([1.0 + 1e-9]), CONFIRM_TOLERANCE)
    assert cex is not None
    assert cex.inputs[0] == 1.0, "the reported point must be inside the box exactly"
    np.testing.assert_array_equal(cex.outputs, reference_outputs(query, cex.inputs))
    # just below the lower bound: y = 0 there, which violates y >= 0.5 -> rejected, not reported
    assert confirm(query, np.array([-1e-9]), CONFIRM_TOLERANCE) is None
    inside = box_query(RELU.to_network(), np.array([0.0]), np.array([1.0]), [[at_most([1.0], 0.5)]])
    cex = confirm(inside, np.array([-1e-9]), CONFIRM_TOLERANCE)
    assert cex is not None and cex.inputs[0] == 0.0


def test_confirm_rejects_a_violation_that_exists_only_outside_the_box():
    query = box_query(RELU.to_network(), np.array([0.0]), np.array([1.0]), [[at_least([1.0], 1.001)]])
    assert query.outputs(np.array([1.002]))[0] >= 1.001  # the candidate violates, but outside the box
    assert confirm(query, np.array([1.002]), CONFIRM_TOLERANCE) is None
    assert confirm(query, np.array([1.0 + 1e-9]), CONFIRM_TOLERANCE) is None
    decide_everywhere(query, "unsat")


def test_confirm_respects_the_disjunct_box_and_the_input_rows():
    net = RELU.to_network()
    lo, hi = np.array([0.0]), np.array([1.0])
    rows = np.array([[0.0, -1.0]])  # y >= 0.5 ...
    half = Disjunct(np.array([0.0]), np.array([0.5]), LinearConstraints(rows, [-0.5]))  # ... on x in [0, 0.5]
    query = Query((net,), lo, hi, (half,))
    cex = confirm(query, np.array([0.7]), CONFIRM_TOLERANCE)  # re-checked at 0.5, where it holds
    assert cex is not None and cex.inputs[0] == 0.5
    tighter = Query((net,), lo, hi, (Disjunct(half.lower, half.upper, LinearConstraints(rows, [-0.6])),))
    assert confirm(tighter, np.array([0.7]), CONFIRM_TOLERANCE) is None  # y(0.5) = 0.5 < 0.6
    # an input row x <= 0.3 rules the candidate out even though the output condition holds there
    limited = Query((net,), lo, hi, (Disjunct(lo, hi, LinearConstraints(rows, [-0.2])),),
                    LinearConstraints(np.array([[1.0]]), np.array([0.3])))
    assert confirm(limited, np.array([0.6]), CONFIRM_TOLERANCE) is None
    assert confirm(limited, np.array([0.3 + 1e-12]), CONFIRM_TOLERANCE) is not None  # within INPUT_TOLERANCE
    assert confirm(limited, np.array([np.nan]), CONFIRM_TOLERANCE) is None
    assert confirm(limited, np.array([0.25, 0.25]), CONFIRM_TOLERANCE) is None  # wrong number of inputs


# ------------------------------------------------------------------ cancelling weights
def test_exactly_cancelling_units():
    """relu(x + 0.3) - relu(x + 0.3) == 0 exactly (bounds alone see [-1.3, 1.3]); relu(x) - relu(-x) == x."""
    zero = chain(([[1.0], [1.0]], [0.3, 0.3]), ([[1.0, -1.0]], [0.0])).to_network()
    decide_everywhere(box_query(zero, *BOX, [[at_least([1.0], 1e-3)]]), "unsat")
    decide_everywhere(box_query(zero, *BOX, [[at_most([1.0], -1e-3)]]), "unsat")
    decide_everywhere(box_query(zero, *BOX, [[at_least([1.0], 0.0)]]), "sat")
    identity = chain(([[1.0], [-1.0]], [0.0, 0.0]), ([[1.0, -1.0]], [0.0])).to_network()
    decide_everywhere(box_query(identity, *BOX, [[at_least([1.0], 1.0)]]), "sat")
    decide_everywhere(box_query(identity, *BOX, [[at_least([1.0], 1.001)]]), "unsat")
    for r in decide_everywhere(box_query(identity, *BOX, [[at_least([1.0], 0.3), at_most([1.0], 0.3)]]), "sat").values():
        assert abs(r.counterexample.inputs[0] - 0.3) <= 1e-6
    twins = chain(([[1.0], [-1.0]], [0.1, 0.2]), ([[1.0, 2.0], [1.0, 2.0]], [0.5, 0.5])).to_network()  # y0 == y1
    decide_everywhere(box_query(twins, *BOX, [[at_least([1.0, -1.0], 1e-3)], [at_most([1.0, -1.0], -1e-3)]]), "unsat")


@pytest.mark.parametrize("seed", range(8))
def test_random_cancelling_chains_agree_with_z3(seed):
    rng = np.random.default_rng(700 + seed)
    sizes = [int(rng.integers(1, 4)), *rng.integers(4, 7, int(rng.integers(1, 3))), int(rng.integers(2, 4))]
    net = random_chain(rng, sizes, cancel=True, mantissa_bits=8)
    _agree_with_z3(random_query(rng, net))


def _agree_with_z3(query: Query) -> None:
    z3 = decide_with_z3(query, timeout_s=30)
    assert z3.verdict in ("sat", "unsat")
    for name, options in CONFIGS.items():
        result = solve(query, options)
        check_result(query, result, options, name)
        compare(query, z3.verdict, result, options, name)


# ------------------------------------------------------------------ huge and tiny weights
def test_huge_weights_steep_ramp():
    """y = 1e4 (relu(x) - relu(x - 1e-4)): 0 for x <= 0, a ramp up to 1 on [0, 1e-4], then 1."""
    ramp = chain(([[1.0], [1.0]], [0.0, -1e-4]), ([[1e4, -1e4]], [0.0])).to_network()
    decide_everywhere(box_query(ramp, *BOX, [[at_least([1.0], 1.001)]]), "unsat")
    decide_everywhere(box_query(ramp, *BOX, [[at_most([1.0], -1e-3)]]), "unsat")
    window = decide_everywhere(box_query(ramp, *BOX, [[at_least([1.0], 0.4), at_most([1.0], 0.6)]]), "sat")
    for r in window.values():  # only x in [4e-5, 6e-5] qualifies
        assert 4e-5 - 1e-9 <= r.counterexample.inputs[0] <= 6e-5 + 1e-9


def test_tiny_weights():
    tiny = chain(([[1.0], [-1.0]], [0.0, 0.0]), ([[1e-4, 1e-4]], [0.0])).to_network()  # 1e-4 |x|
    decide_everywhere(box_query(tiny, *BOX, [[at_least([1.0], 0.9e-4)]]), "sat")
    decide_everywhere(box_query(tiny, *BOX, [[at_least([1.0], 1.1e-4)]]), "unsat")
    decide_everywhere(box_query(tiny, *BOX, [[at_least([1.0], 0.39e-4), at_most([1.0], 0.4e-4)]]), "sat")
    scaled = chain(([[1e-4], [-1e-4]], [0.0, 0.0]), ([[1e4, 1e4]], [0.0])).to_network()  # tiny then huge: |x|
    decide_everywhere(box_query(scaled, *BOX, [[at_least([1.0], 0.999)]]), "sat")
    decide_everywhere(box_query(scaled, *BOX, [[at_least([1.0], 1.001)]]), "unsat")


def test_tiny_input_width_with_huge_weights():
    """x in [0, 9e-10] (below the feasibility tolerance) and y = 1e4 relu(x): y >= 8e-6 holds at x = 9e-10.
    Regression: the exact search once answered unsat here (the simplex never moved x)."""
    for w1, w2 in [(1e4, 1.0), (1.0, 1e4), (1e2, 1e2)]:
        net = chain(([[w1]], [0.0]), ([[w2]], [0.0])).to_network()
        lower, upper = np.array([0.0]), np.array([9e-10])
        decide_everywhere(box_query(net, lower, upper, [[at_least([1.0], 8e-6)]]), "sat")
        decide_everywhere(box_query(net, lower, upper, [[at_least([1.0], 1e-5 + 2e-6)]]), "unsat")


@pytest.mark.parametrize("seed", range(8))
def test_random_huge_and_tiny_chains_agree_with_z3(seed):
    """Decided answers agree with z3; an answer that float32 onnxruntime cannot confirm may be unknown."""
    rng = np.random.default_rng(800 + seed)
    sizes = [int(rng.integers(1, 4)), *rng.integers(2, 7, int(rng.integers(1, 3))), int(rng.integers(1, 4))]
    net = random_chain(rng, sizes, huge=seed % 2 == 0, tiny=seed % 2 == 1 or seed % 3 == 0, mantissa_bits=8)
    _agree_with_z3(random_query(rng, net))


def test_auto_strategy_decides_a_small_query_with_huge_weights():
    """Reproducer (random_queries seed 329): 4 inputs, layers 7-5, weights up to ~1e4, three disjuncts."""
    rng = np.random.default_rng(329)
    sizes = [int(rng.integers(2, 5)), *rng.integers(4, 8, int(rng.integers(2, 4))), int(rng.integers(1, 4))]
    net = random_chain(rng, sizes, huge=True, mantissa_bits=8)
    query = random_query(rng, net)
    assert solve(query, SolverOptions(timeout=10, strategy="relu-split")).verdict == "unsat"
    assert decide_with_z3(query, timeout_s=30).verdict == "unsat"
    result = solve(query, SolverOptions(timeout=10))  # the default strategy
    assert result.verdict == "unsat", (result.verdict, result.reason, result.statistics.boxes)


# ------------------------------------------------------------------ a ReLU directly on the input
def test_relu_directly_on_the_input():
    # y = relu(x0) - relu(x1): the chain view inserts an identity layer before the ReLUs
    net = Network((InputNode(2), ActivationNode("relu", 0, 2), AffineNode((1,), (np.array([[1.0, -1.0]]),), np.zeros(1))))
    assert net.relu_chain().layer_sizes == (2,)
    lo, hi = -np.ones(2), np.ones(2)
    for r in decide_everywhere(box_query(net, lo, hi, [[at_least([1.0], 1.0)]]), "sat").values():
        assert r.counterexample.inputs[0] == 1.0 and r.counterexample.inputs[1] <= 0.0
    decide_everywhere(box_query(net, lo, hi, [[at_least([1.0], 1.001)]]), "unsat")
    decide_everywhere(box_query(net, lo, hi, [[at_most([1.0], -1.001)]]), "unsat")
    # and a network that is nothing but a ReLU: y = relu(x)
    bare = Network((InputNode(2), ActivationNode("relu", 0, 2)))
    decide_everywhere(box_query(bare, lo, hi, [[at_most([1.0, 0.0], -1e-3)]]), "unsat")
    decide_everywhere(box_query(bare, lo, hi, [[at_least([1.0, 1.0], 2.0)]]), "sat")


def test_relu_on_the_input_of_an_onnx_file(tmp_path):
    """The same through an ONNX file: confirmation then runs onnxruntime on that file."""
    w = np.array([[1.0, -1.0]], dtype=np.float32)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Gemm", ["r", "W", "B"], ["y"], transB=1)]
    path = save(model(nodes, [value("x", [1, 2])], [value("y", [1, 1])], [tensor("W", w), tensor("B", [0.5])]),
                tmp_path / "relu_first.onnx")
    net = load_onnx(path)
    lo, hi = -np.ones(2), np.ones(2)
    for r in decide_everywhere(box_query(net, lo, hi, [[at_least([1.0], 1.5)]]), "sat").values():
        np.testing.assert_array_equal(r.counterexample.outputs, reference_model(path)(r.counterexample.inputs))
    decide_everywhere(box_query(net, lo, hi, [[at_least([1.0], 1.501)]]), "unsat")


# ------------------------------------------------------------------ ties on a decision boundary
def test_tie_at_a_box_corner_is_sat():
    """y0 = relu(x0) + relu(x1), y1 = 2 on [0, 1]^2: y0 - y1 >= 0 holds only at the corner (1, 1), with equality."""
    net = chain(([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), ([[1.0, 1.0], [0.0, 0.0]], [0.0, 2.0])).to_network()
    lo, hi = np.zeros(2), np.ones(2)
    results = decide_everywhere(box_query(net, lo, hi, [[at_least([1.0, -1.0], 0.0)]]), "sat")
    for r in results.values():
        np.testing.assert_array_equal(r.counterexample.inputs, [1.0, 1.0])
        assert r.counterexample.outputs[0] == r.counterexample.outputs[1] == 2.0
    decide_everywhere(box_query(net, lo, hi, [[at_least([1.0, -1.0], 1e-3)]]), "unsat")
    # the same tie as the classic "some other label scores at least as high" disjunction
    decide_everywhere(box_query(net, lo, hi, [[at_least([1.0, -1.0], 1e-3)], [at_least([1.0, -1.0], 0.0)]]), "sat")


def test_tie_decided_by_the_exact_value_of_float_weights():
    """y0 = 0.1 x0 + 0.2 x1 and y1 = 0.3 at (1, 1): as rationals of the float64 weights y0 - y1 = +2.8e-17,
    so y0 - y1 >= 0 is exactly sat (z3), and in float32 onnxruntime it holds within the confirm tolerance."""
    net = chain(([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), ([[0.1, 0.2], [0.0, 0.0]], [0.0, 0.3])).to_network()
    results = decide_everywhere(box_query(net, np.zeros(2), np.ones(2), [[at_least([1.0, -1.0], 0.0)]]), "sat")
    for r in results.values():
        np.testing.assert_array_equal(r.counterexample.inputs, [1.0, 1.0])


# ------------------------------------------------------------------ the test benchmarks
def _instances(folder: Path):
    return [pytest.param(inst, id=f"{Path(inst.onnx).stem}-{Path(inst.vnnlib).stem}") for inst in load_instances(folder)]


def _test_instances():
    from conftest import BENCHMARKS

    folder = BENCHMARKS / "test"
    return _instances(folder) if folder.is_dir() else []


@pytest.mark.parametrize("instance", _test_instances())
@pytest.mark.parametrize("strategy", ["auto", "input-split", "relu-split"])
@pytest.mark.parametrize("falsify", [True, False])
def test_expected_verdicts_of_the_test_benchmarks(instance, strategy, falsify):
    assert instance.expected in ("sat", "unsat")
    query = load_query(load_onnx(instance.onnx), instance.vnnlib)
    options = SolverOptions(timeout=60, strategy=strategy, falsify=falsify)
    result = solve(query, options)
    check_result(query, result, options, strategy)
    assert result.verdict == instance.expected, result.reason


def test_all_five_test_instances_are_listed(test_bench_dir):
    instances = load_instances(test_bench_dir)
    assert len(instances) == 5 and all(i.expected in ("sat", "unsat") for i in instances)


def _parse_vnncomp(text: str):
    """``sat`` with ``((X_0 v) ... (Y_0 v) ...)`` -> (verdict, X values, Y values)."""
    lines = text.splitlines()
    verdict = lines[0]
    xs, ys = {}, {}
    for token in " ".join(lines[1:]).replace("(", " ( ").replace(")", " ) ").split("("):
        parts = token.replace(")", " ").split()
        if len(parts) == 2:
            name, number = parts
            (xs if name.startswith("X_") else ys)[int(name[2:])] = float(number)
    return verdict, np.array([xs[i] for i in range(len(xs))]), np.array([ys[i] for i in range(len(ys))])


@pytest.mark.parametrize("instance", _test_instances())
def test_cli_vnnlib_verdicts_and_result_file(instance, tmp_path, capsys):
    out = tmp_path / "result.txt"
    assert main(["vnnlib", instance.onnx, instance.vnnlib, "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == instance.expected
    text = out.read_text()
    if instance.expected == "unsat":
        assert text == "unsat\n"
        return
    verdict, x, y = _parse_vnncomp(text)
    assert verdict == "sat" and text.startswith("sat\n((X_0 ") and text.endswith("))\n")
    query = load_query(load_onnx(instance.onnx), instance.vnnlib)
    assert x.shape == (query.num_inputs,) and y.shape == (query.num_outputs,)
    assert np.all(x >= query.lower) and np.all(x <= query.upper)
    np.testing.assert_array_equal(y, reference_model(instance.onnx)(x))  # repr round-trips floats exactly
    full = np.concatenate([x, y])
    holds = []
    for d in query.disjuncts:
        c = d.constraints
        allowed = CONFIRM_TOLERANCE * (1.0 + np.abs(c.matrix) @ np.abs(full) + np.abs(c.rhs))
        holds.append(bool(np.all(x >= d.lower) and np.all(x <= d.upper) and np.all(c.residuals(full) <= allowed)))
    assert any(holds)


def test_cli_vnnlib_as_a_process_writes_the_result_file(test_bench_dir, tmp_path):
    out = tmp_path / "sat.txt"
    proc = subprocess.run([sys.executable, "-m", "reluverify", "vnnlib", str(test_bench_dir / "test_sat.onnx"),
                           str(test_bench_dir / "test_prop.vnnlib"), "--out", str(out), "--strategy", "relu-split"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "sat" and "violated: disjunct 0" in proc.stdout
    verdict, x, y = _parse_vnncomp(out.read_text())
    assert verdict == "sat" and x.shape == (5,) and y.shape == (5,)


def test_cli_cross_check_agrees_on_test_small(test_bench_dir, capsys):
    net, spec = test_bench_dir / "test_small.onnx", test_bench_dir / "test_small.vnnlib"
    assert main(["vnnlib", str(net), str(spec), "--cross-check", "z3"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "unsat"
    assert "z3 cross-check: unsat" in captured.out and "DISAGREEMENT" not in captured.out + captured.err
    assert main(["vnnlib", str(net), str(spec), "--cross-check", "z3", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["verdict"] == "unsat"
    assert payload["cross_check"]["z3_verdict"] == "unsat" and payload["cross_check"]["disagreement"] is False


def test_cli_cross_check_reports_a_disagreement(test_bench_dir, capsys, monkeypatch):
    """A solver that wrongly said sat on test_nano (z3: unsat) must be flagged with exit status 4."""
    import reluverify.solver.decide as decide
    from reluverify.solver.result import Counterexample, Result

    def wrong(query, options=None):
        cex = Counterexample(np.zeros(1), np.zeros(1), np.zeros(1), 0, 0.0, 1e-6)
        return Result("sat", counterexample=cex, disjunct_verdicts=["sat"])

    monkeypatch.setattr(decide, "solve", wrong)
    status = main(["vnnlib", str(test_bench_dir / "test_nano.onnx"), str(test_bench_dir / "test_nano.vnnlib"),
                   "--cross-check", "z3"])
    captured = capsys.readouterr()
    assert status == 4
    assert "DISAGREEMENT" in captured.err and "DISAGREEMENT" in captured.out


def test_spec_with_an_unbounded_input_is_an_error_not_a_verdict(test_bench_dir, tmp_path, capsys):
    spec = tmp_path / "open.vnnlib"
    spec.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 -1))\n(assert (<= Y_0 0))\n")
    with pytest.raises(SpecError, match="no upper bound"):
        load_query(load_onnx(str(test_bench_dir / "test_nano.onnx")), spec)
    assert main(["vnnlib", str(test_bench_dir / "test_nano.onnx"), str(spec)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "every input must be bounded" in captured.err


def test_polish_of_a_target_without_rows_returns_the_point():
    """A disjunct with no rows holds everywhere: polishing a point for it keeps the point (it used to
    take the argmax of an empty set of margins)."""
    from reluverify.solver.falsify import polish

    chain = ReluChain((np.array([[1.0, -1.0]]), np.array([[2.0]])), (np.zeros(1), np.zeros(1)))
    x = np.array([0.25, 0.5])
    out = polish(chain, x, np.zeros(2), np.ones(2), np.zeros((0, 3)), np.zeros(0))
    assert np.array_equal(out, x)


def test_a_point_only_onnxruntime_confirms_is_not_a_counterexample(tmp_path):
    """Two units with a huge weight (-3968) cancel exactly in real arithmetic, so every output is constant
    on the box; onnxruntime's float32 Gemm (fused multiply-adds) leaves about 1e-4 of them. A row that the
    real outputs break by 1e-4 but onnxruntime's meet must not make a ``sat`` (differential soak, seed 0
    case 9890: z3 proves it unsat)."""
    from random_queries import chain_to_onnx

    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)  # noqa: E731
    chain = ReluChain(
        (f32([[-3968.0], [-3968.0]]), f32([[0.8515625, -0.8515625]]), f32([[0.96875], [-0.92578125], [1.375], [0.96875]])),
        (f32([-0.06738281, -0.06738281]), f32([0.30859375]), f32([0.66015625, 0.421875, 0.625, 0.66015625])),
    )
    network = load_onnx(chain_to_onnx(chain, tmp_path / "cancel.onnx", dtype=np.float32))
    y0 = 0.96875 * 0.30859375 + 0.66015625  # the real output 0 wherever both units are active
    lower, upper = np.array([-1.39645565]), np.array([-0.25084867])
    rows = np.array([[0.0, 1.0, 0.0, 0.0, 0.0]])  # y0 <= y0 - 1e-4
    query = Query((network,), lower, upper, (Disjunct(lower, upper, LinearConstraints(rows, np.array([y0 - 1e-4]))),),
                  LinearConstraints(np.zeros((0, 1)), np.zeros(0)))
    for x in (-1.33642251, -1.0, -0.5):
        assert confirm(query, np.array([x]), 1e-6) is None
    assert solve(query, SolverOptions(timeout=10)).verdict == "unsat"


@pytest.mark.parametrize("activation", ["Relu", "Floor"])
def test_an_output_of_exactly_zero_is_not_a_counterexample_to_y_at_least_1e_minus_6(tmp_path, activation):
    """ml4acopf's specifications draw lines at 1e-6 ('Y_0 >= 1e-6': strictly positive generation). An output
    that is exactly 0 everywhere once passed for a violation within the confirmation's absolute floor of
    1e-6 (a wrong sat); the tolerance is now relative to the row's terms only."""
    nodes = [helper.make_node("Mul", ["x", "zero"], ["z"]), helper.make_node(activation, ["z"], ["y"])]
    path = save(model(nodes, [value("x", [1, 2])], [value("y", [1, 2])], [tensor("zero", np.zeros((1, 2)))]),
                tmp_path / "zero.onnx")
    network = load_onnx(path)
    lower, upper = -np.ones(2), np.ones(2)
    row = np.array([[0.0, 0.0, -1.0, 0.0]])  # -Y_0 <= -1e-6
    query = Query((network,), lower, upper, (Disjunct(lower, upper, LinearConstraints(row, np.array([-1e-6]))),))
    assert confirm(query, np.zeros(2), 1e-6) is None
    assert solve(query, SolverOptions(timeout=20)).verdict == "unsat"
    ok = Query((network,), lower, upper, (Disjunct(lower, upper, LinearConstraints(row, np.array([0.0]))),))
    assert confirm(ok, np.zeros(2), 1e-6) is not None  # Y_0 >= 0 holds exactly at 0
