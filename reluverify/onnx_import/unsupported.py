"""Every unsupported operator of a graph, named in one error line.

The tracer refuses a node that no operator of :mod:`~reluverify.onnx_import.registry` traces; found
node by node, that would name only the first. When a node fails so, :func:`check_supported` looks at
it and every later node of the graph (the earlier ones were traced) and raises one
:class:`~reluverify.errors.NetworkError` line that names them all: each operator type
(``domain.type`` outside the ONNX domain), how many nodes have it and the first :data:`NAMES_SHOWN`
of their names, the types in the order the graph first uses them. A single unsupported node keeps
the tracer's own words (``node 'x' (Hardmax): unsupported operator 'Hardmax'``).
"""

from __future__ import annotations

from typing import Callable, Collection

from reluverify.errors import NetworkError
from reluverify.onnx_import.registry import OPERATORS

ONNX_DOMAINS = ("", "ai.onnx")
NAMES_SHOWN = 3
"""Node names listed per unsupported operator type; the rest are counted."""


def _label(node) -> str:
    return node.op_type if node.domain in ONNX_DOMAINS else f"{node.domain}.{node.op_type}"


def unsupported_nodes(nodes, skip: Collection[int] = (), start: int = 0) -> list[tuple[int, object]]:
    """``(position, node)`` of every node from position ``start`` on that no registered operator traces
    (the positions in ``skip`` left out: a final Softmax, nodes constant folding evaluated)."""
    return [(position, node) for position, node in enumerate(nodes) if position >= start and position not in skip
            and (node.domain not in ONNX_DOMAINS or node.op_type not in OPERATORS)]


def _node_name(position: int, node) -> str:
    name = node.name if len(node.name) <= 40 else node.name[:37] + "..."
    return repr(name) if node.name else f"#{position}"


def describe(found: list[tuple[int, object]]) -> str:
    """The words of the error for the unsupported ``found`` nodes (two or more)."""
    by_type: dict[str, list[tuple[int, object]]] = {}
    for position, node in found:
        by_type.setdefault(_label(node), []).append((position, node))
    parts = []
    for label, members in by_type.items():
        names = ", ".join(_node_name(p, n) for p, n in members[:NAMES_SHOWN])
        more = f" and {len(members) - NAMES_SHOWN} more" if len(members) > NAMES_SHOWN else ""
        plural = "s" if len(members) > 1 else ""
        parts.append(f"{label!r} x{len(members)} (node{plural} {names}{more})")
    kinds = "operator" if len(by_type) == 1 else "operators"
    return f"{len(by_type)} unsupported {kinds} in {len(found)} nodes: " + ", ".join(parts)


def check_supported(nodes, where: Callable[[object, int], str], skip: Collection[int] = (), start: int = 0) -> None:
    """When the node at position ``start`` of ``nodes`` is unsupported, raise one NetworkError line naming
    it and every later unsupported node (see the module docstring); else return. ``where(node, position)``
    names a single node, ``skip`` holds the positions the caller handles itself."""
    found = unsupported_nodes(nodes, skip, start)
    if not found or found[0][0] != start:
        return
    if len(found) > 1:
        raise NetworkError(describe(found))
    position, node = found[0]
    if node.domain not in ONNX_DOMAINS:
        raise NetworkError(f"{where(node, position)}: operator domain {node.domain!r} is not supported")
    raise NetworkError(f"{where(node, position)}: unsupported operator {node.op_type!r}")
