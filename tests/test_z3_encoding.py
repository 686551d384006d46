"""The z3 encoding of a Query agrees with brute force, with onnxruntime and with queries of known answer.

Tolerances: z3 is exact, so a ``sat`` model replayed in float64 (IR) or through onnxruntime (float64
export) may miss a row only by round-off; rows are checked within 1e-6 relative to the magnitude of
their terms (absolute 1e-6 where that magnitude is below 1). A grid point counts as a violation only
when it violates by more than 1e-9 of that magnitude, so float round-off cannot fake one.
"""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from random_queries import (
    chain_to_onnx,
    clear_violations,
    grid,
    output_magnitude,
    planted_counterexample_query,
    queries,
    random_chain,
    random_query,
    robust_query,
)
from reluverify.network import ReluChain
from reluverify.onnx_runtime import ReferenceModel
from reluverify.query import Disjunct, LinearConstraints, Query, box_query
from reluverify.solver.z3_encoding import Z3Result, decide_with_z3, encode_query

REPLAY_TOLERANCE = 1e-6
Z3_BUDGET_S = 5.0  # per random query; a timeout makes hypothesis discard the example

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ helpers
def _magnitudes(query: Query, v: np.ndarray) -> np.ndarray:
    parts, off = [np.abs(v)], 0
    for net in query.networks:
        parts.append(output_magnitude(net.relu_chain(), v[off : off + net.input_size])[0])
        off += net.input_size
    return np.concatenate(parts)


def _satisfied(query: Query, v: np.ndarray, y: np.ndarray, tolerance: float) -> list[int]:
    """Disjuncts that (v, y) satisfies, each row within ``tolerance`` times the magnitude of its terms."""
    point, mag = np.concatenate([v, y]), _magnitudes(query, v)
    hits = []
    for k, d in enumerate(query.disjuncts):
        if d.is_empty_box() or np.any(v < d.lower) or np.any(v > d.upper):
            continue
        c = d.constraints
        if np.all(c.residuals(point) <= tolerance * np.maximum(1.0, np.abs(c.matrix) @ mag + np.abs(c.rhs))):
            hits.append(k)
    return hits


def onnxruntime_outputs(query: Query, v: np.ndarray) -> np.ndarray:
    """``y`` by onnxruntime: each network copy exported (float64 Gemm/Relu) and run on its slice of ``v``."""
    parts, off = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for k, net in enumerate(query.networks):
            path = chain_to_onnx(net.relu_chain(), Path(tmp) / f"net{k}.onnx")
            parts.append(ReferenceModel(path)(v[off : off + net.input_size]))
            off += net.input_size
    return np.concatenate(parts)


def assert_counterexample(query: Query, result: Z3Result) -> None:
    """A ``sat`` result is a real counterexample: in the region, and a disjunct holds by IR and by onnxruntime."""
    assert result.verdict == "sat", result
    v, y = result.inputs, result.outputs
    assert v.shape == (query.num_inputs,) and y.shape == (query.num_outputs,)
    assert np.all(v >= query.lower) and np.all(v <= query.upper), "model leaves the box"
    ic = query.input_constraints
    slack = REPLAY_TOLERANCE * np.maximum(1.0, np.abs(ic.matrix) @ np.abs(v) + np.abs(ic.rhs))
    assert np.all(ic.residuals(v) <= slack), "model breaks an input constraint"
    np.testing.assert_array_equal(y, query.outputs(v))
    assert result.disjunct is not None, "the float64 replay satisfies no disjunct"
    assert result.disjunct in _satisfied(query, v, y, 1e-9)
    assert not query.disjuncts[result.disjunct].is_empty_box()
    y_ort = onnxruntime_outputs(query, v)
    assert result.disjunct in _satisfied(query, v, y_ort, REPLAY_TOLERANCE), "onnxruntime does not confirm it"


def one_layer(w, b, w2, b2) -> ReluChain:
    return ReluChain((np.atleast_2d(np.asarray(w, float)), np.asarray(w2, float).reshape(1, -1)),
                     (np.asarray(b, float).reshape(-1), np.asarray(b2, float).reshape(-1)))


