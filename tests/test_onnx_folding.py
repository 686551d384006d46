"""Constant folding: shape and index arithmetic is evaluated once, never traced; the result matches onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx_builders import int64s, matches_onnxruntime, model, save, tensor, value
from reluverify import onnx_proto
from reluverify.errors import NetworkError
from reluverify.onnx_import import folding, load_onnx


def _matches(path, rng, shape_size, count=8):
    return matches_onnxruntime(load_onnx(path), path, rng.uniform(-2.0, 2.0, size=(count, shape_size)))


def test_shape_arithmetic_on_the_input_is_folded(tmp_path, rng):
    """Shape -> ConstantOfShape -> Mul, Range/Equal/Where/Cast/Expand/OneHot into an Add: all constants."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("ConstantOfShape", ["s"], ["ones"], value=numpy_helper.from_array(np.array([2.0], np.float32))),
        helper.make_node("Mul", ["x", "ones"], ["h"]),
        helper.make_node("Range", ["zero", "four", "one"], ["r"]),
        helper.make_node("Equal", ["r", "two"], ["eq"]),
        helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
        helper.make_node("Where", ["eq", "five", "rf"], ["w"]),
        helper.make_node("OneHot", ["idx", "depth", "onoff"], ["oh"], axis=-1),
        helper.make_node("Expand", ["w", "s"], ["we"]),
        helper.make_node("Add", ["h", "we"], ["h2"]),
        helper.make_node("Add", ["h2", "oh"], ["h3"]),
        helper.make_node("Relu", ["h3"], ["y"]),
    ]
    inits = [int64s("zero", 0), int64s("four", 4), int64s("one", 1), int64s("two", [2]), tensor("five", [5.0]),
             int64s("idx", [1]), int64s("depth", 4), tensor("onoff", [0.0, 3.0])]
    path = save(model(nodes, [value("x", [1, 4])], [value("y", [1, 4])], inits), tmp_path / "shapes.onnx")
    network = _matches(path, rng, 4)
    assert [type(n).__name__ for n in network.nodes] == ["InputNode", "AffineNode", "ActivationNode", "AffineNode"]


def test_folding_finds_constant_nodes_and_leaves_the_rest():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i"], ["g"], axis=0),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("RandomNormalLike", ["x"], ["noise"]),
        helper.make_node("Reshape", ["r", "g"], ["y"]),
    ]
    m = model(nodes, [value("x", [1, 4])], [value("y", [4])], [int64s("i", [1])])
    assert folding.constant_nodes(m.graph, {"i"}) == {0, 1}
    parsed = onnx_proto.parse_model(m.SerializeToString())
    result = folding.fold(parsed, {"i": np.array([1])}, {"x": (1, 4)}, "")
    assert result.skipped == {0, 1}
    assert list(result.values) == ["g"] and result.values["g"].tolist() == [4]


def test_a_graph_with_only_constant_nodes_is_not_run(acasxu_dir, mnist_dir):
    for path in [acasxu_dir / "ACASXU_run2a_1_1_batch_2000.onnx", mnist_dir / "mnist-net_256x2.onnx"]:
        with open(path, "rb") as handle:
            parsed = onnx_proto.parse_model(handle.read())
        assert folding.fold(parsed, {}, {}, str(path)) == folding.Folding()


def test_a_random_generator_is_never_folded(tmp_path):
    nodes = [helper.make_node("RandomNormal", [], ["n"], shape=[1, 3]), helper.make_node("Add", ["x", "n"], ["y"])]
    path = save(model(nodes, [value("x", [1, 3])], [value("y", [1, 3])]), tmp_path / "random.onnx")
    with pytest.raises(NetworkError, match=r"\(RandomNormal\): unsupported operator 'RandomNormal'"):
        load_onnx(path)


def test_an_input_dependent_use_of_a_constant_only_operator_names_the_node(tmp_path):
    nodes = [helper.make_node("Equal", ["x", "c"], ["e"], name="compare"),
             helper.make_node("Where", ["e", "x", "c"], ["y"])]
    path = save(model(nodes, [value("x", [1, 3])], [value("y", [1, 3])], [tensor("c", [0.0, 1.0, 2.0])]),
                tmp_path / "equal.onnx")
    with pytest.raises(NetworkError) as info:
        load_onnx(path)
    message = str(info.value)
    assert "\n" not in message and message.endswith("node 'compare' (Equal): unsupported operator 'Equal'")


def test_a_constant_subgraph_onnxruntime_refuses_gives_the_tracers_error(tmp_path):
    """A broken constant path (a reshape to the wrong size) is left to the tracer: one line naming the node."""
    nodes = [helper.make_node("Reshape", ["c", "bad"], ["cr"], name="broken"),
             helper.make_node("Add", ["x", "cr"], ["y"])]
    inits = [tensor("c", np.ones(6)), int64s("bad", [4, 2])]
    path = save(model(nodes, [value("x", [1, 3])], [value("y", [1, 3])], inits), tmp_path / "broken.onnx")
    with pytest.raises(NetworkError, match=r"node 'broken' \(Reshape\): cannot reshape"):
        load_onnx(path)


def test_constant_float_arithmetic_is_folded_as_onnxruntime_computes_it(tmp_path, rng):
    """Weights computed from constants (a MatMul of two initializers, then Relu) match onnxruntime."""
    a, b = rng.normal(size=(3, 5)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["A", "B"], ["AB"]), helper.make_node("Relu", ["AB"], ["W"]),
             helper.make_node("MatMul", ["x", "W"], ["y"])]
    path = save(model(nodes, [value("x", [1, 3])], [value("y", [1, 2])], [tensor("A", a), tensor("B", b)]),
                tmp_path / "weights.onnx")
    _matches(path, rng, 3)


def test_initializers_listed_as_graph_inputs_are_folded_too(tmp_path, rng):
    """An older file declares its initializers as graph inputs; the folded sub-model keeps only those it reads."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["c"], value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Mul", ["x", "c"], ["h"]), helper.make_node("Gemm", ["h", "W", "b"], ["y"], transB=1)]
    inits = [tensor("W", rng.normal(size=(2, 3))), tensor("b", rng.normal(size=2)), tensor("unused", [1.0])]
    m = model(nodes, [value("x", [1, 3]), value("W", [2, 3]), value("b", [2]), value("unused", [1])],
              [value("y", [1, 2])], inits)
    parsed = onnx_proto.parse_model(m.SerializeToString())
    initialisers = {"W": None, "b": None, "unused": None}
    assert folding.fold(parsed, initialisers, {"x": (1, 3)}, "").skipped == {0, 1}
    _matches(save(m, tmp_path / "old.onnx"), rng, 3)
