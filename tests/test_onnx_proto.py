"""The ONNX reader without the onnx package gives exactly what onnx's own helpers give."""

import glob
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from reluverify import onnx_proto

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NUMERIC = [TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT32, TensorProto.INT64, TensorProto.FLOAT16,
           TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16, TensorProto.UINT32,
           TensorProto.UINT64, TensorProto.BOOL, TensorProto.BFLOAT16]


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("element_type", NUMERIC)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3, 4), (1, 1, 1, 5)])
@pytest.mark.parametrize("raw", [True, False])
def test_tensors_decode_as_numpy_helper_does(element_type, shape, raw):
    rng = np.random.default_rng(hash((element_type, shape, raw)) % 2**32)
    dtype = helper.tensor_dtype_to_np_dtype(element_type)
    values = (rng.normal(size=shape) * 100).astype(np.float64)
    if dtype.kind in "iub":
        info = np.iinfo(dtype) if dtype.kind != "b" else None
        values = rng.integers(0, 2, size=shape) if info is None else rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    array = np.asarray(values).astype(dtype)  # (a float16 or bfloat16 tensor from float64 values)
    if raw:
        tensor = helper.make_tensor("t", element_type, shape, array.tobytes(), raw=True)
    else:
        tensor = numpy_helper.from_array(array, "t")
        if tensor.HasField("raw_data"):  # from_array writes raw_data; move it to the typed field
            tensor = helper.make_tensor("t", element_type, shape, array.flatten().tolist()
                                        if element_type not in (TensorProto.FLOAT16, TensorProto.BFLOAT16)
                                        else array.view(np.uint16).flatten().tolist())
    _same(onnx_proto.to_array(tensor), numpy_helper.to_array(tensor))


def test_a_wrong_byte_count_is_refused_as_numpy_helper_refuses_it():
    tensor = TensorProto(name="t", data_type=TensorProto.FLOAT, dims=[3], raw_data=np.zeros(2, np.float32).tobytes())
    with pytest.raises(ValueError):
        numpy_helper.to_array(tensor)
    with pytest.raises(ValueError):
        onnx_proto.to_array(tensor)


def test_external_data_is_read_by_onnx_itself(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    (tmp_path / "w.bin").write_bytes(array.tobytes())
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 4], data_location=TensorProto.EXTERNAL)
    tensor.external_data.add(key="location", value="w.bin")
    _same(onnx_proto.to_array(tensor, base_dir=str(tmp_path)), array)


def test_attributes_read_as_onnx_helper_reads_them():
    t = numpy_helper.from_array(np.ones((2, 2), np.float32), "c")
    node = helper.make_node("X", [], ["y"], f=1.5, i=3, s="same", t=t, fs=[1.0, 2.5], is_=[1, 2, 3], ss=["a", "b"])
    for attribute in node.attribute:
        assert onnx_proto.attribute_value(attribute) == helper.get_attribute_value(attribute)
    graph_attribute = helper.make_attribute("g", helper.make_graph([], "g", [], []))
    assert onnx_proto.attribute_value(graph_attribute) == helper.get_attribute_value(graph_attribute)


@pytest.mark.parametrize("element_type", NUMERIC + [TensorProto.FLOAT8E4M3FN])
def test_element_types_map_to_numpy_as_onnx_maps_them(element_type):
    assert onnx_proto.numpy_dtype(element_type) == helper.tensor_dtype_to_np_dtype(element_type)


def test_shipped_and_benchmark_models_parse_identically():
    paths = sorted(glob.glob(os.path.join(ROOT, "networks", "**", "*.onnx"), recursive=True))
    paths += sorted(glob.glob(os.path.join(ROOT, "..", "shared", "benchmarks", "*", "*.onnx")))[:40]
    assert paths
    for path in paths:
        with open(path, "rb") as handle:
            data = handle.read()
        ours, theirs = onnx_proto.parse_model(data), onnx.load_from_string(data)
        assert ours.SerializeToString() == theirs.SerializeToString(), path
        for tensor in theirs.graph.initializer:
            if tensor.data_location != TensorProto.EXTERNAL:
                _same(onnx_proto.to_array(tensor), numpy_helper.to_array(tensor))


def test_verifying_does_not_import_the_onnx_package_which_still_works_after():
    """The point of the module: a process that loads a network never pays ``import onnx``; and a later
    ``import onnx`` in the same process (an export, a test) sees the same schema without conflict."""
    script = (
        "import glob, sys\n"
        "from reluverify.onnx_import import load_onnx\n"
        "from reluverify import onnx_proto\n"
        f"path = sorted(glob.glob({os.path.join(ROOT, 'networks', '**', '*.onnx')!r}, recursive=True))[0]\n"
        "net = load_onnx(path)\n"
        "print('onnx' in sys.modules)\n"
        "model = onnx_proto.parse_model(open(path, 'rb').read())\n"
        "import onnx\n"
        "from onnx import numpy_helper\n"
        "onnx.checker.check_model(model)\n"
        "print(onnx.load(path) == model, numpy_helper.to_array(model.graph.initializer[0]).size > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "True", "True"]
