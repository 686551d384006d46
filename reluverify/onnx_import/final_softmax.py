"""The final-Softmax rule: a classifier's last Softmax or LogSoftmax, dropped when the caller allows it.

Most classifiers are exported with a Softmax or LogSoftmax as their last operator. Over the class
axis both keep the order of one input's scores: ``softmax(z)_i > softmax(z)_j`` exactly when
``z_i > z_j`` (one denominator), and ``logsoftmax(z)_i - logsoftmax(z)_j = z_i - z_j``. So the label
(the top or the lowest score), and with it delta-local robustness (Def. 1), is the same on the
logits, the tensor the operator reads; score differences (Def. 2, Def. 3) and VNN-LIB constraints on
the outputs are not.

:func:`candidate` finds the node this rule is about: the one that produces the graph's output, of
type Softmax or LogSoftmax in the default domain, whose output no other node reads. The tracer walks
every other node, then :func:`logits` checks the candidate -- no attribute but ``axis``, over the class
axis of a traced ``(batch, classes)`` or ``(classes,)`` tensor -- and returns the name of its input,
which becomes the network's output (:attr:`~reluverify.network.Network.final_softmax` records the
operator; the properties that read score differences refuse such a network with
:func:`~reluverify.network.softmax_refusal`). Without the caller's leave
(``load_onnx(path, drop_final_softmax=True)``, which VNN-LIB queries do not give: their outputs are the
file's), or over another axis, the operator is kept and traced like any Softmax (:mod:`.softmax`).
"""

from __future__ import annotations

from reluverify import onnx_proto
from reluverify.errors import NetworkError
from reluverify.network import FINAL_SOFTMAX
from reluverify.onnx_import.values import shape_of, traced


def candidate(graph) -> int | None:
    """The position in ``graph.node`` of a Softmax or LogSoftmax that makes the graph's output and
    feeds no other node, or None."""
    if len(graph.output) != 1:
        return None
    output = graph.output[0].name
    for position, node in enumerate(graph.node):
        if output in node.output:
            if node.op_type not in FINAL_SOFTMAX or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
                return None
            read = any(output in other.input for other in graph.node)
            return None if read or len(node.input) != 1 else position
    return None


def logits(tracer, node, where: str, allowed: bool) -> str | None:
    """The name of the input of the final ``node`` when it is dropped (see the module docstring), or
    None when it is kept: dropping is not ``allowed``, or it is not over the class axis of a
    ``(batch, classes)`` or ``(classes,)`` tensor. A kept one is traced as any Softmax (:mod:`.softmax`).
    """
    if not allowed:
        return None
    for attribute in node.attribute:
        if attribute.name != "axis":
            raise NetworkError(f"{where}: attribute {attribute.name!r} is not supported")
    name = node.input[0]
    if name not in tracer.values:
        raise NetworkError(f"{where}: input {name!r} is not produced by any node, initializer or graph input")
    value = tracer.values[name]
    shape = shape_of(value) if traced(value) else None
    axis = next((onnx_proto.attribute_value(a) for a in node.attribute if a.name == "axis"),
                -1 if tracer.opset >= 13 else 1)
    if shape is None or len(shape) not in (1, 2) or int(axis) not in (len(shape) - 1, -1):
        return None
    return name
