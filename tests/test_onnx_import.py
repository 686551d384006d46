"""ONNX import: every benchmark network matches onnxruntime; bad files give one clear error."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from onnx_builders import mlp, model, random_mlp, save, tensor, value
from reluverify.errors import NetworkError
from reluverify.onnx_import import load_onnx
from reluverify.onnx_runtime import reference_model


def _check_against_onnxruntime(path, rng, low=-1.0, high=1.0, count=32):
    network = load_onnx(path)
    x = rng.uniform(low, high, size=(count, network.input_size))
    ours = network.evaluate(x)
    ref = reference_model(str(path))(x)
    scale = max(1.0, float(np.max(np.abs(ref))))
    assert np.max(np.abs(ours - ref)) <= 1e-5 * scale
    chain = network.relu_chain()
    assert np.allclose(chain.evaluate(x), ours, atol=1e-9 * scale)
    return network


def test_all_acasxu_networks_match_onnxruntime(acasxu_dir, rng):
    files = sorted(acasxu_dir.glob("*.onnx"))
    assert len(files) == 45
    for path in files:
        network = _check_against_onnxruntime(path, rng, -0.5, 0.5)
        assert network.input_size == 5 and network.output_size == 5
        assert network.relu_chain().layer_sizes == (50,) * 6


def test_mnist_networks_match_onnxruntime(mnist_dir, rng):
    for name, depth in [("mnist-net_256x2.onnx", 2), ("mnist-net_256x4.onnx", 4), ("mnist-net_256x6.onnx", 6)]:
        network = _check_against_onnxruntime(mnist_dir / name, rng, 0.0, 1.0)
        assert network.input_size == 784 and network.output_size == 10
        assert network.relu_chain().layer_sizes == (256,) * depth


def test_tiny_test_networks_match_onnxruntime(test_bench_dir, rng):
    for path in sorted(test_bench_dir.glob("*.onnx")):
        _check_against_onnxruntime(path, rng, -3.0, 3.0)


def test_normalisation_folds_into_first_layer(tmp_path, rng):
    weights, biases = random_mlp(rng, [4, 6, 3])
    mean = rng.normal(size=4).astype(np.float32)
    std = rng.uniform(0.5, 2.0, size=4).astype(np.float32)
    path = save(mlp(weights, biases, normalise=(mean, std)), tmp_path / "norm.onnx")
    network = _check_against_onnxruntime(path, rng)
    # input -> affine -> relu -> affine: the Sub/Div folded into the first affine layer
    kinds = [type(n).__name__ for n in network.nodes]
    assert kinds == ["InputNode", "AffineNode", "ActivationNode", "AffineNode"]


def test_reshape_input_and_4d_shape(tmp_path, rng):
    weights, biases = random_mlp(rng, [6, 5, 2])
    path = save(mlp(weights, biases, input_shape=[1, 1, 2, 3]), tmp_path / "r.onnx")
    network = _check_against_onnxruntime(path, rng)
    assert network.input_shape == (1, 1, 2, 3)


def test_conv_lowered_to_affine_matches_onnxruntime(tmp_path, rng):
    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    w2 = rng.normal(size=(4, 3 * 3 * 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "W2T"], ["y"]),
    ]
    m = model(
        nodes,
        [value("x", [1, 2, 5, 5])],
        [value("y", [1, 4])],
        [tensor("W", w), tensor("B", b), tensor("W2T", w2.T)],
    )
    network = _check_against_onnxruntime(save(m, tmp_path / "conv.onnx"), rng)
    assert network.num_relus == 27


def test_batchnorm_transpose_and_constant_ops(tmp_path, rng):
    w = rng.normal(size=(4, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
        helper.make_node("Transpose", ["xt"], ["xtt"], perm=[1, 0]),
        helper.make_node("Constant", [], ["k"], value=tensor("kval", [2.0, 2.0, 2.0])),
        helper.make_node("Mul", ["xtt", "k"], ["xm"]),
        helper.make_node("MatMul", ["xm", "WT"], ["h"]),
        helper.make_node(
            "BatchNormalization", ["h", "s", "bb", "mu", "var"], ["hb"], epsilon=1e-5
        ),
        helper.make_node("Relu", ["hb"], ["y"]),
    ]
    inits = [
        tensor("WT", w.T),
        tensor("s", rng.uniform(0.5, 1.5, 4)),
        tensor("bb", rng.normal(size=4)),
        tensor("mu", rng.normal(size=4)),
        tensor("var", rng.uniform(0.5, 1.5, 4)),
    ]
    m = model(nodes, [value("x", [1, 3])], [value("y", [1, 4])], inits)
    _check_against_onnxruntime(save(m, tmp_path / "bn.onnx"), rng)


# ----------------------------------------------------------------- bad input
def _expect_error(path, *fragments):
    with pytest.raises(NetworkError) as info:
        load_onnx(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_truncated_file_is_rejected(tmp_path, acasxu_dir):
    data = (acasxu_dir / "ACASXU_run2a_1_1_batch_2000.onnx").read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 3])
    _expect_error(path, "not a valid ONNX file")


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    _expect_error(empty, "empty")
    _expect_error(tmp_path / "nope.onnx", "no such file")


def test_unsupported_operator_is_named(tmp_path):
    nodes = [helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2], name="pool1")]
    m = model(nodes, [value("x", [1, 1, 4])], [value("y", [1, 1, 2])])
    _expect_error(save(m, tmp_path / "pool.onnx"), "pool1", "unsupported operator 'LpPool'")


def test_dangling_input_is_named(tmp_path):
    nodes = [helper.make_node("Add", ["x", "ghost"], ["y"], name="add0")]
    m = model(nodes, [value("x", [1, 2])], [value("y", [1, 2])])
    _expect_error(save(m, tmp_path / "dangling.onnx"), "add0", "'ghost'", "not produced")


def test_two_inputs_import_as_one_vector(tmp_path):
    """Several input tensors are one input vector, in graph order (tests/test_multi_io.py has the rest)."""
    nodes = [helper.make_node("Add", ["x", "z"], ["y"])]
    m = model(nodes, [value("x", [1, 2]), value("z", [1, 2])], [value("y", [1, 2])])
    network = load_onnx(save(m, tmp_path / "two.onnx"))
    np.testing.assert_array_equal(network.evaluate(np.array([1.0, 2.0, 10.0, 20.0])), [11.0, 22.0])


def test_nan_weights_are_rejected(tmp_path, rng):
    weights, biases = random_mlp(rng, [3, 4, 2])
    weights[1][0, 0] = np.nan
    _expect_error(save(mlp(weights, biases), tmp_path / "nan.onnx"), "W1", "NaN")
    weights[1][0, 0] = np.inf
    _expect_error(save(mlp(weights, biases), tmp_path / "inf.onnx"), "W1", "NaN or infinity")


def test_shape_mismatch_is_named(tmp_path, rng):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")]
    m = model(nodes, [value("x", [1, 3])], [value("y", [1, 2])], [tensor("W", rng.normal(size=(4, 2)))])
    _expect_error(save(m, tmp_path / "shape.onnx"), "mm", "shape")


def test_output_independent_of_input_is_rejected(tmp_path):
    nodes = [helper.make_node("Identity", ["c"], ["y"])]
    m = model(nodes, [value("x", [1, 2])], [value("y", [2])], [tensor("c", [1.0, 2.0])])
    _expect_error(save(m, tmp_path / "const.onnx"), "does not depend on the input")


def test_product_of_inputs_is_imported_but_not_a_relu_chain(tmp_path):
    nodes = [helper.make_node("Mul", ["x", "x"], ["y"])]  # one tensor times itself: a square activation
    m = model(nodes, [value("x", [1, 2])], [value("y", [1, 2])])
    network = load_onnx(save(m, tmp_path / "sq.onnx"))
    assert np.allclose(network.evaluate(np.array([[2.0, -3.0]])), [[4.0, 9.0]])
    with pytest.raises(NetworkError, match="is a square node"):
        network.relu_chain()
    nodes = [helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Mul", ["x", "n"], ["y"])]
    m = model(nodes, [value("x", [1, 2])], [value("y", [1, 2])])
    network = load_onnx(save(m, tmp_path / "product.onnx"))
    assert np.allclose(network.evaluate(np.array([[2.0, -3.0]])), [[-4.0, -9.0]])
    with pytest.raises(NetworkError, match="is a product node"):
        network.relu_chain()


def test_a_traced_tensor_of_lower_rank_broadcasts(tmp_path, rng):
    """x (4,) + c (2, 4): numpy's rule pads the lower rank with leading 1s (the traced table's row axis
    once stood in the way: 'operands could not be broadcast')."""
    nodes = [helper.make_node("Add", ["x", "c"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    m = model(nodes, [value("x", [4])], [value("y", [2, 4])], [tensor("c", rng.normal(size=(2, 4)))])
    network = _check_against_onnxruntime(save(m, tmp_path / "rank.onnx"), rng)
    assert network.output_size == 8
