"""Reference evaluation with onnxruntime: the ground truth every ``sat`` is checked against.

:class:`ReferenceModel` runs the original ONNX file (not reluverify's IR) on flat
input vectors and returns flat output vectors, so a counterexample is confirmed by a
program that shares no code with the solver. Flat as the IR's network is: a file with several
input tensors takes their values laid end to end in graph order (each in C order, with its own
shape and element type from the session), and several output tensors come back laid end to end
in graph order, as VNN-LIB numbers ``X_i`` and ``Y_j``. For a network imported without its final
Softmax or LogSoftmax (:attr:`~reluverify.network.Network.final_softmax`) it reads the
tensor that operator reads, the logits, from the same file (``ReferenceModel(path,
output=name)``), so the solver's outputs and onnxruntime's are the same quantity.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from reluverify.errors import NetworkError
from reluverify.memory import is_allocation_failure, out_of_memory


class ReferenceModel:
    """An onnxruntime session over one ONNX file, taking and returning flat vectors."""

    def __init__(self, path: str, model_bytes: bytes | None = None, output: str | None = None) -> None:
        """onnxruntime on the file ``path`` (or on ``model_bytes``); ``output`` names another tensor of the
        graph to read instead of its output (the logits that a final Softmax reads)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 4
        if output is not None:
            model_bytes = _reading(path, model_bytes, output)
            # external data lies beside the file; a model given as bytes has no folder of its own
            options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                             os.path.dirname(os.path.abspath(path)))
        self.path = path
        self.run_options = ort.RunOptions()
        self.run_options.log_severity_level = 4
        try:
            self.session = ort.InferenceSession(
                model_bytes if model_bytes is not None else path, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if is_allocation_failure(first):
                raise out_of_memory("onnxruntime could not load the network") from None
            raise NetworkError(f"{path}: onnxruntime cannot load the network: {first}") from None
        order: dict[str, int] = {}
        try:
            from reluverify import onnx_proto

            if model_bytes is None:
                with open(path, "rb") as handle:
                    model_bytes = handle.read()
            proto = onnx_proto.parse_model(model_bytes)  # (external data is never read here)
            initialisers = {i.name for i in proto.graph.initializer}
            order = {i.name: k for k, i in enumerate(proto.graph.input) if i.name not in initialisers}
        except Exception:  # noqa: BLE001
            initialisers = set()
        inputs = [i for i in self.session.get_inputs() if i.name not in initialisers]
        if not inputs:
            raise NetworkError(f"{path}: onnxruntime sees no input tensor")
        self.inputs = sorted(inputs, key=lambda i: order.get(i.name, len(order)))  # the graph's order
        self.shapes = [tuple(d if isinstance(d, int) and d > 0 else 1 for d in i.shape) for i in self.inputs]
        self.sizes = [int(np.prod(shape)) for shape in self.shapes]
        self.dtypes = [_DTYPES.get(i.type, np.float32) for i in self.inputs]
        # a batch runs at once when every input has a free leading axis; else one point per run
        self.batchable = all(bool(i.shape) and not (isinstance(i.shape[0], int) and i.shape[0] > 0)
                             for i in self.inputs)
        self.output_names = [o.name for o in self.session.get_outputs()] if output is None else [output]

    @property
    def input_size(self) -> int:
        """The length of the flat input vector: every input tensor's values, in graph order."""
        return sum(self.sizes)

    def feeds(self, x: np.ndarray, batch: int | None = None) -> dict[str, np.ndarray]:
        """The input tensors of the flat ``x``: one row of ``input_size`` values (``batch`` None), or
        ``batch`` rows fed along each input's free leading axis; each slice in C order, in graph order."""
        feeds, offset = {}, 0
        for tensor, shape, size, dtype in zip(self.inputs, self.shapes, self.sizes, self.dtypes):
            part = x[..., offset : offset + size]
            feeds[tensor.name] = (part.reshape(shape) if batch is None else
                                  part.reshape((batch,) + shape[1:])).astype(dtype)
            offset += size
        return feeds

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs (batch, m) for flat inputs (batch, n); a 1-D input gives a 1-D output.

        ``n`` is :attr:`input_size`, the input tensors' values laid end to end in graph order (each in C
        order); ``m`` is the output tensors' values laid end to end likewise, as the IR's network is.
        """
        x = np.asarray(inputs, dtype=np.float64)
        single = x.ndim == 1
        x = np.atleast_2d(x)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{self.path}: expected {self.input_size} input values, got {x.shape[-1]}")
        outs = []
        if self.batchable and x.shape[0] > 1:
            ys = self.run(self.feeds(x, x.shape[0]))
            outs = [np.concatenate([np.asarray(y, dtype=np.float64).reshape(x.shape[0], -1) for y in ys], axis=1)]
        else:
            for row in x:
                ys = self.run(self.feeds(row))
                outs.append(np.concatenate([np.asarray(y, dtype=np.float64).reshape(1, -1) for y in ys], axis=1))
        result = np.concatenate(outs, axis=0)
        return result[0] if single else result

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One session run on the input tensors ``feeds`` (by name), giving every output tensor in order;
        an onnxruntime failure (a model it loads but cannot evaluate) is a NetworkError."""
        try:
            return self.session.run(self.output_names, feeds, self.run_options)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            first = (str(exc).splitlines() or [""])[0][:300] or type(exc).__name__
            if is_allocation_failure(first):
                raise out_of_memory("onnxruntime could not evaluate the network") from None
            raise NetworkError(f"{self.path}: onnxruntime cannot evaluate the network: {first}") from None


_DTYPES = {"tensor(double)": np.float64, "tensor(float)": np.float32, "tensor(float16)": np.float16}
"""The numpy type of an input tensor's onnxruntime type (float32 for any other)."""


def _reading(path: str, model_bytes: bytes | None, output: str) -> bytes:
    """The model with ``output`` (a tensor of its graph) as its one graph output."""
    from reluverify import onnx_proto

    if model_bytes is None:
        with open(path, "rb") as handle:
            model_bytes = handle.read()
    model = onnx_proto.parse_model(model_bytes)
    del model.graph.output[:]
    model.graph.output.add().name = output
    return model.SerializeToString()


@functools.lru_cache(maxsize=64)
def _cached(path: str, mtime: float, output: str | None) -> ReferenceModel:
    return ReferenceModel(path, output=output)


def reference_model(path: str, output: str | None = None) -> ReferenceModel:
    """A cached :class:`ReferenceModel` for ``path`` (reloaded when the file changes); ``output`` as there."""
    return _cached(os.path.abspath(path), os.path.getmtime(path), output)


_EXPORTED: dict[int, tuple[object, ReferenceModel]] = {}


def reference_for(network) -> ReferenceModel:
    """onnxruntime on the network's own file (its logits when a final Softmax was dropped), or on an
    ONNX export of an in-memory network."""
    if network.source_path and os.path.exists(network.source_path):
        return reference_model(network.source_path, network.output_name if network.final_softmax else None)
    key = id(network)
    hit = _EXPORTED.get(key)
    if hit is not None and hit[0] is network:
        return hit[1]
    from reluverify.onnx_export import network_to_onnx

    model = ReferenceModel("<in-memory network>", network_to_onnx(network).SerializeToString())
    if len(_EXPORTED) > 256:
        _EXPORTED.clear()
    _EXPORTED[key] = (network, model)
    return model
