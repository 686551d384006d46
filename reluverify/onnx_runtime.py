"""Reference evaluation with onnxruntime: the ground truth every ``sat`` is checked against.

:class:`ReferenceModel` runs the original ONNX file (not reluverify's IR) on flat
input vectors and returns flat output vectors, so a counterexample is confirmed by a
program that shares no code with the solver.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from reluverify.errors import NetworkError
from reluverify.memory import is_allocation_failure, out_of_memory


class ReferenceModel:
    """An onnxruntime session over one ONNX file, taking and returning flat vectors."""

    def __init__(self, path: str, model_bytes: bytes | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 4
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
        self.output_name = self.session.get_outputs()[0].name

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


@functools.lru_cache(maxsize=64)
def _cached(path: str, mtime: float) -> ReferenceModel:
    return ReferenceModel(path)


def reference_model(path: str) -> ReferenceModel:
    """A cached :class:`ReferenceModel` for ``path`` (reloaded when the file changes)."""
    return _cached(os.path.abspath(path), os.path.getmtime(path))


_EXPORTED: dict[int, tuple[object, ReferenceModel]] = {}


def reference_for(network) -> ReferenceModel:
    """onnxruntime on the network's own file, or on an ONNX export of an in-memory network."""
    if network.source_path and os.path.exists(network.source_path):
        return reference_model(network.source_path)
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
