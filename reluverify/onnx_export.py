"""Export the IR as an ONNX model, for networks that exist only in memory.

Used so that a counterexample on a network built in Python (tests, the API) is still
confirmed by onnxruntime; networks loaded from a file are always confirmed on that file.
Dense weights become MatMul nodes; structured operators (:mod:`reluverify.linear_ops`)
become the ONNX operators they stand for -- a convolution a Conv node between two Reshapes,
an index map a Gather (and a Mul for its scale), a sparse matrix a Gather, Mul and ScatterND
with ``reduction="add"`` (opset 16), blocks Slices, Adds and a Concat -- so the export is as
small as the operators.
"""

from __future__ import annotations

import numpy as np

from reluverify import linear_ops as lo
from reluverify.elementwise import FUNCTIONS
from reluverify.network import ActivationNode, AffineNode, InputNode, Network, ProductNode



class _Graph:
    """Nodes and initializers of the export, with fresh names."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.count = 0
        self.opset = 13

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, array: np.ndarray, stem: str, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs) -> str:
        from onnx import helper

        out = self.name(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def reshape(self, x: str, shape) -> str:
        return self.node("Reshape", [x, self.const(np.asarray(shape), "shape", np.int64)], "reshape")

    def apply(self, w, x: str) -> str:
        """The name of ``w @ x`` for a (1, in) tensor ``x``: a (1, out) tensor."""
        if isinstance(w, np.ndarray):
            return self.node("MatMul", [x, self.const(w.T, "w")], "matmul")
        out_size, in_size = lo.shape(w)
        if isinstance(w, lo.IndexMap):
            y = self.node("Gather", [x, self.const(np.maximum(w.index, 0), "index", np.int64)], "gather", axis=1)
            scale = w._effective_scale()
            return y if scale is None else self.node("Mul", [y, self.const(scale.reshape(1, -1), "scale")], "scale")
        if isinstance(w, lo.Sparse):
            self.opset = max(self.opset, 16)
            picked = self.node("Gather", [x, self.const(w.col_index, "cols", np.int64)], "gather", axis=1)
            terms = self.node("Mul", [picked, self.const(w.values.reshape(1, -1), "values")], "terms")
            indices = np.stack([np.zeros_like(w.row_index), w.row_index], axis=1)
            return self.node("ScatterND", [self.const(np.zeros((1, out_size)), "zeros"),
                                           self.const(indices, "rows", np.int64), self.reshape(terms, [-1])],
                             "scatter", reduction="add")
        if isinstance(w, lo.Conv):
            pads = list(w.pads)
            y = self.node("Conv", [self.reshape(x, (-1,) + w.in_shape), self.const(w.kernel, "kernel")], "conv",
                          strides=list(w.strides), pads=pads, dilations=list(w.dilations), group=w.groups,
                          kernel_shape=list(w.kernel.shape[2:]))
            return self.reshape(y, [-1, out_size])
        if isinstance(w, lo.ConvTranspose):
            conv, nd = w.conv, w.conv.nd
            reach = [(conv.out_shape[1 + i] - 1) * conv.strides[i] + (conv.kernel.shape[2 + i] - 1) * conv.dilations[i]
                     + 1 - conv.pads[i] - conv.pads[i + nd] for i in range(nd)]
            y = self.node("ConvTranspose", [self.reshape(x, (-1,) + conv.out_shape), self.const(conv.kernel, "kernel")],
                          "convtranspose", strides=list(conv.strides), pads=list(conv.pads),
                          dilations=list(conv.dilations), group=conv.groups, kernel_shape=list(conv.kernel.shape[2:]),
                          output_padding=[conv.in_shape[1 + i] - reach[i] for i in range(nd)])
            return self.reshape(y, [-1, out_size])
        if isinstance(w, lo.Repeat):
            inner_out, inner_in = lo.shape(w.op)
            inner = w.op if _batchable(w.op) else lo.dense(w.op)
            return self.reshape(self.apply(inner, self.reshape(x, [w.count, inner_in])), [1, out_size])
        if isinstance(w, lo.Composite):
            for op in w.ops:
                x = self.apply(op, x)
            return x
        if isinstance(w, lo.Sum):
            parts = [self.apply(t, x) for t in w.terms]
            total = parts[0]
            for p in parts[1:]:
                total = self.node("Add", [total, p], "sum")
            return total
        if isinstance(w, lo.Blocks):
            columns = {}
            for j, size in enumerate(w.col_sizes):
                start = w.col_starts[j]
                columns[j] = self.node("Slice", [x, self.const([start], "start", np.int64),
                                                 self.const([start + size], "end", np.int64),
                                                 self.const([1], "axis", np.int64)], "cols")
            rows = []
            for i, size in enumerate(w.row_sizes):
                parts = [self.apply(block, columns[j]) for (r, j), block in w.blocks.items() if r == i]
                if not parts:
                    rows.append(self.const(np.zeros((1, size)), "zeros"))
                    continue
                total = parts[0]
                for p in parts[1:]:
                    total = self.node("Add", [total, p], "sum")
                rows.append(total)
            return rows[0] if len(rows) == 1 else self.node("Concat", rows, "concat", axis=1)
        raise TypeError(f"cannot export the operator {type(w).__name__}")


def _batchable(w) -> bool:
    """True when the export of ``w`` works on a (batch, in) tensor, not only on (1, in)."""
    if isinstance(w, (np.ndarray, lo.IndexMap, lo.Conv, lo.ConvTranspose)):
        return True
    if isinstance(w, lo.Composite):
        return all(_batchable(o) for o in w.ops)
    if isinstance(w, lo.Sum):
        return all(_batchable(t) for t in w.terms)
    return False


def network_to_onnx(network: Network, opset: int = 13):
    """An ``onnx.ModelProto`` computing ``network`` on a (1, n) float32 input."""
    import onnx
    from onnx import TensorProto, helper

    g = _Graph()
    g.opset = opset
    names = []
    for index, node in enumerate(network.nodes):
        if isinstance(node, InputNode):
            names.append("input")
            continue
        if isinstance(node, AffineNode):
            acc = None
            for src, w in zip(node.sources, node.weights):
                term = g.apply(w, names[src])
                acc = term if acc is None else g.node("Add", [acc, term], "sum")
            out = g.node("Add", [acc, g.const(node.bias.reshape(1, -1), "bias")], f"n{index}")
        elif isinstance(node, ActivationNode):
            op = FUNCTIONS[node.kind].onnx_op
            if op is None:  # square: the one kind without an ONNX operator of its own
                out = g.node("Mul", [names[node.source], names[node.source]], f"n{index}")
            else:
                out = g.node(op, [names[node.source]], f"n{index}")
        else:
            assert isinstance(node, ProductNode)
            out = g.node("Mul", [names[node.left], names[node.right]], f"n{index}")
        names.append(out)
    g.nodes.append(helper.make_node("Identity", [names[-1]], ["output"]))
    graph = helper.make_graph(
        g.nodes,
        "reluverify_export",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, network.input_size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, network.output_size])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", g.opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
