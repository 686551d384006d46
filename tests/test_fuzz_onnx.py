"""Fuzzing the ONNX importer: mutated real models load as a network or fail in one clean line.

Real models (the shipped MLPs and SRU, test and ACAS Xu benchmark networks, a CNN of the
collins benchmark, and small models built here with the rarer operators and with padding and pooling) are mutated on the
protobuf level -- weights set to NaN, infinity or huge values, initializers with wrong dims,
data types or raw bytes, removed nodes and initializers, cycles, renamed or missing inputs and
outputs, unknown and unsupported attributes and operators, odd input shapes and element types,
opsets, external data pointing anywhere -- and on the byte level (truncation, flipped and inserted
bytes). Every result must satisfy :mod:`fuzz_contract`: ``load_onnx`` returns a network (which
then evaluates without an exception) or raises one ``NetworkError`` line. Some of the models also go
through ``reluverify info`` (which runs onnxruntime on them) and ``reluverify verify`` in this
process, and a few through the real command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from fuzz_contract import ErrorLine, clean, fuzz_settings, run_cli, run_main
from onnx_builders import model, tensor, value
from reluverify.onnx_import import load_onnx

REPO = Path(__file__).resolve().parents[1]


def _rare_ops_model() -> onnx.ModelProto:
    """A small CNN with the operators the benchmarks lack: Conv, BatchNorm, Reshape, Concat, Slice, ..."""
    rng = np.random.default_rng(7)
    i64 = lambda name, values: numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)  # noqa: E731
    nodes = [
        helper.make_node("Div", ["x", "scale"], ["xs"]),
        helper.make_node("Conv", ["xs", "W", "B"], ["c"], strides=[1, 1], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "mu", "var"], ["cb"], epsilon=1e-5),
        helper.make_node("Relu", ["cb"], ["r"]),
        helper.make_node("Transpose", ["r"], ["rt"], perm=[0, 1, 3, 2]),
        helper.make_node("Reshape", ["rt", "shape"], ["flat"]),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["head"]),
        helper.make_node("Unsqueeze", ["head", "ax0"], ["u"]),
        helper.make_node("Squeeze", ["u", "ax0"], ["sq"]),
        helper.make_node("Concat", ["sq", "flat"], ["cat"], axis=1),
        helper.make_node("Gemm", ["cat", "W2", "B2"], ["h"], transB=1, alpha=0.5),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Neg", ["hr"], ["hn"]),
        helper.make_node("Sum", ["hn", "hr", "hr"], ["y"]),
    ]
    inits = [tensor("scale", [2.0]), tensor("W", rng.normal(size=(2, 1, 3, 3))), tensor("B", rng.normal(size=2)),
             tensor("s", [1.0, 0.5]), tensor("bb", [0.1, -0.1]), tensor("mu", [0.0, 0.2]), tensor("var", [1.0, 2.0]),
             i64("shape", [1, 32]), i64("starts", [0]), i64("ends", [4]), i64("axes", [1]), i64("ax0", [0]),
             tensor("W2", rng.normal(size=(3, 36))), tensor("B2", rng.normal(size=3))]
    return model(nodes, [value("x", [1, 1, 4, 4])], [value("y", [1, 3])], inits)


def _pooling_model() -> onnx.ModelProto:
    """A small CNN with padding and pooling: Pad, Conv, MaxPool, AveragePool, GlobalAveragePool, a residual Add."""
    rng = np.random.default_rng(8)
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "pads")
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"),
        helper.make_node("Conv", ["p", "W", "B"], ["c"], kernel_shape=[3, 3], strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("Conv", ["m", "W2"], ["d"], kernel_shape=[1, 1], auto_pad="SAME_UPPER"),
        helper.make_node("Add", ["m", "d"], ["s"]),
        helper.make_node("AveragePool", ["s"], ["a"], kernel_shape=[2, 2], pads=[1, 1, 0, 0], count_include_pad=1),
        helper.make_node("Relu", ["a"], ["ar"]),
        helper.make_node("GlobalAveragePool", ["ar"], ["g"]),
        helper.make_node("Flatten", ["g"], ["y"], axis=1),
    ]
    inits = [pads, tensor("W", rng.normal(size=(2, 1, 3, 3))), tensor("B", rng.normal(size=2)),
             tensor("W2", rng.normal(size=(2, 2, 1, 1)))]
    return model(nodes, [value("x", [1, 1, 5, 5])], [value("y", [1, 2])], inits)


def _bases() -> list[bytes]:
    from conftest import BENCHMARKS

    paths = [REPO / "networks" / "digits_mlp_small.onnx", REPO / "networks" / "digits_sru.onnx",
             BENCHMARKS / "test" / "test_small.onnx", BENCHMARKS / "test" / "test_nano.onnx",
             BENCHMARKS / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx",
             BENCHMARKS / "collins_rul_cnn" / "onnx" / "NN_rul_small_window_20.onnx"]
    return [p.read_bytes() for p in paths if p.exists()] + [_rare_ops_model().SerializeToString(),
                                                            _pooling_model().SerializeToString()]


BASES = _bases()
OPERATORS = ["Relu", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Flatten", "Reshape", "Concat", "Slice", "Split",
             "Gather", "Conv", "BatchNormalization", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Dropout",
             "Constant", "Cast", "Shape", "Sum", "Neg", "Sigmoid", "Tanh", "Softmax", "MaxPool", "AveragePool",
             "GlobalAveragePool", "Pad", "Loop", "If",
             "Custom", ""]
ATTRIBUTES = ["transA", "transB", "alpha", "beta", "axis", "axes", "perm", "foo", "auto_pad", "group", "strides",
              "pads", "dilations", "allowzero", "epsilon", "kernel_shape", "training_mode", "spatial", "split",
              "num_outputs", "to", "start", "end", "value", "value_float", "seed", "ratio", "broadcast", "momentum",
              "ceil_mode", "count_include_pad", "storage_order", "mode"]
ATTRIBUTE_VALUES = st.one_of(
    st.integers(-3, 5), st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(-2, 4), max_size=5),
    st.sampled_from([b"SAME_UPPER", b"VALID", b"NOTSET", b"bogus", "text", b"reflect", b"edge", b"wrap"]),
    st.builds(lambda v: numpy_helper.from_array(np.asarray(v, dtype=np.float32), "t"),
              st.lists(st.floats(-10, 10), min_size=0, max_size=3)),
)
SPECIAL_NUMBERS = [np.nan, np.inf, -np.inf, 1e38, -3.4e38, 1e-45, 0.0]
EXTERNAL = ["../../../etc/passwd", "/etc/passwd", "missing.bin", "", ".", "data/../../x.bin", "\x00", "a" * 300]


def _pick(draw, items):
    return items[draw(st.integers(0, len(items) - 1))] if len(items) else None


@st.composite
def mutated_models(draw) -> bytes:
    m = onnx.load_from_string(draw(st.sampled_from(BASES)))
    g = m.graph
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["weight", "dims", "drop_init", "drop_node", "cycle", "duplicate_output",
                                     "rename_input", "graph_io", "attribute", "op_type", "domain", "input_shape",
                                     "elem_type", "output_name", "opset", "external", "raw_data", "data_type",
                                     "node_inputs", "bytes"]))
        init, node = _pick(draw, g.initializer), _pick(draw, g.node)
        if kind == "weight" and init is not None and init.data_location != TensorProto.EXTERNAL:
            try:
                array = numpy_helper.to_array(init).copy()
            except Exception:  # noqa: BLE001 - an earlier mutation broke it: leave it so
                continue
            if array.size and array.dtype.kind == "f":
                array.flat[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from(SPECIAL_NUMBERS))
                init.CopyFrom(numpy_helper.from_array(array, init.name))
        elif kind == "dims" and init is not None:
            dims = list(init.dims)
            choice = draw(st.sampled_from(["append", "drop", "change", "zero"]))
            if choice == "append":
                dims.append(draw(st.integers(1, 3)))
            elif choice == "drop" and dims:
                dims.pop()
            elif dims:
                dims[draw(st.integers(0, len(dims) - 1))] = 0 if choice == "zero" else draw(st.integers(-1, 10**6))
            del init.dims[:]
            init.dims.extend(dims)
        elif kind == "drop_init" and init is not None:
            g.initializer.remove(init)
        elif kind == "drop_node" and node is not None:
            g.node.remove(node)
        elif kind == "cycle" and len(g.node) >= 2:  # an earlier node reads a later node's output
            first, later = draw(st.integers(0, len(g.node) - 2)), None
            later = draw(st.integers(first + 1, len(g.node) - 1))
            if g.node[first].input and g.node[later].output:
                g.node[first].input[0] = g.node[later].output[0]
        elif kind == "duplicate_output" and len(g.node) >= 2:
            g.node[-1].output[0] = g.node[0].output[0]
        elif kind == "rename_input" and node is not None and node.input:
            node.input[draw(st.integers(0, len(node.input) - 1))] = draw(st.sampled_from(["ghost", "", g.input[0].name if g.input else "x"]))
        elif kind == "graph_io":
            choice = draw(st.sampled_from(["drop_input", "extra_input", "extra_output", "drop_output"]))
            if choice == "drop_input" and g.input:
                g.input.remove(g.input[0])
            elif choice == "extra_input":
                g.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1, 2]))
            elif choice == "extra_output":
                g.output.append(helper.make_tensor_value_info(g.node[0].output[0] if g.node else "z", TensorProto.FLOAT, None))
            elif g.output:
                g.output.remove(g.output[0])
        elif kind == "attribute" and node is not None:
            name = draw(st.sampled_from(ATTRIBUTES))
            for existing in list(node.attribute):
                if existing.name == name:
                    node.attribute.remove(existing)
            try:
                node.attribute.append(helper.make_attribute(name, draw(ATTRIBUTE_VALUES)))
            except (ValueError, TypeError):
                pass
        elif kind == "op_type" and node is not None:
            node.op_type = draw(st.sampled_from(OPERATORS))
        elif kind == "domain" and node is not None:
            node.domain = draw(st.sampled_from(["com.microsoft", "ai.onnx.ml", "ai.onnx", "x"]))
        elif kind == "input_shape" and g.input:
            shape = g.input[0].type.tensor_type.shape
            choice = draw(st.sampled_from(["dim", "param", "drop", "clear", "add"]))
            if choice == "clear":
                g.input[0].type.tensor_type.ClearField("shape")
            elif choice == "add":
                shape.dim.add().dim_value = draw(st.integers(0, 3))
            elif shape.dim:
                dim = shape.dim[draw(st.integers(0, len(shape.dim) - 1))]
                if choice == "dim":
                    dim.dim_value = draw(st.sampled_from([0, 1, 2, 7, 10**5, 10**12, -5]))
                elif choice == "param":
                    dim.dim_param = "N"
                else:
                    shape.dim.remove(dim)
        elif kind == "elem_type" and g.input:
            g.input[0].type.tensor_type.elem_type = draw(st.sampled_from(
                [TensorProto.INT64, TensorProto.STRING, TensorProto.DOUBLE, TensorProto.FLOAT16, 0, 99]))
        elif kind == "output_name" and g.output:
            g.output[0].name = draw(st.sampled_from(["nowhere", g.input[0].name if g.input else "x", ""]))
        elif kind == "opset":
            del m.opset_import[:]
            if draw(st.booleans()):
                m.opset_import.append(helper.make_opsetid("", draw(st.sampled_from([1, 6, 9, 11, 13, 18, 999]))))
        elif kind == "external" and init is not None:
            init.data_location = TensorProto.EXTERNAL
            del init.external_data[:]
            entry = init.external_data.add()
            entry.key, entry.value = "location", draw(st.sampled_from(EXTERNAL))
            if draw(st.booleans()):
                entry = init.external_data.add()
                entry.key, entry.value = draw(st.sampled_from(["offset", "length"])), draw(st.sampled_from(["0", "-1", "10**9", "x"]))
        elif kind == "raw_data" and init is not None and init.raw_data:
            init.raw_data = init.raw_data[: draw(st.integers(0, len(init.raw_data) - 1))]
        elif kind == "data_type" and init is not None:
            init.data_type = draw(st.sampled_from([TensorProto.INT64, TensorProto.STRING, TensorProto.BFLOAT16,
                                                   TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BOOL, 0, 77]))
        elif kind == "node_inputs" and node is not None:
            if draw(st.booleans()) and node.input:
                node.input.pop()
            else:
                node.input.append(draw(st.sampled_from(["", node.input[0] if node.input else "x"])))
    data = m.SerializeToString()
    if draw(st.integers(0, 4)) == 0:  # byte-level damage on top
        choice = draw(st.sampled_from(["truncate", "flip", "insert"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if choice == "truncate":
            data = data[:at]
        elif choice == "flip" and data:
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        else:
            data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    return data


def _load(folder: Path, data: bytes):
    path = folder / "model.onnx"
    path.write_bytes(data)
    network = clean(load_onnx, path)
    if not isinstance(network, ErrorLine):
        x = np.random.default_rng(0).uniform(-1, 1, size=(3, network.input_size))
        with np.errstate(all="ignore"):
            y = network.evaluate(x)
        assert y.shape == (3, network.output_size)
        clean(network.relu_chain)
    return path, network


@pytest.mark.skipif(not BASES, reason="no base models")
@fuzz_settings(150)
@given(mutated_models())
def test_mutated_models_load_or_fail_cleanly(tmp_path_factory, data):
    _load(tmp_path_factory.mktemp("onnx"), data)


@fuzz_settings(40, deadline_s=30)
@given(mutated_models())
def test_info_runs_onnxruntime_or_fails_cleanly(tmp_path_factory, data):
    path, _ = _load(tmp_path_factory.mktemp("info"), data)
    run_main(["info", path])


@fuzz_settings(25, deadline_s=30)
@given(mutated_models())
def test_verify_decides_or_fails_cleanly(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("verify")
    path, network = _load(folder, data)
    size = 3 if isinstance(network, ErrorLine) else network.input_size
    point = folder / "point.json"
    point.write_text(json.dumps([0.1] * size))
    run_main(["verify", path, "--point", point, "--delta", "0.01", "--timeout", "2"])


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "missing.bin"])
def test_external_data_outside_the_folder_through_the_command_line(tmp_path, location):
    m = onnx.load(REPO / "networks" / "digits_mlp_small.onnx")
    init = m.graph.initializer[0]
    init.data_location = TensorProto.EXTERNAL
    init.ClearField("raw_data")
    entry = init.external_data.add()
    entry.key, entry.value = "location", location
    (tmp_path / "outside.bin").write_bytes(b"\0" * 10_000)
    folder = tmp_path / "models"
    folder.mkdir()
    onnx.save(m, folder / "evil.onnx")
    proc = run_cli(["info", folder / "evil.onnx"])
    assert proc.returncode == 2 and "external data" in proc.stderr, proc.stderr


def test_external_data_in_the_models_folder_loads_from_anywhere(tmp_path, monkeypatch):
    m = onnx.load(REPO / "networks" / "digits_mlp_small.onnx")
    folder = tmp_path / "models"
    folder.mkdir()
    onnx.save_model(m, folder / "model.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.data", size_threshold=0)
    monkeypatch.chdir(tmp_path)
    network = load_onnx(folder / "model.onnx")
    reference = load_onnx(REPO / "networks" / "digits_mlp_small.onnx")
    x = np.random.default_rng(1).uniform(0, 1, size=(4, 64))
    assert np.array_equal(network.evaluate(x), reference.evaluate(x))
    status, out, _ = run_main(["info", folder / "model.onnx"])
    assert status == 0 and "ReLUs     16" in out


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_a_network_that_never_ends_is_refused_at_once(tmp_path, kind):
    """``reluverify info /dev/zero`` (or a FIFO no one writes to): one line naming the file, never a hang."""
    import os
    import time

    path = Path("/dev/zero") if kind == "/dev/zero" else tmp_path / "net.onnx"
    if kind == "fifo":
        os.mkfifo(path)
    start = time.perf_counter()
    status, _, err = run_main(["info", path], seconds=10)
    assert status == 2 and str(path) in err and "not a regular file" in err
    assert time.perf_counter() - start < 5.0
