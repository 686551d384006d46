"""Expand, Where (constant condition), Upsample and Resize (nearest and linear) on traced tensors: exact
linear maps that match onnxruntime, dense and structured; an input-dependent condition or another mode is
one line."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import TensorProto, helper

from onnx_builders import bools, int64s, matches_onnxruntime, model, save, tensor, value
from reluverify.errors import NetworkError
from reluverify.onnx_import import DENSE_LIMIT, load_onnx
from z3_agreement import verdicts_agree_with_z3

SHAPE = [1, 2, 3, 4]


def _net(tmp_path, op_nodes, inits=(), opset=13, name="net", shape=SHAPE):
    """x -> Relu(x * s + t) = 'h' (traced, of ``shape``) -> the nodes under test -> 'y'."""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Mul", ["x", "s"], ["hs"]), helper.make_node("Add", ["hs", "t"], ["ha"]),
             helper.make_node("Relu", ["ha"], ["h"]), *op_nodes]
    inits = [tensor("s", rng.uniform(0.5, 2.0, size=shape)), tensor("t", rng.normal(size=shape)), *inits]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return save(model(nodes, [value("x", shape)], [out], inits, opset=opset), tmp_path / f"{name}.onnx")


def _matches(path, limit, count=32):
    network = load_onnx(path, dense_limit=limit)
    x = np.random.default_rng(2).uniform(-3.0, 3.0, size=(count, network.input_size))
    return matches_onnxruntime(network, path, x)


def _node(op, inputs, **attrs):
    return helper.make_node(op, inputs, ["y"], **attrs)


MASK = np.random.default_rng(0).uniform(size=(3, 1)) > 0.5
CASES = {
    "expand-rank": ([_node("Expand", ["h", "sh"])], [int64s("sh", [2, 1, 1, 1, 4])], 13),
    "expand-axis": ([helper.make_node("ReduceSum", ["h"], ["r"], axes=[2], keepdims=1),
                     _node("Expand", ["r", "sh"])], [int64s("sh", [1, 1, 3, 1])], 11),
    "where-traced-const": ([_node("Where", ["m", "h", "c"])], [bools("m", MASK), tensor("c", [[-1.0, 2.0, 0.5, 3.0]])],
                           13),
    "where-const-traced": ([_node("Where", ["m", "c", "h"])], [bools("m", ~MASK), tensor("c", 4.0)], 13),
    "where-both-traced": ([helper.make_node("Neg", ["h"], ["n"]), _node("Where", ["m", "h", "n"])],
                          [bools("m", [True, False, False, True])], 13),
    "upsample-7": ([_node("Upsample", ["h"], mode="nearest", scales=[1.0, 1.0, 2.0, 3.0])], [], 7),
    "upsample-9": ([_node("Upsample", ["h", "sc"], mode="nearest")], [tensor("sc", [1.0, 2.0, 2.0, 1.5])], 9),
    "resize-10": ([_node("Resize", ["h", "sc"], mode="nearest")], [tensor("sc", [1.0, 1.0, 2.0, 0.5])], 10),
    "resize-sizes": ([_node("Resize", ["h", "", "", "sz"], mode="nearest")], [int64s("sz", [1, 2, 7, 3])], 13),
}
TRANSFORMS = ["half_pixel", "pytorch_half_pixel", "asymmetric", "tf_half_pixel_for_nn", "align_corners"]
ROUNDINGS = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
CASES.update({
    "upsample-linear-9": ([_node("Upsample", ["h", "sc"], mode="linear")], [tensor("sc", [1.0, 1.0, 2.0, 1.5])], 9),
    "resize-linear-10": ([_node("Resize", ["h", "sc"], mode="linear")], [tensor("sc", [1.0, 1.0, 2.0, 0.5])], 10),
    "resize-linear-sizes": ([_node("Resize", ["h", "", "", "sz"], mode="linear")], [int64s("sz", [1, 2, 5, 7])], 13),
})
for _t in TRANSFORMS:
    CASES[f"resize-linear-{_t}"] = (
        [_node("Resize", ["h", "", "sc"], mode="linear", coordinate_transformation_mode=_t)],
        [tensor("sc", [1.0, 1.0, 2.5, 0.75])], 13)
for _t, _r in itertools.product(TRANSFORMS, ROUNDINGS):
    CASES[f"resize-{_t}-{_r}"] = (
        [_node("Resize", ["h", "", "sc"], mode="nearest", coordinate_transformation_mode=_t, nearest_mode=_r)],
        [tensor("sc", [1.0, 1.0, 2.5, 0.75])], 13)


@pytest.mark.parametrize("limit", [DENSE_LIMIT, 0], ids=["dense", "structured"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_matches_onnxruntime(tmp_path, case, limit):
    nodes, inits, opset = CASES[case]
    _matches(_net(tmp_path, nodes, inits, opset, case), limit)


def test_nearest_upsampling_adds_no_units(tmp_path):
    network = load_onnx(_net(tmp_path, CASES["upsample-9"][0], CASES["upsample-9"][1], 9))
    assert network.relu_chain().num_relus == 24 and network.output_size == 4 * 6 * 6


@pytest.mark.parametrize("nodes, inits, fragment", [
    ([helper.make_node("Cast", ["h"], ["e"], to=TensorProto.BOOL), _node("Where", ["e", "h", "x"])], [],
     "a cast to bool of a tensor that depends on the network input is not supported"),
    ([_node("Resize", ["h", "", "sc"], mode="cubic")], [tensor("sc", [1.0, 1.0, 2.0, 2.0])],
     "resizing mode 'cubic' is not supported"),
    ([_node("Resize", ["h", "", "sc"], coordinate_transformation_mode="tf_crop_and_resize")],
     [tensor("sc", [1.0, 1.0, 2.0, 2.0])], "coordinate_transformation_mode 'tf_crop_and_resize' is not supported"),
    ([_node("Expand", ["h", "sh"])], [int64s("sh", [3, 1, 1])], "shape mismatch or bad argument"),
])
def test_unsupported_uses_are_one_line_errors(tmp_path, nodes, inits, fragment):
    with pytest.raises(NetworkError) as info:
        load_onnx(_net(tmp_path, nodes, inits, 13, "bad"))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_solver_agrees_with_z3_on_a_network_of_these_operators(tmp_path):
    """x (1,1,2,2) -> Resize x2 (nearest) -> scale, shift, Relu -> Resize to 2x3 (linear) -> Where with its
    negation -> Min with the Expand of its row sums -> Gemm 2."""
    rng = np.random.default_rng(12)
    nodes = [
        helper.make_node("Resize", ["x", "", "up"], ["u"], mode="nearest", nearest_mode="floor"),
        helper.make_node("Mul", ["u", "s"], ["us"]), helper.make_node("Add", ["us", "t"], ["ua"]),
        helper.make_node("Relu", ["ua"], ["r"]),
        helper.make_node("Resize", ["r", "", "", "sz"], ["z"], mode="linear"),
        helper.make_node("Neg", ["z"], ["n"]),
        helper.make_node("Where", ["m", "z", "n"], ["w"]),
        helper.make_node("ReduceSum", ["w", "ax"], ["rs"], keepdims=1),
        helper.make_node("Expand", ["rs", "shape"], ["e"]),
        helper.make_node("Min", ["w", "e"], ["mn"]),
        helper.make_node("Flatten", ["mn"], ["f"]),
        helper.make_node("Gemm", ["f", "V", "c0"], ["y"], transB=1),
    ]
    inits = [tensor("up", [1.0, 1.0, 2.0, 2.0]), tensor("s", rng.normal(size=(1, 1, 4, 4))),
             tensor("t", rng.normal(0, 0.3, size=(1, 1, 4, 4))), int64s("sz", [1, 1, 2, 3]),
             bools("m", [[True, False, True], [False, True, True]]), int64s("ax", [-1]), int64s("shape", [1, 1, 2, 3]),
             tensor("V", rng.normal(size=(2, 6))), tensor("c0", rng.normal(size=2))]
    path = save(model(nodes, [value("x", [1, 1, 2, 2])], [value("y", [1, 2])], inits), tmp_path / "small.onnx")
    network = _matches(path, DENSE_LIMIT)
    verdicts = verdicts_agree_with_z3(network, rng, 0.5)
    assert "sat" in verdicts and "unsat" in verdicts, verdicts
