"""ReduceSum, ReduceMean, Clip, LeakyRelu, Max and Min: imported exactly (they match onnxruntime, dense
and structured), and the solver agrees with z3 on a small network made of them."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from onnx_builders import int64s, matches_onnxruntime, model, save, tensor, value
from reluverify.errors import NetworkError
from reluverify.onnx_import import DENSE_LIMIT, load_onnx
from z3_agreement import verdicts_agree_with_z3

SHAPE = [1, 2, 3, 4]


def _output():
    return helper.make_tensor_value_info("y", TensorProto.FLOAT, None)


def _net(tmp_path, op_nodes, inits=(), opset=13, name="net"):
    """x -> h = x * s + t (a traced tensor of shape SHAPE) -> the nodes under test (reading 'h', writing 'y')."""
    rng = np.random.default_rng(len(op_nodes))
    nodes = [helper.make_node("Mul", ["x", "s"], ["hs"]), helper.make_node("Add", ["hs", "t"], ["h"]), *op_nodes]
    inits = [tensor("s", rng.uniform(0.5, 2.0, size=SHAPE)), tensor("t", rng.normal(size=SHAPE)), *inits]
    return save(model(nodes, [value("x", SHAPE)], [_output()], inits, opset=opset), tmp_path / f"{name}.onnx")


def _matches(path, limit, count=64):
    network = load_onnx(path, dense_limit=limit)
    x = np.random.default_rng(1).uniform(-3.0, 3.0, size=(count, network.input_size))
    return matches_onnxruntime(network, path, x)


def _node(op, inputs, **attrs):
    return helper.make_node(op, inputs, ["y"], **attrs)


CASES = {
    # reductions: axes as attribute (opset 11) and as input (13, 18), keepdims, negative axes, every axis, noop
    "reducesum-attr": ([_node("ReduceSum", ["h"], axes=[1, -1], keepdims=1)], [], 11),
    "reducesum-input-nokeep": ([_node("ReduceSum", ["h", "ax"], keepdims=0)], [int64s("ax", [-2])], 13),
    "reducesum-all": ([_node("ReduceSum", ["h"], keepdims=0)], [], 13),
    "reducesum-noop": ([_node("ReduceSum", ["h"], noop_with_empty_axes=1)], [], 13),
    "reducemean-attr": ([_node("ReduceMean", ["h"], axes=[-1], keepdims=0)], [], 13),
    "reducemean-input": ([_node("ReduceMean", ["h", "ax"])], [int64s("ax", [0, 2])], 18),
    # Clip: bounds as attributes (opset 7) and inputs (13), one or both, crossed bounds
    "clip-attrs": ([_node("Clip", ["h"], min=-0.5, max=0.7)], [], 7),
    "clip-both": ([_node("Clip", ["h", "lo", "hi"])], [tensor("lo", -0.3), tensor("hi", 1.1)], 13),
    "clip-min": ([_node("Clip", ["h", "lo"])], [tensor("lo", 0.2)], 13),
    "clip-max": ([_node("Clip", ["h", "", "hi"])], [tensor("hi", -0.2)], 13),
    "clip-crossed": ([_node("Clip", ["h", "lo", "hi"])], [tensor("lo", 1.0), tensor("hi", -1.0)], 13),
    # LeakyRelu: default, in [0, 1], above 1, negative
    "leaky-default": ([_node("LeakyRelu", ["h"])], [], 13),
    "leaky-0.2": ([_node("LeakyRelu", ["h"], alpha=0.2)], [], 13),
    "leaky-1.5": ([_node("LeakyRelu", ["h"], alpha=1.5)], [], 13),
    "leaky-negative": ([_node("LeakyRelu", ["h"], alpha=-0.3)], [], 13),
    # Max / Min: two traced tensors broadcast, a constant, three inputs
    "max-broadcast": ([helper.make_node("ReduceSum", ["h"], ["g"], axes=[1], keepdims=1),
                       _node("Max", ["h", "g"])], [], 11),
    "min-constant-first": ([_node("Min", ["c", "h"])], [tensor("c", np.linspace(-1, 1, 4))], 13),
    "max-three": ([helper.make_node("Neg", ["h"], ["n"]), _node("Max", ["h", "n", "c"])],
                  [tensor("c", [0.3])], 13),
    "min-single": ([_node("Min", ["h"])], [], 13),
}


@pytest.mark.parametrize("limit", [DENSE_LIMIT, 0], ids=["dense", "structured"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_matches_onnxruntime(tmp_path, case, limit):
    nodes, inits, opset = CASES[case]
    _matches(_net(tmp_path, nodes, inits, opset, case), limit)


def test_clip_and_leaky_relu_are_relus_exactly(tmp_path):
    """Clip with both bounds adds two ReLU layers' worth of units (one per bound); LeakyRelu one."""
    clip = load_onnx(_net(tmp_path, CASES["clip-both"][0], CASES["clip-both"][1], name="clip"))
    assert clip.relu_chain().num_relus == 2 * 24
    leaky = load_onnx(_net(tmp_path, CASES["leaky-0.2"][0], name="leaky"))
    assert [type(n).__name__ for n in leaky.nodes].count("ActivationNode") == 1


def test_bad_attributes_are_one_line_errors(tmp_path):
    cases = [
        ([_node("ReduceSum", ["h"], axes=[4])], [], 11, "axes [4] do not fit a rank-4 tensor"),
        ([_node("Clip", ["h", "lo"])], [tensor("lo", [0.1, 0.2])], 13, "min must be a scalar"),
        ([helper.make_node("Relu", ["h"], ["r"]), _node("Clip", ["h", "r"])], [], 13,
         "min must be a constant, but it depends on the network input"),
    ]
    for k, (nodes, inits, opset, fragment) in enumerate(cases):
        with pytest.raises(NetworkError) as info:
            load_onnx(_net(tmp_path, nodes, inits, opset, f"bad{k}"))
        assert fragment in str(info.value) and "\n" not in str(info.value)


def _small_net(tmp_path, rng):
    """x (1, 3) -> Gemm 6 -> LeakyRelu -> Clip -> Max with its Neg -> ReduceMean over pairs -> Gemm 2."""
    nodes = [
        helper.make_node("Gemm", ["x", "W", "b"], ["g"], transB=1),
        helper.make_node("LeakyRelu", ["g"], ["l"], alpha=0.1),
        helper.make_node("Clip", ["l", "lo", "hi"], ["c"]),
        helper.make_node("Neg", ["g"], ["n"]),
        helper.make_node("Max", ["c", "n"], ["m"]),
        helper.make_node("Reshape", ["m", "pairs"], ["p"]),
        helper.make_node("ReduceMean", ["p"], ["r"], axes=[-1], keepdims=0),
        helper.make_node("Gemm", ["r", "V", "c0"], ["y"], transB=1),
    ]
    inits = [tensor("W", rng.normal(size=(6, 3))), tensor("b", rng.normal(0, 0.3, size=6)), tensor("lo", -0.4),
             tensor("hi", 0.8), int64s("pairs", [1, 3, 2]), tensor("V", rng.normal(size=(2, 3))),
             tensor("c0", rng.normal(size=2))]
    return save(model(nodes, [value("x", [1, 3])], [value("y", [1, 2])], inits), tmp_path / "small.onnx")


def test_solver_agrees_with_z3_on_a_network_of_these_operators(tmp_path):
    rng = np.random.default_rng(3)
    path = _small_net(tmp_path, rng)
    network = _matches(path, DENSE_LIMIT)
    verdicts = verdicts_agree_with_z3(network, rng, 0.4)
    assert "sat" in verdicts and "unsat" in verdicts, verdicts
