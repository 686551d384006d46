"""The operator registry: each ONNX operator registered once, with the attributes it accepts.

An operator is a function ``(tracer, inputs, attrs, where) -> list of output values``:
``inputs`` are the traced values of the node's inputs (None for an omitted optional
input), ``attrs`` its attributes by name (plus ``_outputs``, the number of outputs the node
declares), ``where`` names the node for error messages. It is registered in the module of
its family with :func:`operator`, which names the ONNX operator type and every attribute
the function understands; any other attribute (an unknown one, or one that would change
the operator's meaning, such as the legacy broadcast ``axis`` of Add) is refused by name
before the function runs, as is an operator type that no module registers.

The helpers :func:`need` and :func:`const` read inputs with the one-line errors the
operators share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from reluverify.errors import NetworkError
from reluverify.onnx_import.values import Value, traced

LEGACY = ("consumed_inputs",)
"""An attribute of opset versions before 6 that no longer changes the result; accepted where ONNX had it."""


@dataclass(frozen=True)
class Operator:
    """A registered ONNX operator: its type, the function tracing it, the attributes it accepts."""

    name: str
    function: Callable
    attributes: tuple[str, ...]


OPERATORS: dict[str, Operator] = {}
"""Every registered operator by ONNX type (filled as the family modules are imported)."""


def operator(name: str, attributes: Iterable[str] = ()) -> Callable[[Callable], Callable]:
    """Decorator: register the function as the ONNX operator ``name`` accepting ``attributes``."""
    accepted = tuple(attributes)
    if isinstance(attributes, str) or not all(isinstance(a, str) for a in accepted):
        raise TypeError(f"operator {name!r}: attributes must be a sequence of names")

    def register(function: Callable) -> Callable:
        if name in OPERATORS:
            raise ValueError(f"operator {name!r} is registered twice "
                             f"({OPERATORS[name].function.__module__}.{OPERATORS[name].function.__qualname__} "
                             f"and {function.__module__}.{function.__qualname__})")
        OPERATORS[name] = Operator(name, function, accepted)
        return function

    return register


def lookup(op_type: str, attribute_names: Iterable[str], where: str) -> Operator:
    """The operator for a node of type ``op_type`` with these attributes; NetworkError if unsupported."""
    entry = OPERATORS.get(op_type)
    if entry is None:
        raise NetworkError(f"{where}: unsupported operator {op_type!r}")
    for attribute in attribute_names:
        if attribute not in entry.attributes:
            raise NetworkError(f"{where}: attribute {attribute!r} is not supported")
    return entry


def need(inputs: list, i: int, where: str) -> Value:
    """Input ``i``, which must be present."""
    if i >= len(inputs) or inputs[i] is None:
        raise NetworkError(f"{where}: expected at least {i + 1} inputs")
    return inputs[i]


def const(value: Value | None, where: str, what: str):
    """A constant input (``what`` names it in the error when it is missing or depends on the input)."""
    if value is None:
        raise NetworkError(f"{where}: {what} is missing")
    if traced(value):
        raise NetworkError(f"{where}: {what} must be a constant, but it depends on the network input")
    return value
