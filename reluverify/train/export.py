"""ONNX export of the trained models, checked against torch before it is trusted.

The graphs are written node by node with ``onnx.helper`` from the models' weights
rather than traced by ``torch.onnx.export``: torch's TorchScript exporter is
deprecated and its replacement needs ``onnxscript``; writing the graph directly
fixes the operator set to the few that reluverify's importer and every runtime
know (Gemm, Relu, MatMul, Add, Sub, Mul, Sigmoid, Split, Gather), keeps the file
free of tool versions (the same weights give the same bytes), and computes
exactly the ops the verifier will reason about. Opset 13, float32, batch 1.

* ReLU MLP: ``Gemm -> Relu -> ... -> Gemm``; the output layer carries the folded
  logit batch norm and, for cost outputs, the sign.
* SRU classifier, unrolled over its fixed number of steps: one ``MatMul`` gives the
  input projections of all steps (``U = X W^T + b``), ``Split`` separates
  ``W x, W_f x, W_r x (, W_h x)``, ``Gather`` picks step ``t``; then
  ``f_t = Sigmoid(F_t + v_f * c)``, ``c = X_t + f_t * (c - X_t)``. Only the last step's
  highway gate is emitted, because only ``h_T`` reaches the output, so the graph has
  ``steps + 1`` sigmoid layers and ``steps + 1`` products of two tensors.

:func:`check_export` runs the file through onnxruntime and through
:func:`reluverify.onnx_import.load_onnx` on random inputs of the task's domain and
raises :class:`ExportMismatch` if either differs from torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from reluverify.version import __version__

OPSET = 13
IR_VERSION = 8
INPUT_NAME = "input"
OUTPUT_NAME = "output"


class ExportMismatch(RuntimeError):
    """The exported file does not compute what the torch model computes."""


@dataclass(frozen=True)
class ExportCheck:
    """Largest differences from torch's output on ``samples`` random inputs, relative to max(1, |output|)."""

    samples: int
    onnxruntime: float
    reluverify: float

    def describe(self) -> dict:
        return {"samples": self.samples, "max_relative_difference_onnxruntime": self.onnxruntime,
                "max_relative_difference_reluverify": self.reluverify}


