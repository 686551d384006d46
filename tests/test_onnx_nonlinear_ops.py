"""The general activations and products of traced tensors: imported exactly (they match onnxruntime),
their bounds contain every sampled value (imported graphs and random DAGs), and answers on queries
over them are confirmed counterexamples or survive sampling.

Operators: Sin, Cos, Exp, Log, Sqrt, Reciprocal, Sign, Floor, Abs, Pow (integer, half and negative
exponents; a constant base), Mul and Div of two traced tensors (broadcast), MatMul of two traced
tensors (2-D, batched, broadcast batch, 1-D operands), Softmax and LogSoftmax over any axis (opset 11
and 13).
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from test_nonlinear_networks import random_dag

from onnx_builders import int64s, matches_onnxruntime, model, save, tensor, value
from reluverify.errors import NetworkError
from reluverify.onnx_import import load_onnx
from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.solver import SolverOptions, solve
from reluverify.solver.nonlinear.bounds import node_bounds, row_bounds

SHAPE = [1, 2, 3, 4]


def _output():
    return helper.make_tensor_value_info("y", TensorProto.FLOAT, None)


def _node(op, inputs, out="y", **attrs):
    return helper.make_node(op, inputs, [out], **attrs)


def _net(tmp_path, op_nodes, inits=(), opset=13, name="net", shape=SHAPE):
    """x -> h = x * s + t and g = x * s2 - t (two traced tensors of ``shape``) -> the nodes under test,
    reading 'h' (and 'g'), writing 'y'."""
    rng = np.random.default_rng(len(op_nodes) + len(name))
    nodes = [_node("Mul", ["x", "s"], "hs"), _node("Add", ["hs", "t"], "h"),
             _node("Mul", ["x", "s2"], "gs"), _node("Sub", ["gs", "t"], "g"), *op_nodes]
    inits = [tensor("s", rng.uniform(0.5, 2.0, size=shape)), tensor("t", rng.normal(size=shape)),
             tensor("s2", rng.uniform(-1.5, 1.5, size=shape)), *inits]
    return save(model(nodes, [value("x", shape)], [_output()], inits, opset=opset), tmp_path / f"{name}.onnx")


def _positive(name="p"):  # p = h * h + 0.5 > 0 (a traced tensor the log, sqrt and reciprocal are defined on)
    return [_node("Mul", ["h", "h"], "hh"), _node("Add", ["hh", "half"], name)]


HALF = [tensor("half", np.float32(0.5))]

CASES = {
    "sin": ([_node("Sin", ["h"])], [], 13),
    "cos": ([_node("Cos", ["h"])], [], 13),
    "exp": ([_node("Exp", ["h"])], [], 13),
    "log": (_positive() + [_node("Log", ["p"])], HALF, 13),
    "sqrt": (_positive() + [_node("Sqrt", ["p"])], HALF, 13),
    "reciprocal": (_positive() + [_node("Reciprocal", ["p"])], HALF, 13),
    "sign": ([_node("Sign", ["h"])], [], 13),
    "floor": ([_node("Floor", ["h"])], [], 13),
    "abs": ([_node("Abs", ["h"])], [], 13),
    "pow-2": ([_node("Pow", ["h", "e"])], [tensor("e", np.float32(2.0))], 13),
    "pow-3": ([_node("Pow", ["h", "e"])], [tensor("e", np.float32(3.0))], 13),
    "pow-4": ([_node("Pow", ["h", "e"])], [tensor("e", np.float32(4.0))], 13),
    "pow-5-array": ([_node("Pow", ["h", "e"])], [tensor("e", np.full([1, 1, 1, 4], 5.0, np.float32))], 13),
    "pow-1": ([_node("Pow", ["h", "e"])], [tensor("e", np.float32(1.0))], 13),
    "pow-0.5": (_positive() + [_node("Pow", ["p", "e"])], HALF + [tensor("e", np.float32(0.5))], 13),
    "pow-minus-1": (_positive() + [_node("Pow", ["p", "e"])], HALF + [tensor("e", np.float32(-1.0))], 13),
    "pow-minus-2": (_positive() + [_node("Pow", ["p", "e"])], HALF + [tensor("e", np.float32(-2.0))], 13),
    "pow-base": ([_node("Pow", ["b", "h"])], [tensor("b", np.float32(1.7))], 13),
    "mul-traced-broadcast": ([_node("ReduceSum", ["g"], "r", axes=[1], keepdims=1), _node("Mul", ["h", "r"])], [], 11),
    "div-traced": (_positive() + [_node("Div", ["g", "p"])], HALF, 13),
    "div-constant-by-traced": (_positive() + [_node("Div", ["c", "p"])], HALF + [tensor("c", np.float32(3.0))], 13),
    "matmul-batched": ([_node("Transpose", ["g"], "gt", perm=[0, 1, 3, 2]), _node("MatMul", ["h", "gt"])], [], 13),
    "matmul-broadcast-batch": ([_node("ReduceSum", ["g"], "g1", axes=[1], keepdims=1),
                                _node("Transpose", ["g1"], "gt", perm=[0, 1, 3, 2]), _node("MatMul", ["h", "gt"])], [], 11),
    "matmul-rank-mix": ([_node("Reshape", ["g", "shape"], "g2"), _node("MatMul", ["h", "g2"])],
                        [int64s("shape", [4, 6])], 13),
    "matmul-vectors": ([_node("Reshape", ["h", "s24"], "v1"), _node("Reshape", ["g", "s24"], "v2"),
                        _node("MatMul", ["v1", "v2"])], [int64s("s24", [24])], 13),
    "softmax-last": ([_node("Softmax", ["h"])], [], 13),
    "softmax-axis1": ([_node("Softmax", ["h"], axis=1)], [], 13),
    "softmax-negative-axis": ([_node("Softmax", ["h"], axis=-3)], [], 13),
    "softmax-opset11": ([_node("Softmax", ["h"], axis=2)], [], 11),
    "logsoftmax": ([_node("LogSoftmax", ["h"], axis=-2)], [], 13),
    "attention": ([_node("Transpose", ["g"], "gt", perm=[0, 1, 3, 2]), _node("MatMul", ["h", "gt"], "scores"),
                   _node("Softmax", ["scores"], "weights"), _node("MatMul", ["weights", "h"])], [], 13),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_operator_matches_onnxruntime(tmp_path, name):
    nodes, inits, opset = CASES[name]
    path = _net(tmp_path, nodes, inits, opset, name=name)
    for limit in (1 << 22, 0):  # dense and structured forms
        network = load_onnx(path, dense_limit=limit)
        x = np.random.default_rng(1).uniform(-2.0, 2.0, size=(64, network.input_size))
        if name == "floor" or name == "sign":  # away from the jumps, where float32 and float64 may round apart
            x = np.round(x * 8) / 8 + 1e-3
        matches_onnxruntime(network, path, x)


@pytest.mark.parametrize("limit", [1 << 22, 0], ids=["dense", "structured"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_bounds_of_imported_graphs_contain_sampled_values(tmp_path, name, limit):
    """Also with every weight kept structured (the nonlinear engine reads them through linear_ops)."""
    nodes, inits, opset = CASES[name]
    network = load_onnx(_net(tmp_path, nodes, inits, opset, name=name), dense_limit=limit)
    rng = np.random.default_rng(2)
    n = network.input_size
    for width in (1e-3, 0.1, 1.0):
        centre = rng.uniform(-1.5, 1.5, (3, n))
        lower, upper = centre - width, centre + width
        bounds = node_bounds(network, lower, upper, rounds=1)
        x = lower[:, None, :] + rng.random((3, 200, n)) * (upper - lower)[:, None, :]
        x[:, :20] = np.where(rng.random((3, 20, n)) < 0.5, lower[:, None, :], upper[:, None, :])
        values = network.evaluate_all(x.reshape(-1, n))
        for k, v in enumerate(values):
            v = v.reshape(3, 200, -1)
            ok = (bounds.lower[k][:, None, :] <= v) & (v <= bounds.upper[k][:, None, :])
            assert np.all(ok | np.isnan(v)), f"node {k} of {name} leaves its bounds"
        rows = rng.normal(0, 1, (4, n + network.output_size))
        rhs = rng.normal(0, 1, 4)
        actual = np.concatenate([x, values[-1].reshape(3, 200, -1)], axis=2) @ rows.T - rhs
        found = row_bounds(network, bounds, lower, upper, rows, rhs).lower
        assert np.all((found[:, None, :] <= actual + 1e-9 * (1 + np.abs(actual))) | np.isnan(actual))


@pytest.mark.parametrize("seed", range(10))
def test_bounds_on_random_dags_of_every_kind(seed):
    rng = np.random.default_rng(100 + seed)
    kinds = ("sin", "cos", "exp", "square", "sign", "floor", "relu", "tanh", "reciprocal", "sqrt", "log")
    net = random_dag(rng, inputs=int(rng.integers(1, 4)), width=3, layers=int(rng.integers(2, 5)), kinds=kinds,
                     scale=0.7)
    lower = rng.normal(0, 1, (6, net.input_size))
    upper = lower + rng.choice([0.0, 1e-6, 0.01, 0.3, 1.0], size=(6, net.input_size))
    bounds = node_bounds(net, lower, upper, rounds=seed % 2)
    x = lower[:, None, :] + rng.random((6, 300, net.input_size)) * (upper - lower)[:, None, :]
    with np.errstate(all="ignore"):
        values = net.evaluate_all(x.reshape(-1, net.input_size))
    for k, v in enumerate(values):
        v = v.reshape(6, 300, -1)
        ok = (bounds.lower[k][:, None, :] <= v) & (v <= bounds.upper[k][:, None, :])
        assert np.all(ok | np.isnan(v)), f"node {k} ({type(net.nodes[k]).__name__}) leaves its bounds"


def _box_query(network, lower, upper, row, rhs):
    constraint = LinearConstraints(row[None, :], np.array([rhs]))
    return Query((network,), lower, upper, (Disjunct(lower, upper, constraint),))


@pytest.mark.parametrize("name", ["sin", "exp", "sign", "floor", "pow-3", "div-traced", "softmax-last", "attention",
                                  "reciprocal", "log"])
def test_answers_are_confirmed_or_survive_sampling(tmp_path, name):
    """Queries 'output j >= c' on small boxes: a sat's counterexample is confirmed on the file by onnxruntime;
    unsat is checked against 20,000 samples of the box."""
    nodes, inits, opset = CASES[name]
    path = _net(tmp_path, nodes, inits, opset, name=name)
    network = load_onnx(path)
    rng = np.random.default_rng(3)
    n, m = network.input_size, network.output_size
    seen = set()
    for trial in range(6):
        centre = rng.uniform(-1, 1, n)
        lower, upper = centre - 0.05, centre + 0.05
        samples = lower + rng.random((20000, n)) * (upper - lower)
        outputs = network.evaluate(samples)
        j = int(rng.integers(m))
        top = float(np.nanmax(outputs[:, j]))
        # half the thresholds just above the sampled maximum (probably unsat), half below it (sat)
        threshold = top + (0.05 + 0.2 * abs(top)) if trial % 2 else top - 0.01 * (1 + abs(top))
        row = np.zeros(n + m)
        row[n + j] = -1.0  # -y_j <= -threshold, that is y_j >= threshold
        result = solve(_box_query(network, lower, upper, row, -threshold), SolverOptions(timeout=30))
        seen.add(result.verdict)
        if result.verdict == "sat":
            from reluverify.onnx_runtime import reference_model

            x = result.counterexample.inputs
            assert np.all((lower <= x) & (x <= upper))
            y = reference_model(path)(x[None])[0]
            assert y[j] >= threshold - 1e-5 * (1 + abs(threshold)), (name, y[j], threshold)
        elif result.verdict == "unsat":
            assert not np.any(outputs[:, j] >= threshold), name
    assert "sat" in seen, (name, seen)


def test_unsupported_exponents_and_bases_are_one_line(tmp_path):
    for inits, message in (([tensor("e", np.float32(1.5))], "Pow with exponent 1.5"),
                           ([tensor("e", np.array([2.0, 3.0, 2.0, 2.0], np.float32))], "exponents that differ")):
        path = _net(tmp_path, [_node("Pow", ["h", "e"])], inits, name="bad")
        with pytest.raises(NetworkError, match=message) as error:
            load_onnx(path)
        assert "\n" not in str(error.value)
    path = _net(tmp_path, [_node("Pow", ["b", "h"])], [tensor("b", np.float32(-2.0))], name="badbase")
    with pytest.raises(NetworkError, match="one positive constant base"):
        load_onnx(path)


@pytest.mark.parametrize("seed", range(4))
def test_networks_built_in_memory_export_every_kind_to_onnxruntime(seed):
    """A counterexample on a network built in Python is confirmed on its ONNX export: every kind exports."""
    from reluverify.onnx_runtime import reference_for

    kinds = ("sin", "cos", "exp", "square", "sign", "floor", "tanh", "relu")
    net = random_dag(np.random.default_rng(seed), kinds=kinds, scale=0.5)
    x = np.random.default_rng(9).uniform(-1, 1, (20, net.input_size))
    x = np.round(x * 16) / 16 + 1e-3  # away from the jumps of sign and floor after float32 rounding, mostly
    ours, theirs = net.evaluate(x), reference_for(net)(x)
    close = np.abs(ours - theirs) <= 1e-5 * (1 + np.abs(ours))
    assert close.mean() > 0.9  # a rare point may still sit on a jump, where float32 and float64 differ


def test_exact_rechecks_are_refused_in_one_line_beyond_relu(tmp_path):
    from reluverify.errors import QueryError
    from reluverify.exact import exact_check

    nodes, inits, opset = CASES["sin"]
    network = load_onnx(_net(tmp_path, nodes, inits, opset, name="sin"))
    n, m = network.input_size, network.output_size
    lower, upper = -np.ones(n), np.ones(n)
    query = _box_query(network, lower, upper, np.concatenate([np.zeros(n), -np.eye(m)[0]]), 0.0)
    with pytest.raises(QueryError, match="sin units, whose values are not rational$"):
        exact_check(query, np.zeros(n), 0)


@pytest.mark.parametrize("seed", range(3))
def test_wide_nodes_are_bounded_in_chunks_with_the_same_result(monkeypatch, seed):
    """The symbolic bounds of a wide node are back-substituted a chunk of units at a time (memory); each
    unit's bound is the same computation, so chunks of one unit give the same bounds."""
    import reluverify.solver.nonlinear.bounds as bounds_module

    net = random_dag(np.random.default_rng(seed), width=6, layers=5, kinds=("sin", "exp", "relu", "tanh", "square"),
                     scale=0.6)
    lower = np.random.default_rng(seed).normal(0, 1, (3, net.input_size))
    upper = lower + 0.3
    whole = node_bounds(net, lower, upper, rounds=1)
    monkeypatch.setattr(bounds_module, "SYMBOLIC_ENTRIES", 1)
    chunked = node_bounds(net, lower, upper, rounds=1)
    for a, b in zip(whole.lower + whole.upper, chunked.lower + chunked.upper):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
