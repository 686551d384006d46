"""The operator registry: every operator registered once with its attributes; unknown ones refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from onnx_builders import model, save, tensor, value
from reluverify.errors import NetworkError
from reluverify.onnx_import import load_onnx
from reluverify.onnx_import.registry import LEGACY, OPERATORS, Operator, lookup, operator


def _error(path) -> str:
    with pytest.raises(NetworkError) as info:
        load_onnx(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_every_registered_operator_has_a_function_and_attribute_names():
    assert {"Add", "Conv", "Gemm", "MatMul", "MaxPool", "Relu", "Reshape"} <= set(OPERATORS)
    for name, entry in OPERATORS.items():
        assert isinstance(entry, Operator) and entry.name == name
        assert callable(entry.function)
        assert entry.function.__module__.startswith("reluverify.onnx_import."), (name, entry.function.__module__)
        assert isinstance(entry.attributes, tuple), name
        assert all(isinstance(a, str) and a for a in entry.attributes), name
        assert len(set(entry.attributes)) == len(entry.attributes), name
    assert OPERATORS["Conv"].attributes == ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
    assert OPERATORS["MatMul"].attributes == ()
    assert set(LEGACY) <= set(OPERATORS["Relu"].attributes)


def test_an_unknown_operator_is_one_line_naming_the_node(tmp_path):
    nodes = [helper.make_node("NoSuchOperator", ["x"], ["y"], name="mystery")]
    m = model(nodes, [value("x", [1, 3])], [value("y", [1, 3])])
    message = _error(save(m, tmp_path / "unknown.onnx"))
    assert message.endswith("node 'mystery' (NoSuchOperator): unsupported operator 'NoSuchOperator'"), message
    with pytest.raises(NetworkError, match=r"^here: unsupported operator 'NoSuchOperator'$"):
        lookup("NoSuchOperator", (), "here")


def test_an_unknown_attribute_is_one_line_naming_the_node(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="act", colour=3)]
    m = model(nodes, [value("x", [1, 3])], [value("y", [1, 3])])
    message = _error(save(m, tmp_path / "attribute.onnx"))
    assert message.endswith("node 'act' (Relu): attribute 'colour' is not supported"), message
    # an attribute that would change the meaning (the legacy broadcast axis of Add) is refused the same way
    nodes = [helper.make_node("Add", ["x", "b"], ["y"], axis=1)]
    m = model(nodes, [value("x", [1, 3])], [value("y", [1, 3])], [tensor("b", [1.0, 2.0, 3.0])])
    assert _error(save(m, tmp_path / "axis.onnx")).endswith("node #0 (Add): attribute 'axis' is not supported")
    assert lookup("Relu", LEGACY, "here") is OPERATORS["Relu"]


def test_registering_an_operator_twice_is_refused():
    before = dict(OPERATORS)
    with pytest.raises(ValueError, match="'Conv' is registered twice"):
        operator("Conv", attributes=("strides",))(lambda tracer, inputs, attrs, where: [inputs[0]])
    with pytest.raises(TypeError):
        operator("Ignored", attributes="axis")  # a string is not a list of names
    assert OPERATORS == before


def test_a_registered_operator_is_traced_with_its_attributes(tmp_path):
    """The whole path of a new operator: one registered function, its attribute accepted, others refused."""

    @operator("TestScale", attributes=("factor",))
    def op_test_scale(tracer, inputs, attrs, where):
        return [inputs[0].scaled(float(attrs.get("factor", 1.0)))]

    try:
        with pytest.raises(ValueError, match="registered twice"):
            operator("TestScale")(op_test_scale)
        nodes = [helper.make_node("TestScale", ["x"], ["h"], factor=3.0), helper.make_node("Relu", ["h"], ["y"])]
        m = model(nodes, [value("x", [1, 2])], [value("y", [1, 2])])
        network = load_onnx(save(m, tmp_path / "scale.onnx"))
        x = np.array([[1.0, -2.0], [0.5, 0.25]])
        assert np.allclose(network.evaluate(x), np.maximum(3.0 * x, 0.0))
        nodes[0] = helper.make_node("TestScale", ["x"], ["h"], factor=3.0, offset=1.0)
        m = model(nodes, [value("x", [1, 2])], [value("y", [1, 2])])
        assert _error(save(m, tmp_path / "offset.onnx")).endswith("(TestScale): attribute 'offset' is not supported")
    finally:
        del OPERATORS["TestScale"]


def _many_unsupported(tmp_path):
    """Relu, then Hardmax x4 (two named, two not), Erf once and a node of another domain."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first"),
             helper.make_node("Hardmax", ["r"], ["a"], name="h1"),
             helper.make_node("Erf", ["a"], ["b"], name="binarise"),
             helper.make_node("Hardmax", ["b"], ["c"], name="h2"),
             helper.make_node("Hardmax", ["c"], ["d"]),
             helper.make_node("Relu", ["d"], ["e"]),
             helper.make_node("Hardmax", ["e"], ["f"], name="h4"),
             helper.make_node("Custom", ["f"], ["y"], name="mine", domain="com.example")]
    return save(model(nodes, [value("x", [1, 3])], [value("y", [1, 3])]), tmp_path / "many.onnx")


def test_every_unsupported_operator_is_named_in_one_line(tmp_path):
    message = _error(_many_unsupported(tmp_path))
    assert message.endswith("3 unsupported operators in 6 nodes: 'Hardmax' x4 (nodes 'h1', 'h2', #4 and 1 more), "
                            "'Erf' x1 (node 'binarise'), 'com.example.Custom' x1 (node 'mine')"), message


def test_info_and_verify_name_every_unsupported_operator(tmp_path):
    from fuzz_contract import run_main

    path = _many_unsupported(tmp_path)
    point = tmp_path / "point.json"
    point.write_text("[0.5, 0.5, 0.5]")
    for argv in (["info", path], ["verify", path, "--point", point, "--delta", "0.1"]):
        status, out, err = run_main(argv)
        assert status == 2 and not out and err.count("\n") == 1, err
        assert all(word in err for word in ("'Hardmax' x4", "'Erf' x1", "'com.example.Custom' x1", "6 nodes")), err


def test_a_node_that_fails_otherwise_is_not_called_unsupported(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act", colour=3),
             helper.make_node("Hardmax", ["r"], ["y"], name="later")]
    message = _error(save(model(nodes, [value("x", [1, 3])], [value("y", [1, 3])]), tmp_path / "attr.onnx"))
    assert message.endswith("node 'act' (Relu): attribute 'colour' is not supported"), message
