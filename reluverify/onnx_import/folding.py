"""Constant folding: the part of an ONNX graph that does not depend on the network input, evaluated once.

Shapes are static (a free dimension is 1, as the tracer reads the input), so the output of ``Shape``
or ``Size`` is a constant whatever tensor it reads. A node is *constant* when it is in the default
domain, is not a random generator, and each of its inputs is an initializer, an omitted input or the
output of a constant node -- or it is a ``Shape`` / ``Size``. Exported graphs compute their shape and
index arithmetic this way (``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``, ``ConstantOfShape``,
``Range``, ``Equal``, ``Where``, ``Expand``, ``OneHot``, ``Cast`` ...): none of it is part of the
function the verifier reasons about.

:func:`fold` finds the constant nodes and evaluates, in one onnxruntime run of a sub-model of the
graph, the constant tensors that the rest of the graph reads (the *frontier*). The sub-model keeps the
nodes those tensors need (through a ``Shape`` that can include input-dependent nodes, which then run
on a zero input of the static shape) and the graph's inputs. The tracer takes the frontier tensors as
initializers and skips the constant nodes. A graph whose only constant nodes are ``Constant`` nodes is
not run (their values are in the file; importing then needs no onnxruntime). When onnxruntime cannot
evaluate the sub-model, :func:`fold` returns no folding and the tracer walks those nodes itself with
its own operators (so every error stays one line naming a node).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

SHAPE_ONLY = ("Shape", "Size")
"""Operators whose output depends only on the (static) shape of their input."""
RANDOM = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli", "Multinomial")
"""Operators that are never folded: a sample is not a constant."""


@dataclass(frozen=True)
class Folding:
    """The result of :func:`fold`: the constant nodes' positions and the frontier tensors by name."""

    skipped: frozenset[int] = frozenset()
    values: dict[str, np.ndarray] = field(default_factory=dict)


def constant_nodes(graph, known: set[str]) -> set[int]:
    """Positions of the nodes of ``graph`` that do not depend on the input values; ``known`` names the
    initializers."""
    constant_names = set(known) | {""}
    constant = set()
    for position, node in enumerate(graph.node):
        if node.domain not in ("", "ai.onnx") or node.op_type in RANDOM:
            continue
        if node.op_type in SHAPE_ONLY or all(name in constant_names for name in node.input):
            constant.add(position)
            constant_names.update(node.output)
    return constant


def fold(model, initialisers: dict[str, np.ndarray], input_shapes: dict[str, tuple[int, ...]], path: str) -> Folding:
    """The constant nodes of ``model`` and the frontier tensors they make (see the module docstring).

    ``input_shapes`` gives the static shape of each graph input that is not an initializer;
    ``path`` is the file (its folder holds any external data).
    """
    graph = model.graph
    constant = constant_nodes(graph, set(initialisers))
    if all(graph.node[p].op_type == "Constant" for p in constant):
        return Folding()
    made = {name: p for p in constant for name in graph.node[p].output if name}
    frontier = [name for name in _read_elsewhere(graph, constant) if name in made]
    if not frontier:
        return Folding(frozenset(constant), {})
    values = _evaluate(model, frontier, input_shapes, path)
    if values is None:
        return Folding()
    return Folding(frozenset(constant), values)


def _read_elsewhere(graph, constant: set[int]) -> list[str]:
    """Tensor names read by a node that is not constant, or that are graph outputs, in order of first use."""
    names: dict[str, None] = {}
    for position, node in enumerate(graph.node):
        if position not in constant:
            names.update((name, None) for name in node.input if name)
    names.update((output.name, None) for output in graph.output)
    return list(names)


def _needed(graph, targets: list[str]) -> list[int]:
    """Positions of the nodes that the tensors ``targets`` are computed from, in graph order."""
    producer = {name: p for p, node in enumerate(graph.node) for name in node.output if name}
    wanted, stack = set(), [producer[t] for t in targets if t in producer]
    while stack:
        p = stack.pop()
        if p in wanted:
            continue
        wanted.add(p)
        stack.extend(producer[name] for name in graph.node[p].input if name in producer)
    return sorted(wanted)


def _sub_model(model, frontier: list[str], real_inputs):
    """The model reduced to the nodes that ``frontier`` needs, with ``frontier`` as its outputs (and as
    graph inputs only ``real_inputs`` and the initializers it keeps)."""
    graph = model.graph
    keep = _needed(graph, frontier)
    sub = type(model)()
    sub.CopyFrom(model)
    nodes = [graph.node[p] for p in keep]
    read = {name for node in nodes for name in node.input}
    nested = any(a.HasField("g") or len(a.graphs) for node in nodes for a in node.attribute)
    del sub.graph.node[:]
    sub.graph.node.extend(nodes)
    if not nested:  # a subgraph may read any outer initializer: keep them all then
        kept = [init for init in graph.initializer if init.name in read]
        del sub.graph.initializer[:]
        sub.graph.initializer.extend(kept)
        names = set(real_inputs) | {init.name for init in kept}
        declared = [i for i in graph.input if i.name in names]  # an older file lists initializers as inputs too
        del sub.graph.input[:]
        sub.graph.input.extend(declared)
    del sub.graph.output[:]
    for name in frontier:
        sub.graph.output.add().name = name
    return sub


_FEED_TYPES = {1: np.float32, 10: np.float16, 11: np.float64, 6: np.int32, 7: np.int64, 9: np.bool_}


def _evaluate(model, frontier: list[str], input_shapes: dict, path: str) -> dict[str, np.ndarray] | None:
    """The frontier tensors, from one onnxruntime run on zero inputs; None when onnxruntime fails."""
    import onnxruntime as ort

    sub = _sub_model(model, frontier, input_shapes)
    feeds = {}
    for graph_input in sub.graph.input:
        if graph_input.name in input_shapes:
            dtype = _FEED_TYPES.get(graph_input.type.tensor_type.elem_type)
            if dtype is None:
                return None
            feeds[graph_input.name] = np.zeros(input_shapes[graph_input.name], dtype=dtype)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4
    folder = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", folder)
    try:
        session = ort.InferenceSession(sub.SerializeToString(), sess_options=options,
                                       providers=["CPUExecutionProvider"])
        declared = {i.name for i in session.get_inputs()}
        outputs = session.run(frontier, {k: v for k, v in feeds.items() if k in declared})
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - onnxruntime raises its own types; the tracer then walks the nodes
        return None
    return {name: np.asarray(value) for name, value in zip(frontier, outputs)}

