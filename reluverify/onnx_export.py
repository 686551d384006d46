"""Export the IR as an ONNX model (MatMul/Add/activations), for networks that exist only in memory.

Used so that a counterexample on a network built in Python (tests, the API) is still
confirmed by onnxruntime; networks loaded from a file are always confirmed on that file.
"""

from __future__ import annotations

import numpy as np

from reluverify.network import ActivationNode, AffineNode, InputNode, Network, ProductNode

_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


def network_to_onnx(network: Network, opset: int = 13):
    """An ``onnx.ModelProto`` computing ``network`` on a (1, n) float32 input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    names = []
    for index, node in enumerate(network.nodes):
        out = f"n{index}"
        if isinstance(node, InputNode):
            names.append("input")
            continue
        if isinstance(node, AffineNode):
            inits.append(numpy_helper.from_array(node.bias.astype(np.float32).reshape(1, -1), f"bias{index}"))
            terms = []
            for k, (src, w) in enumerate(zip(node.sources, node.weights)):
                wname = f"w{index}_{k}"
                inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T).astype(np.float32), wname))
                term = f"{out}_mm{k}"
                nodes.append(helper.make_node("MatMul", [names[src], wname], [term]))
                terms.append(term)
            acc = terms[0]
            for k, term in enumerate(terms[1:], start=1):
                nxt = f"{out}_sum{k}"
                nodes.append(helper.make_node("Add", [acc, term], [nxt]))
                acc = nxt
            nodes.append(helper.make_node("Add", [acc, f"bias{index}"], [out]))
        elif isinstance(node, ActivationNode):
            nodes.append(helper.make_node(_OPS[node.kind], [names[node.source]], [out]))
        elif isinstance(node, ProductNode):
            nodes.append(helper.make_node("Mul", [names[node.left], names[node.right]], [out]))
        names.append(out)
    nodes.append(helper.make_node("Identity", [names[-1]], ["output"]))
    graph = helper.make_graph(
        nodes,
        "reluverify_export",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, network.input_size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, network.output_size])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
