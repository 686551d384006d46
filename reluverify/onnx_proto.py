"""The ONNX file format, read without the start-up cost of the ``onnx`` package.

``import onnx`` costs about 0.15 s of every process (its helpers pull in asyncio, email, json_format,
ml_dtypes and importlib.metadata), more than parsing and bounding an ACAS Xu network. A verifier run
once per instance pays that again and again; all it needs is onnx's protobuf schema. So the schema
module that onnx generated (``onnx/onnx_ml_pb2.py``) is loaded on its own, without the package's
``__init__``, and the few helpers the importer uses are here:

* :func:`parse_model` -- bytes to ``ModelProto``;
* :func:`to_array` -- a ``TensorProto`` to a numpy array, exactly as ``onnx.numpy_helper.to_array``;
* :func:`attribute_value` -- an ``AttributeProto``'s value, exactly as ``onnx.helper.get_attribute_value``;
* :func:`numpy_dtype` -- an ONNX element type to its numpy dtype.

Invariant: each returns what the onnx helper it stands for returns. The fast paths cover the common
cases (the numeric element types in ``raw_data`` or their typed fields, the plain attribute kinds);
anything else -- external data, segments, strings, 4- and 8-bit floats, graphs -- is handed to the onnx
package itself, imported then. The schema module is the one onnx ships, so the message classes are
onnx's own: with protobuf's upb backend they are the very classes ``import onnx`` gives later. With
another backend the package is imported at once (the schema would then be registered twice).
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np

# element type -> (numpy dtype, the typed field that holds it when there is no raw_data); the values
# are those of TensorProto.DataType, fixed by the ONNX standard
_FAST_TYPES = {
    1: (np.float32, "float_data"),   # FLOAT
    6: (np.int32, "int32_data"),     # INT32
    7: (np.int64, "int64_data"),     # INT64
    11: (np.float64, "double_data"),  # DOUBLE
}
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

_schema = None


def schema():
    """onnx's generated protobuf module (``ModelProto``, ``TensorProto``, ``AttributeProto`` ...)."""
    global _schema
    if _schema is None:
        _schema = _load_schema()
    return _schema


def _load_schema():
    if "onnx" in sys.modules:  # already paid for
        return sys.modules["onnx"]
    try:
        from google.protobuf.internal import api_implementation

        spec = importlib.util.find_spec("onnx")
        path = os.path.join(os.path.dirname(spec.origin), "onnx_ml_pb2.py") if spec and spec.origin else ""
        if api_implementation.Type() == "upb" and os.path.isfile(path):
            module_spec = importlib.util.spec_from_file_location("reluverify._onnx_ml_pb2", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
    except Exception:  # noqa: BLE001 - any surprise in the layout: the package itself below
        pass
    import onnx

    return onnx


def parse_model(data: bytes):
    """The ``ModelProto`` serialised in ``data`` (protobuf's exceptions on broken bytes)."""
    model = schema().ModelProto()
    model.ParseFromString(data)
    return model


def to_array(tensor, base_dir: str = "") -> np.ndarray:
    """``onnx.numpy_helper.to_array(tensor, base_dir)``: the tensor's values, shaped by its dims."""
    fast = _FAST_TYPES.get(tensor.data_type)
    if fast is None or tensor.data_location == _EXTERNAL or tensor.HasField("segment"):
        from onnx import numpy_helper

        return numpy_helper.to_array(tensor, base_dir=base_dir)
    dtype, field = fast
    dims = tuple(tensor.dims)
    if tensor.HasField("raw_data"):
        # stored little-endian by the standard; frombuffer of a little-endian dtype reads it on any machine
        array = np.frombuffer(tensor.raw_data, dtype=np.dtype(dtype).newbyteorder("<"))
        return array.astype(dtype, copy=False).reshape(dims)
    return np.asarray(getattr(tensor, field), dtype=dtype).reshape(dims)


def attribute_value(attribute):
    """``onnx.helper.get_attribute_value(attribute)``."""
    kinds = schema().AttributeProto
    kind = attribute.type
    if attribute.ref_attr_name:
        raise ValueError(f"cannot take the value of the reference attribute {attribute.name!r}")
    if kind == kinds.FLOAT:
        return attribute.f
    if kind == kinds.INT:
        return attribute.i
    if kind == kinds.STRING:
        return attribute.s
    if kind == kinds.TENSOR:
        return attribute.t
    if kind == kinds.FLOATS:
        return list(attribute.floats)
    if kind == kinds.INTS:
        return list(attribute.ints)
    if kind == kinds.STRINGS:
        return list(attribute.strings)
    from onnx import helper

    return helper.get_attribute_value(attribute)


def numpy_dtype(element_type: int) -> np.dtype:
    """``onnx.helper.tensor_dtype_to_np_dtype(element_type)`` (KeyError for an unknown type)."""
    fast = _FAST_TYPES.get(element_type)
    if fast is not None:
        return np.dtype(fast[0])
    from onnx import helper

    return helper.tensor_dtype_to_np_dtype(element_type)
