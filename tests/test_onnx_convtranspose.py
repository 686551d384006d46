"""ConvTranspose: the transpose of a Conv, kept structured; it matches onnxruntime (strides, pads, dilations,
groups, output padding, output_shape and auto_pad, 1-D and 2-D), exports back to ONNX, and the solver agrees
with z3 on a tiny generator."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from onnx import helper, numpy_helper

from conftest import benchmark_dir
from onnx_builders import model, save, tensor, value
from reluverify import linear_ops as lo
from reluverify.errors import NetworkError
from reluverify.onnx_import import DENSE_LIMIT, load_onnx
from reluverify.onnx_runtime import reference_model
from test_cnn_import import _agrees
from z3_agreement import verdicts_agree_with_z3

CASES = {
    # name: (input shape, weight shape, attributes, bias)
    "stride2-pad1": ((1, 3, 4, 4), (3, 2, 4, 4), dict(strides=[2, 2], pads=[1, 1, 1, 1]), True),
    "output-padding": ((1, 2, 3, 3), (2, 3, 3, 3), dict(strides=[2, 2], pads=[1, 0, 1, 0], output_padding=[1, 0]), True),
    "dilations": ((1, 2, 3, 4), (2, 2, 2, 3), dict(dilations=[2, 1], strides=[1, 2]), False),
    "groups": ((1, 4, 3, 3), (4, 1, 2, 2), dict(group=2, strides=[2, 1]), True),
    "1d": ((1, 2, 5), (2, 3, 3), dict(strides=[3], pads=[1, 2]), True),
    "output-shape-notset": ((1, 2, 3, 3), (2, 2, 3, 3), dict(strides=[2, 2], output_shape=[6, 5]), True),
    "output-shape-upper": ((1, 2, 3, 3), (2, 2, 3, 3), dict(strides=[2, 2], output_shape=[6, 5], auto_pad="SAME_UPPER"),
                           False),
    "same-lower": ((1, 2, 3, 3), (2, 2, 4, 4), dict(strides=[2, 2], auto_pad="SAME_LOWER"), True),
    "valid": ((1, 1, 3, 3), (1, 2, 3, 3), dict(auto_pad="VALID", kernel_shape=[3, 3]), True),
}


def _net(tmp_path, case, rng):
    in_shape, w_shape, attrs, bias = CASES[case]
    w = rng.normal(size=w_shape)
    inits = [tensor("W", w)] + ([tensor("B", rng.normal(size=w_shape[1] * attrs.get("group", 1)))] if bias else [])
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("ConvTranspose", ["r", "W"] + (["B"] if bias else []), ["c"], **attrs),
             helper.make_node("Relu", ["c"], ["y"])]
    out = helper.make_tensor_value_info("y", 1, None)
    return save(model(nodes, [value("x", list(in_shape))], [out], inits), tmp_path / f"{case}.onnx")


@pytest.mark.parametrize("limit", [DENSE_LIMIT, 0], ids=["dense", "structured"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_convtranspose_matches_onnxruntime(tmp_path, case, limit):
    rng = np.random.default_rng(11)
    path = _net(tmp_path, case, rng)
    network = load_onnx(path, dense_limit=limit)
    _agrees(network, path, rng, low=-2.0, high=2.0)
    if limit == 0:
        weights = [w for node in network.nodes if hasattr(node, "weights") for w in node.weights]
        assert any("transposed conv" in lo.describe(w) for w in weights)


def test_the_operator_is_the_transpose_of_its_convolution():
    rng = np.random.default_rng(4)
    conv = lo.Conv(rng.normal(size=(4, 1, 3, 2)), (2, 5, 4), strides=[2, 1], pads=[1, 0, 0, 1], groups=2)
    op = lo.ConvTranspose(conv)
    assert lo.shape(op) == (conv.shape[1], conv.shape[0])
    assert np.allclose(lo.dense(op), lo.dense(conv).T)
    assert np.allclose(lo.dense(op.absolute()), np.abs(lo.dense(conv).T))
    assert np.allclose(lo.dense(op.scaled(-2.0)), -2.0 * lo.dense(conv).T)
    assert np.allclose(lo.dense(pickle.loads(pickle.dumps(op))), lo.dense(op))
    assert np.allclose(op.rows([0, 3]), lo.dense(conv).T[[0, 3]])


@pytest.mark.parametrize("attrs, fragment", [
    (dict(strides=[2, 2], output_padding=[2, 0]), "output_padding [2, 0] must be below the strides or dilations"),
    (dict(output_shape=[9, 9]), "output_shape [9, 9] is larger than the transposed convolution gives"),
    (dict(kernel_shape=[2, 2]), "kernel_shape [2, 2] differs from the weights' [3, 3]"),
])
def test_bad_attributes_are_one_line_errors(tmp_path, attrs, fragment):
    nodes = [helper.make_node("ConvTranspose", ["x", "W"], ["y"], **attrs)]
    out = helper.make_tensor_value_info("y", 1, None)
    path = save(model(nodes, [value("x", [1, 2, 3, 3])], [out], [tensor("W", np.ones((2, 2, 3, 3)))]),
                tmp_path / "bad.onnx")
    with pytest.raises(NetworkError) as info:
        load_onnx(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_solver_agrees_with_z3_on_a_tiny_generator(tmp_path):
    """z (2) -> Gemm 8 -> reshape 2x2x2 -> ConvTranspose stride 2 -> Relu -> Gemm 2."""
    rng = np.random.default_rng(8)
    nodes = [
        helper.make_node("Gemm", ["x", "W0", "b0"], ["g"], transB=1),
        helper.make_node("Reshape", ["g", "shape"], ["s"]),
        helper.make_node("ConvTranspose", ["s", "W", "B"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "V", "c0"], ["y"], transB=1),
    ]
    inits = [tensor("W0", rng.normal(size=(8, 2))), tensor("b0", rng.normal(size=8)),
             numpy_helper.from_array(np.array([1, 2, 2, 2], dtype=np.int64), "shape"),
             tensor("W", rng.normal(size=(2, 1, 3, 3))), tensor("B", rng.normal(0, 0.3, size=1)),
             tensor("V", rng.normal(size=(2, 9))), tensor("c0", rng.normal(size=2))]
    path = save(model(nodes, [value("x", [1, 2])], [value("y", [1, 2])], inits), tmp_path / "generator.onnx")
    network = load_onnx(path, dense_limit=0)
    _agrees(network, path, rng)
    verdicts = verdicts_agree_with_z3(network, rng, 0.5)
    assert "sat" in verdicts and "unsat" in verdicts, verdicts


def test_the_cgan_generators_import_structured_and_match_onnxruntime(rng):
    """The breadth benchmark's cGAN generators (ConvTranspose, Upsample, BatchNormalization) import."""
    files = sorted((benchmark_dir("breadth") / "cgan" / "onnx").glob("*.onnx"))
    assert files
    for path in files:
        network = load_onnx(path)
        x = rng.uniform(-1.0, 1.0, size=(4, network.input_size))
        ref = reference_model(str(path))(x)
        assert np.max(np.abs(network.evaluate(x) - ref)) <= 1e-6 * max(1.0, float(np.max(np.abs(ref)))), path.name


def test_a_per_channel_scale_folds_into_the_kernel():
    """BatchNormalization after (or a channel scale before) a transposed convolution leaves one operator."""
    rng = np.random.default_rng(6)
    op = lo.ConvTranspose(lo.Conv(rng.normal(size=(4, 3, 2, 2)), (3, 5, 5), strides=[2, 2], groups=1))
    after = lo.diagonal(np.repeat(rng.normal(size=3), 25))
    before = lo.diagonal(np.repeat(rng.normal(size=4), int(np.prod(op.in_shape[1:]))))
    for composed, reference in [(lo.compose(after, op), lo.dense(after) @ lo.dense(op)),
                                (lo.compose(op, before), lo.dense(op) @ lo.dense(before))]:
        assert isinstance(composed, lo.ConvTranspose)
        assert np.allclose(lo.dense(composed), reference)
