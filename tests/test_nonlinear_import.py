"""ONNX import of the operations of unrolled recurrent graphs, checked against onnxruntime.

The shipped SRU (MatMul, Split, Gather, Sigmoid, Mul of two tensors) is checked against
onnxruntime in ``test_train_shipped.py``; here a hand-written graph adds the other ways an
exporter writes a recurrence: Slice and Concat of the time axis, Tanh gates, a product of two
traced tensors, and Split with the ``split`` attribute of older opsets.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from reluverify.onnx_import import load_onnx
from reluverify.onnx_runtime import ReferenceModel


def _const(name: str, array) -> object:
    return numpy_helper.from_array(np.asarray(array), name)


def _recurrent_graph(path, rng: np.random.Generator, opset: int) -> None:
    """x (1, 3, 2): two steps of ``h = tanh(W x_t + U h) * sigmoid(V x_t)`` via Slice/Split/Gather/Concat."""
    w, u, v = (rng.normal(0, 1, (2, 2)).astype(np.float32) for _ in range(3))
    inits = [
        _const("W", w.T), _const("U", u.T), _const("V", v.T),
        _const("s0", np.array([0], np.int64)), _const("s1", np.array([1], np.int64)),
        _const("s3", np.array([3], np.int64)), _const("ax1", np.array([1], np.int64)),
        _const("t2", np.array(2, np.int64)), _const("shape", np.array([1, 2], np.int64)),
    ]
    nodes = [
        # step 0 by Slice, step 1 by Split (both along the time axis), step 2 by Gather
        helper.make_node("Slice", ["x", "s0", "s1", "ax1"], ["x0s"]),
        helper.make_node("Reshape", ["x0s", "shape"], ["x0"]),
    ]
    if opset >= 13:
        inits.append(_const("parts", np.array([1, 1, 1], np.int64)))
        nodes.append(helper.make_node("Split", ["x", "parts"], ["p0", "p1", "p2"], axis=1))
    else:
        nodes.append(helper.make_node("Split", ["x"], ["p0", "p1", "p2"], axis=1, split=[1, 1, 1]))
    nodes += [
        helper.make_node("Reshape", ["p1", "shape"], ["x1"]),
        helper.make_node("Gather", ["x", "t2"], ["x2"], axis=1),
        helper.make_node("MatMul", ["x0", "W"], ["a0"]),
        helper.make_node("Tanh", ["a0"], ["h0"]),
        helper.make_node("MatMul", ["x1", "W"], ["wx1"]),
        helper.make_node("MatMul", ["h0", "U"], ["uh0"]),
        helper.make_node("Add", ["wx1", "uh0"], ["a1"]),
        helper.make_node("Tanh", ["a1"], ["t1"]),
        helper.make_node("MatMul", ["x2", "V"], ["g"]),
        helper.make_node("Sigmoid", ["g"], ["gate"]),
        helper.make_node("Mul", ["t1", "gate"], ["h1"]),  # a product of two traced tensors
        helper.make_node("Concat", ["h0", "h1"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "recurrent",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    with open(path, "wb") as handle:
        handle.write(model.SerializeToString())


@pytest.mark.parametrize("opset", [11, 13])
def test_slice_split_gather_concat_tanh_and_products_match_onnxruntime(tmp_path, opset):
    rng = np.random.default_rng(opset)
    path = tmp_path / f"recurrent{opset}.onnx"
    _recurrent_graph(path, rng, opset)
    network = load_onnx(path)
    assert network.activation_counts == {"tanh": 4, "sigmoid": 2, "product": 2}
    assert not network.is_piecewise_linear
    x = rng.uniform(-2, 2, (32, 6)).astype(np.float32).astype(np.float64)
    ours = network.evaluate(x)
    reference = ReferenceModel(str(path))(x)
    assert np.max(np.abs(ours - reference)) < 1e-5