# ------------------------------------------------------------------ exactness
def test_float_weights_are_encoded_as_exact_rationals():
    third = 1.0 / 3.0  # its decimal repr 0.3333333333333333 is smaller than the float
    net = one_layer([[1.0]], [0.0], [[third]], [0.0]).to_network()  # y = third * relu(x)
    at_one = (np.array([1.0]), np.array([1.0]))
    assert decide_with_z3(box_query(net, *at_one, [[(np.array([-1.0]), -third)]])).verdict == "sat"  # y >= third
    above = float(np.nextafter(third, 1.0))
    assert decide_with_z3(box_query(net, *at_one, [[(np.array([-1.0]), -above)]])).verdict == "unsat"

    tenth = one_layer([[1.0]], [0.0], [[0.1]], [0.0]).to_network()  # y = 0.1 * relu(x), x = 3
    at_three = (np.array([3.0]), np.array([3.0]))
    exact = 3 * Fraction(0.1)
    float_product = 3 * 0.1  # 0.30000000000000004, rounded up from the exact product
    assert Fraction(float_product) > exact > Fraction(0.3)
    assert decide_with_z3(box_query(tenth, *at_three, [[(np.array([-1.0]), -float_product)]])).verdict == "unsat"
    assert decide_with_z3(box_query(tenth, *at_three, [[(np.array([1.0]), 0.3)]])).verdict == "unsat"
    r = decide_with_z3(box_query(tenth, *at_three, [[(np.array([1.0]), float_product)]]))
    assert r.verdict == "sat" and r.disjunct == 0


def test_exactly_cancelling_units_and_duplicated_outputs():
    # y0 = a*relu(z) - a*relu(z) + c (x - x), y1 = y2 (identical rows); every weight a full-precision float
    rng = np.random.default_rng(3)
    w1 = rng.normal(size=(3, 2))
    w1[1] = w1[0]
    b1 = rng.normal(size=3)
    b1[1] = b1[0]
    w2 = rng.normal(size=(3, 3))
    w2[0, 1] = -w2[0, 0]
    w2[0, 2] = 0.0
    w2[2] = w2[1]
    b2 = rng.normal(size=3)
    b2[2] = b2[1]
    net = ReluChain((w1, w2), (b1, b2)).to_network()
    lo, hi = -np.ones(2), np.ones(2)
    c = b2[0]
    tiny = 1e-300
    cases = {
        "y0 <= c - ulp": ([[(np.array([1.0, 0, 0]), np.nextafter(c, -np.inf))]], "unsat"),
        "y0 >= c": ([[(np.array([-1.0, 0, 0]), -c)]], "sat"),
        "y1 - y2 <= -tiny": ([[(np.array([0, 1.0, -1.0]), -tiny)]], "unsat"),
        "y2 - y1 <= -tiny or y1 - y2 >= tiny": (
            [[(np.array([0, -1.0, 1.0]), -tiny)], [(np.array([0, 1.0, -1.0]), -tiny)]], "unsat"),
        "y1 - y2 >= 0": ([[(np.array([0, -1.0, 1.0]), 0.0)]], "sat"),
    }
    for name, (rows, expected) in cases.items():
        query = box_query(net, lo, hi, rows)
        result = decide_with_z3(query)
        assert result.verdict == expected, name
        if expected == "sat":
            assert_counterexample(query, result)


# ------------------------------------------------------------------ known answers
@pytest.mark.parametrize("seed", range(8))
def test_planted_counterexamples_are_found(seed):
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(1, 5)), *rng.integers(2, 8, int(rng.integers(1, 4))), int(rng.integers(1, 5))]
    chain = random_chain(rng, sizes, cancel=seed % 2 == 0, huge=seed % 3 == 0, tiny=seed % 4 == 1,
                         mantissa_bits=None if seed < 4 else 8)
    planted = planted_counterexample_query(rng, chain)
    assert planted.disjunct in _satisfied(planted.query, planted.witness, planted.query.outputs(planted.witness), 0.0)
    result = decide_with_z3(planted.query, timeout_s=30)
    assert_counterexample(planted.query, result)


@pytest.mark.parametrize("seed", range(8))
def test_robust_by_construction_is_unsat(seed):
    rng = np.random.default_rng(100 + seed)
    sizes = [int(rng.integers(1, 5)), *rng.integers(2, 8, int(rng.integers(1, 4))), int(rng.integers(1, 5))]
    chain = random_chain(rng, sizes, cancel=seed % 2 == 1, huge=seed % 3 == 1, tiny=seed % 4 == 2,
                         mantissa_bits=None if seed < 4 else 8)
    query = robust_query(rng, chain)
    samples = query.lower + (query.upper - query.lower) * rng.random((2000, query.num_inputs))
    assert not np.any(clear_violations(query, samples))
    assert decide_with_z3(query, timeout_s=30).verdict == "unsat"