class _Graph:
    """Accumulates nodes and float32 initialisers with readable, unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initialisers: list[onnx.TensorProto] = []

    def constant(self, name: str, array, dtype=np.float32) -> str:
        self.initialisers.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def model(self, input_shape, output_shape, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            "reluverify_trained",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(input_shape))],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, list(output_shape))],
            self.initialisers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="reluverify.train",
            producer_version=__version__,
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model


def _gemm_chain(graph: _Graph, current: str, layers) -> str:
    for i, (w, b) in enumerate(layers):
        graph.constant(f"layer{i}.weight", w.numpy())
        graph.constant(f"layer{i}.bias", b.numpy())
        out = OUTPUT_NAME if i == len(layers) - 1 else f"layer{i}.affine"
        current = graph.op("Gemm", [current, f"layer{i}.weight", f"layer{i}.bias"], out, transB=1)
        if i < len(layers) - 1:
            current = graph.op("Relu", [current], f"layer{i}.relu")
    return current


def mlp_graph(model, doc: str) -> onnx.ModelProto:
    graph = _Graph()
    layers = model.affine_layers()
    _gemm_chain(graph, INPUT_NAME, layers)
    return graph.model(model.input_shape, (1, layers[-1][0].shape[0]), doc)


def sru_graph(model, doc: str) -> onnx.ModelProto:
    sru = model.sru
    n, k, steps = sru.hidden_size, sru.matrices, model.steps
    weight = sru.weight.detach().double()
    v = sru.v.detach().double().numpy()
    bias = sru.bias.detach().double().numpy()
    graph = _Graph()
    # U = X W^T + [0, b_f, b_r (, 0)]: every step's projections in one product
    stacked_bias = np.zeros(k * n)
    stacked_bias[n : 3 * n] = bias.reshape(-1)
    graph.constant("sru.weight_t", weight.T.numpy())
    graph.constant("sru.input_bias", stacked_bias)
    u = graph.op("MatMul", [INPUT_NAME, "sru.weight_t"], "sru.u")
    u = graph.op("Add", [u, "sru.input_bias"], "sru.u_biased")
    graph.constant("sru.split", [n] * k, dtype=np.int64)
    names = ["sru.x_tilde", "sru.f_pre", "sru.r_pre", "sru.highway_proj"][:k]
    graph.nodes.append(helper.make_node("Split", [u, "sru.split"], names, name="sru.split", axis=2))
    graph.constant("sru.v_f", v[0])
    graph.constant("sru.v_r", v[1])
    graph.constant("sru.c0", np.zeros((1, n)))
    c = "sru.c0"

    step_index: dict[int, str] = {}

    def step_slice(tensor: str, t: int) -> str:
        if t not in step_index:
            step_index[t] = graph.constant(f"sru.t{t}", np.array(t), dtype=np.int64)
        return graph.op("Gather", [tensor, step_index[t]], f"{tensor}.t{t}", axis=1)

    last = steps - 1
    for t in range(steps):
        if t == last:  # the highway gate of the last step reads c_{T-1}
            r_scaled = graph.op("Mul", [c, "sru.v_r"], f"sru.vr_c.t{t}")
            r = graph.op("Sigmoid", [graph.op("Add", [step_slice("sru.r_pre", t), r_scaled], f"sru.r_in.t{t}")], f"sru.r.t{t}")
        x_t = step_slice("sru.x_tilde", t)
        f_in = graph.op("Add", [step_slice("sru.f_pre", t), graph.op("Mul", [c, "sru.v_f"], f"sru.vf_c.t{t}")], f"sru.f_in.t{t}")
        f = graph.op("Sigmoid", [f_in], f"sru.f.t{t}")
        gap = graph.op("Sub", [c, x_t], f"sru.c_minus_x.t{t}")
        c = graph.op("Add", [x_t, graph.op("Mul", [f, gap], f"sru.f_gap.t{t}")], f"sru.c.t{t}")
    # h_T = H_T + r_T * (c_T - H_T), H_T = alpha x_T or alpha W_h x_T
    source = "sru.highway_proj" if sru.projected_highway else INPUT_NAME
    graph.constant("sru.alpha", np.array(sru.alpha))
    highway = graph.op("Mul", [step_slice(source, last), "sru.alpha"], "sru.highway.last")
    gap = graph.op("Sub", [c, highway], "sru.c_minus_highway.last")
    h = graph.op("Add", [highway, graph.op("Mul", [r, gap], "sru.r_gap.last")], "sru.h.last")
    w, b = model.head.exported_affine()
    graph.constant("head.weight", w.numpy())
    graph.constant("head.bias", b.numpy())
    graph.op("Gemm", [h, "head.weight", "head.bias"], OUTPUT_NAME, transB=1)
    return graph.model(model.input_shape, (1, w.shape[0]), doc)


def export_onnx(model, path: str | os.PathLike, doc: str = "") -> str:
    """Write ``model`` (eval mode) as ONNX to ``path``; return the path."""
    from reluverify.train.models import ReluMLP, SRUClassifier

    model.eval()
    if isinstance(model, ReluMLP):
        proto = mlp_graph(model, doc)
    elif isinstance(model, SRUClassifier):
        proto = sru_graph(model, doc)
    else:
        raise TypeError(f"no ONNX export for {type(model).__name__}")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(proto.SerializeToString())
    return path


def check_export(
    model, path: str | os.PathLike, domain: tuple[np.ndarray, np.ndarray], samples: int = 64, seed: int = 0,
    tolerance: float = 1e-4,
) -> ExportCheck:
    """Compare torch, onnxruntime and reluverify's importer on ``samples`` inputs uniform in ``domain``."""
    from reluverify.onnx_import import load_onnx
    from reluverify.onnx_runtime import ReferenceModel

    path = os.fspath(path)
    lower, upper = (np.asarray(b, dtype=np.float64) for b in domain)
    x = lower + (upper - lower) * np.random.default_rng(seed).random((samples, lower.size))
    x = x.astype(np.float32).astype(np.float64)  # the same inputs for float32 and float64 evaluations
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x).float()).double().numpy()
    scale = np.maximum(1.0, np.abs(expected))
    runtime = float(np.max(np.abs(ReferenceModel(path)(x) - expected) / scale))
    ours = float(np.max(np.abs(load_onnx(path).evaluate(x) - expected) / scale))
    check = ExportCheck(samples, runtime, ours)
    if not (runtime <= tolerance and ours <= tolerance):
        raise ExportMismatch(
            f"{path}: the export differs from torch (onnxruntime {runtime:.2e}, reluverify {ours:.2e}, tolerance {tolerance:.0e})"
        )
    return check
