"""Build small ONNX models in tests (valid ones and deliberately broken ones), and compare an imported
model with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tensor(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def int64s(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def bools(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=bool), name)


def matches_onnxruntime(network, path, x: np.ndarray):
    """Assert that the imported ``network`` of the file ``path`` gives onnxruntime's outputs at the inputs ``x``
    (same shape, relative difference at most 1e-6); the network."""
    from reluverify.onnx_runtime import reference_model

    ours, ref = network.evaluate(x), reference_model(str(path))(x)
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) <= 1e-6 * max(1.0, float(np.max(np.abs(ref))))
    return network


def model(nodes, inputs, outputs, initializers=(), opset: int = 13) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def value(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def mlp(weights, biases, input_shape=None, normalise=None) -> onnx.ModelProto:
    """A Gemm/Relu MLP; ``normalise=(mean, std)`` adds Sub/Div nodes before the first layer."""
    n_in = weights[0].shape[1]
    shape = input_shape or [1, n_in]
    nodes, inits = [], []
    current = "x"
    if normalise is not None:
        mean, std = normalise
        inits += [tensor("mean", mean), tensor("std", std)]
        nodes += [helper.make_node("Sub", ["x", "mean"], ["xs"]), helper.make_node("Div", ["xs", "std"], ["xn"])]
        current = "xn"
    if len(shape) != 2:
        inits.append(numpy_helper.from_array(np.array([1, n_in], dtype=np.int64), "flat_shape"))
        nodes.append(helper.make_node("Reshape", [current, "flat_shape"], ["xf"]))
        current = "xf"
    for i, (w, b) in enumerate(zip(weights, biases)):
        inits += [tensor(f"W{i}", w), tensor(f"B{i}", b)]
        out = f"h{i}"
        nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"B{i}"], [out], transB=1))
        current = out
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            current = f"r{i}"
    nodes.append(helper.make_node("Identity", [current], ["y"]))
    return model(nodes, [value("x", shape)], [value("y", [1, weights[-1].shape[0]])], inits)


def random_mlp(rng, sizes) -> tuple[list[np.ndarray], list[np.ndarray]]:
    weights = [rng.normal(0, 1 / np.sqrt(a), (b, a)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
    biases = [rng.normal(0, 0.1, b).astype(np.float32) for b in sizes[1:]]
    return weights, biases


def save(m: onnx.ModelProto, path) -> str:
    onnx.save(m, str(path))
    return str(path)