def test_empty_disjunct_boxes_never_hold():
    rng = np.random.default_rng(7)
    chain = random_chain(rng, [2, 5, 3])
    planted = planted_counterexample_query(rng, chain, num_disjuncts=1)
    q = planted.query
    n = q.num_inputs
    always = LinearConstraints(np.zeros((1, n + q.num_outputs)), np.ones(1))  # 0 <= 1
    lower, upper = q.lower.copy(), q.upper.copy()
    lower[0], upper[0] = q.upper[0] + 1.0, q.lower[0] - 1.0  # empty in one dimension
    empty = Disjunct(lower, upper, always, "empty")
    only_empty = q.with_disjuncts([empty, empty])
    assert only_empty.disjuncts[0].is_empty_box()
    assert decide_with_z3(only_empty).verdict == "unsat"
    mixed = q.with_disjuncts([empty, q.disjuncts[0], empty])
    result = decide_with_z3(mixed)
    assert_counterexample(mixed, result)
    assert result.disjunct == 1


@pytest.mark.parametrize("name, spec", [("test_nano", "test_nano"), ("test_tiny", "test_tiny"),
                                        ("test_small", "test_small")])
def test_tiny_benchmarks_match_expected_verdicts(test_bench_dir, name, spec):
    from reluverify.onnx_import import load_onnx
    from reluverify.vnnlib import read_vnnlib

    query = read_vnnlib(test_bench_dir / f"{spec}.vnnlib").to_query(load_onnx(str(test_bench_dir / f"{name}.onnx")))
    assert decide_with_z3(query, timeout_s=30).verdict == "unsat"  # expected_verdicts.csv


# ------------------------------------------------------------------ several networks
def test_network_copies_read_their_own_inputs_and_auxiliaries_come_last():
    # copy A: y_A = x_A (1 input); copy B: y_B = (x_B0, 2 x_B1) (2 inputs); one auxiliary t
    a = ReluChain((np.eye(1), np.eye(1)), (np.zeros(1), np.zeros(1))).to_network()
    b = ReluChain((np.eye(2), np.diag([1.0, 2.0])), (np.zeros(2), np.zeros(2))).to_network()
    lower = np.array([0.25, 5.0, 7.0, 0.0])
    upper = np.array([0.25, 5.0, 7.0, 1.0])
    width = 4 + 3

    def query(row, rhs):
        mat = np.zeros((1, width))
        mat[0, list(row)] = list(row.values())
        return Query((a, b), lower, upper, (Disjunct(lower, upper, LinearConstraints(mat, [rhs])),), num_auxiliary=1)

    assert decide_with_z3(query({6: -1.0}, -14.0)).verdict == "sat"  # y_B1 = 14
    assert decide_with_z3(query({6: -1.0}, -14.000001)).verdict == "unsat"
    assert decide_with_z3(query({5: 1.0}, 4.999)).verdict == "unsat"  # y_B0 = 5
    assert decide_with_z3(query({4: -1.0, 3: 1.0}, -0.25)).verdict == "sat"  # t <= y_A, t = 0 works
    result = decide_with_z3(query({3: -1.0}, -0.75))  # t >= 0.75
    assert_counterexample(result_query := query({3: -1.0}, -0.75), result)
    np.testing.assert_array_equal(result.inputs[:3], [0.25, 5.0, 7.0])
    assert result.inputs[3] >= 0.75
    np.testing.assert_array_equal(result.outputs, [0.25, 5.0, 14.0])
    solver, inputs, outputs = encode_query(result_query)
    assert [str(x) for x in inputs] == ["X_0", "X_1", "X_2", "T_0"] and len(outputs) == 3


