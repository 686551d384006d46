"""Reference evaluation with onnxruntime: the ground truth every ``sat`` is checked against.

:class:`ReferenceModel` runs the original ONNX file (not reluverify's IR) on flat
input vectors and returns flat output vectors, so a counterexample is confirmed by a
program that shares no code with the solver. For a network imported without its final
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
        initialisers = set()
        try:
            from reluverify import onnx_proto

            if model_bytes is None:
                with open(path, "rb") as handle:
                    model_bytes = handle.read()
            proto = onnx_proto.parse_model(model_bytes)  # (external data is never read here)
            initialisers = {i.name for i in proto.graph.initializer}
        except Exception:  # noqa: BLE001
            pass
        inputs = [i for i in self.session.get_inputs() if i.name not in initialisers]
        if len(inputs) != 1:
            raise NetworkError(f"{path}: expected one input tensor, onnxruntime sees {len(inputs)}")
        self.input = inputs[0]
        self.shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in self.input.shape)
        self.batchable = not (isinstance(self.input.shape[0], int) and self.input.shape[0] > 0) if self.input.shape else False
        self.dtype = np.float64 if "double" in self.input.type else np.float32
        self.output_name = self.session.get_outputs()[0].name if output is None else output

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs (batch, m) for flat inputs (batch, n); a 1-D input gives a 1-D output."""
        x = np.asarray(inputs, dtype=np.float64)
        single = x.ndim == 1
        x = np.atleast_2d(x)
        outs = []
        if self.batchable and x.shape[0] > 1:
            feed = x.reshape((x.shape[0],) + self.shape[1:]).astype(self.dtype)
            y = self.run(feed)
            outs = [np.asarray(y, dtype=np.float64).reshape(x.shape[0], -1)]
        else:
            for row in x:
                feed = row.reshape(self.shape).astype(self.dtype)
                y = self.run(feed)
                outs.append(np.asarray(y, dtype=np.float64).reshape(1, -1))
        result = np.concatenate(outs, axis=0)
        return result[0] if single else result

    def run(self, feed: np.ndarray) -> np.ndarray:
        """One session run; an onnxruntime failure (a model it loads but cannot evaluate) is a NetworkError."""
        try:
            return self.session.run([self.output_name], {self.input.name: feed}, self.run_options)[0]
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            first = (str(exc).splitlines() or [""])[0][:300] or type(exc).__name__
            if is_allocation_failure(first):
                raise out_of_memory("onnxruntime could not evaluate the network") from None
            raise NetworkError(f"{self.path}: onnxruntime cannot evaluate the network: {first}") from None


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