def _two_copy_query(rng: np.random.Generator) -> Query:
    """Two different networks and an L1-style auxiliary ``t >= |x_A0 - x_B0|``, ``t <= delta``."""
    chain_a = random_chain(rng, [1, 4, 2], mantissa_bits=8)
    chain_b = random_chain(rng, [2, 3, 3, 1], mantissa_bits=8)
    n, m = 4, 3  # x_A0, x_B0, x_B1, t ; y_A0, y_A1, y_B0
    delta = float(rng.uniform(0.05, 0.5))
    lower = np.concatenate([rng.uniform(-1, 0, 3), [0.0]])
    upper = np.concatenate([lower[:3] + rng.uniform(0.2, 1.0, 3), [delta]])
    ic = LinearConstraints(np.array([[1.0, -1.0, 0, -1.0], [-1.0, 1.0, 0, -1.0]]), np.zeros(2))
    samples = lower + (upper - lower) * rng.random((500, n))
    disjuncts = []
    for _ in range(2):
        mat = np.zeros((1, n + m))
        mat[0, n:] = rng.normal(size=m)
        values = np.concatenate([samples, np.concatenate(
            [chain_a.evaluate(samples[:, :1]), chain_b.evaluate(samples[:, 1:3])], axis=1)], axis=1) @ mat[0]
        rhs = np.quantile(values, rng.choice([0.0, 0.02, 0.2])) + rng.choice([-0.05, 0.0, 0.02]) * np.ptp(values)
        disjuncts.append(Disjunct(lower, upper, LinearConstraints(mat, [rhs])))
    return Query((chain_a.to_network(), chain_b.to_network()), lower, upper, tuple(disjuncts), ic, num_auxiliary=1)


@pytest.mark.parametrize("seed", range(6))
def test_two_networks_agree_with_grid(seed):
    query = _two_copy_query(np.random.default_rng(200 + seed))
    result = decide_with_z3(query, timeout_s=30)
    violated = np.any(clear_violations(query, grid(query, 13)))
    if violated:
        assert result.verdict == "sat"
    if result.verdict == "sat":
        assert_counterexample(query, result)
    else:
        assert result.verdict == "unsat"


# ------------------------------------------------------------------ random queries
@SETTINGS
@given(queries(max_relus=12, max_inputs=2, max_hidden_layers=2))
def test_agrees_with_dense_grid_on_tiny_networks(query):
    result = decide_with_z3(query, timeout_s=Z3_BUDGET_S)
    assume(result.verdict in ("sat", "unsat"))
    per_dim = 2001 if query.num_inputs == 1 else 61
    if np.any(clear_violations(query, grid(query, per_dim))):
        assert result.verdict == "sat"
    if result.verdict == "sat":
        assert_counterexample(query, result)


@SETTINGS
@given(queries(max_relus=16), st.integers(0, 2**32 - 1))
def test_random_queries_models_replay_and_unsat_survives_sampling(query, seed):
    result = decide_with_z3(query, timeout_s=Z3_BUDGET_S)
    assume(result.verdict in ("sat", "unsat"))
    if result.verdict == "sat":
        assert_counterexample(query, result)
    else:
        rng = np.random.default_rng(seed)
        samples = query.lower + (query.upper - query.lower) * rng.random((3000, query.num_inputs))
        assert not np.any(clear_violations(query, samples))


def test_random_query_generator_covers_both_verdicts_and_special_cases():
    rng = np.random.default_rng(11)
    verdicts, empty_boxes, constants = set(), 0, 0
    for _ in range(30):
        chain = random_chain(rng, [2, 4, 2], cancel=True, mantissa_bits=8)
        query = random_query(rng, chain, constant_fraction=0.3, empty_box_probability=0.2)
        empty_boxes += sum(d.is_empty_box() for d in query.disjuncts)
        constants += int(np.sum(query.lower == query.upper))
        verdicts.add(decide_with_z3(query, timeout_s=Z3_BUDGET_S).verdict)
    assert {"sat", "unsat"} <= verdicts and empty_boxes > 0 and constants > 0


def test_onnx_export_matches_the_chain():
    rng = np.random.default_rng(5)
    chain = random_chain(rng, [3, 6, 5, 2], cancel=True, huge=True, tiny=True)
    x = rng.uniform(-1, 1, (20, 3))
    with tempfile.TemporaryDirectory() as tmp:
        np.testing.assert_allclose(ReferenceModel(chain_to_onnx(chain, Path(tmp) / "c.onnx"))(x),
                                   chain.evaluate(x), rtol=1e-12, atol=1e-12)
        y32 = ReferenceModel(chain_to_onnx(chain, Path(tmp) / "c32.onnx", np.float32))(x)
    np.testing.assert_allclose(y32, chain.evaluate(x), rtol=1e-4, atol=1e-4 * output_magnitude(chain, x).max())


# ------------------------------------------------------------------ budget
def test_timeouts_are_respected():
    rng = np.random.default_rng(0)
    chain = random_chain(rng, [5, 30, 30, 30, 2])
    query = robust_query(rng, chain, slack=0.01)
    result = decide_with_z3(query, timeout_s=0.5)
    assert result.verdict == "timeout" and result.inputs is None
    assert result.seconds < 0.5 + 1.5
    assert decide_with_z3(query, timeout_s=0.0).verdict == "timeout"
