"""VNN-LIB 1.0 reader: a specification file -> :class:`~reluverify.query.Query`.

VNN-LIB 1.0 is a fragment of SMT-LIB over reals: ``(declare-const X_i Real)`` for the
network inputs, ``(declare-const Y_j Real)`` for its outputs, and ``(assert F)``
where F is built from ``and``, ``or`` and the comparisons ``<=``, ``>=`` and ``=`` over
linear terms (numbers, variables, ``+``, ``-``, ``*`` by a constant, ``/`` by a
constant). The conjunction of all assertions describes the **counterexample**
(the property is violated iff it is satisfiable), exactly as a :class:`Query` does. For a network
with several input (output) tensors, ``X_i`` (``Y_j``) number their values laid end to end in graph
order, each tensor in C order: the network's flat input (output) vector (see :mod:`reluverify.network`).

The file is parsed as a real s-expression grammar; anything not understood (strict
comparisons, ``not``, non-linear terms, unknown commands, undeclared variables, numbers
beyond float64) is an error naming the file, line and what was expected -- never skipped
silently. Nothing recurses: nesting depth is limited by memory only, and the sizes that can
explode (the disjunctive normal form, the arithmetic on terms) have limits with their own
one-line errors (:data:`MAX_DISJUNCTS`, :data:`MAX_DNF_ATOMS`, :data:`MAX_TERM_WORK`).

(The ``vnnlib`` package on PyPI reads VNN-LIB 2.0 only; its last 1.0 reader was an
unmaintained alpha, so the 1.0 grammar is implemented here.)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from reluverify.errors import QueryError, SpecError
from reluverify.network import Network, softmax_refusal
from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.user_files import read_text

MAX_SPEC_BYTES = 256 << 20
"""The largest specification file read (the largest of the VNN-COMP benchmarks have a few MiB)."""
MAX_DISJUNCTS = 100_000
MAX_DNF_ATOMS = 1_000_000
MAX_TERM_WORK = 5_000_000

_TOKEN = re.compile(r";[^\n]*|\(|\)|[^\s();]+")
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_VARIABLE = re.compile(r"^([XY])_(0|[1-9][0-9]*)$")


class _Atom(NamedTuple):
    """A token with its line number."""

    text: str
    line: int


class _List(list):
    __slots__ = ("line",)


def _parse_sexprs(text: str, path: str) -> list:
    """All top-level s-expressions; atoms as :class:`_Atom`, lists as :class:`_List` (no recursion)."""
    stack: list[_List] = []
    top: list = []
    tokens = _TOKEN.findall
    for line, content in enumerate(text.split("\n"), start=1):
        for token in tokens(content):
            first = token[0]
            if first == "(":
                node = _List()
                node.line = line
                stack.append(node)
            elif first == ")":
                if not stack:
                    raise SpecError(f"{path}:{line}: unexpected ')'")
                node = stack.pop()
                (stack[-1] if stack else top).append(node)
            elif first == ";":
                break  # a comment runs to the end of the line
            else:
                (stack[-1] if stack else top).append(_Atom(token, line))
    if stack:
        raise SpecError(f"{path}:{stack[-1].line}: '(' is never closed (the file ends first)")
    return top


@dataclass(frozen=True)
class VnnlibSpec:
    """The parsed specification: sizes and the counterexample condition in DNF.

    Each disjunct is ``(lower, upper, matrix, rhs)``: bounds on X (``-inf``/``inf`` where the
    disjunct says nothing) and rows ``matrix @ [X; Y] <= rhs`` for every other atom.
    """

    path: str
    num_inputs: int
    num_outputs: int
    disjuncts: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]

    def to_query(self, network: Network) -> Query:
        """The query on ``network``. A network without its final Softmax (its outputs the logits) takes a
        specification only when every output constraint compares two scores (``Y_i >= Y_j``), which the
        Softmax does not change; any other is refused with one line."""
        if network.input_size != self.num_inputs:
            raise SpecError(
                f"{self.path}: declares {self.num_inputs} inputs (X_0..X_{self.num_inputs - 1}) but the network has "
                f"{network.input_size}{_tensor_sizes(network.input_names, network.input_offsets)}"
            )
        if network.output_size != self.num_outputs:
            raise SpecError(
                f"{self.path}: declares {self.num_outputs} outputs (Y_0..Y_{self.num_outputs - 1}) but the network has "
                f"{network.output_size}{_tensor_sizes(network.output_names, network.output_offsets)}"
            )
        n = self.num_inputs
        live = [d for d in self.disjuncts if not np.any(d[0] > d[1])]
        for k, (lower, upper, _, _) in enumerate(self.disjuncts):
            if np.any(lower > upper):
                continue  # an empty disjunct can never hold; it needs no bounds
            for i in range(n):
                if not np.isfinite(lower[i]) or not np.isfinite(upper[i]):
                    side = "lower" if not np.isfinite(lower[i]) else "upper"
                    where = f" in disjunct {k}" if len(self.disjuncts) > 1 else ""
                    raise SpecError(f"{self.path}: X_{i} has no {side} bound{where}; every input must be bounded")
        if live:
            hull_lower = np.min([d[0] for d in live], axis=0)
            hull_upper = np.max([d[1] for d in live], axis=0)
        else:  # no disjunct can hold: any finite box will do, the query is unsat
            hull_lower = np.zeros(n)
            hull_upper = np.zeros(n)
        disjuncts = [
            Disjunct(lower, upper, LinearConstraints(matrix, rhs), f"disjunct {k}")
            for k, (lower, upper, matrix, rhs) in enumerate(self.disjuncts)
        ]
        try:
            return Query((network,), hull_lower, hull_upper, tuple(disjuncts),
                         description=f"VNN-LIB {os.path.basename(self.path)}")
        except QueryError as exc:
            if network.final_softmax:  # a constraint that is not a comparison of two scores
                raise SpecError(f"{self.path}: {softmax_refusal(network.final_softmax)}") from None
            raise


def _tensor_sizes(names: tuple[str, ...], offsets: tuple[int, ...]) -> str:
    """For several tensors, how their values make the network's vector: `` (784 in 'a' + 8 in 'b')``."""
    if len(names) <= 1:
        return ""
    return " (" + " + ".join(f"{end - start} in {name!r}" for name, start, end in zip(names, offsets, offsets[1:])) + ")"


def read_vnnlib(path: str | os.PathLike) -> VnnlibSpec:
    """Parse a VNN-LIB 1.0 file; errors name the file, the line and what was expected.

    Only a regular file of at most :data:`MAX_SPEC_BYTES` of UTF-8 text is read
    (:func:`reluverify.user_files.read_text`): a device or a FIFO (``/dev/zero``) is refused before it
    is opened, and a NUL byte or bytes that are not UTF-8 end the read where they are found."""
    path = os.fspath(path)
    return parse_vnnlib(read_text(path, MAX_SPEC_BYTES, SpecError, "a VNN-LIB file"), path)


def parse_vnnlib(text: str, path: str = "<string>") -> VnnlibSpec:
    commands = _parse_sexprs(text, path)
    declared: dict[str, int] = {}
    assertions = []
    for command in commands:
        if isinstance(command, _Atom):
            raise SpecError(f"{path}:{command.line}: expected '(' to start a command, found {command.text!r}")
        if not command or not isinstance(command[0], _Atom):
            raise SpecError(f"{path}:{command.line}: expected a command name after '('")
        head = command[0].text
        if head == "declare-const":
            if len(command) != 3 or not all(isinstance(c, _Atom) for c in command[1:]):
                raise SpecError(f"{path}:{command.line}: expected (declare-const NAME Real)")
            name, sort = command[1].text, command[2].text
            if sort != "Real":
                raise SpecError(f"{path}:{command.line}: variable {name} has sort {sort}; only Real is supported")
            if not _VARIABLE.match(name):
                raise SpecError(f"{path}:{command.line}: variable {name!r} is not named X_<i> or Y_<j>")
            if name in declared:
                raise SpecError(f"{path}:{command.line}: {name} is declared twice")
            declared[name] = command.line
        elif head == "assert":
            if len(command) != 2:
                raise SpecError(f"{path}:{command.line}: expected (assert FORMULA)")
            assertions.append(command[1])
        elif head in ("set-logic", "set-info", "set-option", "check-sat", "get-model", "exit"):
            continue
        else:
            raise SpecError(f"{path}:{command.line}: unknown command {head!r} (expected declare-const or assert)")

    num_inputs = _count_contiguous(declared, "X", path)
    num_outputs = _count_contiguous(declared, "Y", path)
    if num_inputs == 0:
        raise SpecError(f"{path}: no input variables X_0, X_1, ... are declared")
    if num_outputs == 0:
        raise SpecError(f"{path}: no output variables Y_0, Y_1, ... are declared")
    reader = _FormulaReader(path, declared, num_inputs, num_outputs)

    # Conjunction of all assertions, kept as: common atoms + the product of the disjunctive ones.
    common: list[_Row] = []
    factors: list[_Dnf] = []
    for formula in assertions:
        dnf = reader.dnf(formula)
        if len(dnf.disjuncts) == 1:
            common.extend(_flatten(dnf.disjuncts[0]))
        else:
            factors.append(dnf)
    product = _Dnf([None], 0)
    for factor in factors:
        product = _conjoin(product, factor, lambda what: SpecError(f"{path}: the specification expands to more than {what}"))
    width = num_inputs + num_outputs
    base_lower = np.full(num_inputs, -np.inf)
    base_upper = np.full(num_inputs, np.inf)
    base_rows: list[_Row] = []
    _split_atoms(common, num_inputs, base_lower, base_upper, base_rows, path)
    inverted = np.flatnonzero(base_lower > base_upper)
    if inverted.size:
        i = inverted[0]
        raise SpecError(
            f"{path}: X_{i} has inverted bounds: lower {base_lower[i]:g} > upper {base_upper[i]:g}"
        )
    disjuncts = []
    for combo in product.disjuncts:
        lower, upper, rows = base_lower.copy(), base_upper.copy(), list(base_rows)
        _split_atoms(_flatten(combo), num_inputs, lower, upper, rows, path)
        matrix = np.zeros((len(rows), width))
        for r, row in enumerate(rows):
            for index, coefficient in row.coefs.items():
                matrix[r, index] = coefficient
        rhs = np.array([row.rhs for row in rows], dtype=np.float64)
        disjuncts.append((lower, upper, matrix, rhs))
    if not disjuncts:
        # Represent "false" as one disjunct with an empty box so the Query stays well-formed.
        lower = base_lower.copy()
        lower[:] = 1.0
        upper = base_upper.copy()
        upper[:] = 0.0
        disjuncts.append((lower, upper, np.zeros((0, width)), np.zeros(0)))
    return VnnlibSpec(path, num_inputs, num_outputs, tuple(disjuncts))


def _count_contiguous(declared: dict[str, int], prefix: str, path: str) -> int:
    indices = sorted(int(name[2:]) for name in declared if name[0] == prefix)
    for expected, got in enumerate(indices):
        if expected != got:
            raise SpecError(f"{path}: {prefix}_{expected} is not declared but {prefix}_{got} is")
    return len(indices)


def _split_atoms(atoms, num_inputs, lower, upper, rows, path) -> None:
    """Single-input atoms become box bounds (intersected); all others stay rows."""
    for atom in atoms:
        nz = [i for i, c in atom.coefs.items() if c != 0]
        if len(nz) == 1 and nz[0] < num_inputs:
            i = nz[0]
            c = atom.coefs[i]
            bound = atom.rhs / c
            if not np.isfinite(bound):
                raise SpecError(f"{path}: the bound {atom.rhs:g} / {c:g} on X_{i} is beyond float64")
            if c > 0:
                upper[i] = min(upper[i], bound)
            else:
                lower[i] = max(lower[i], bound)
        elif not nz:
            if atom.rhs < 0:  # "0 <= rhs" is false: the conjunction is empty
                lower[:] = 1.0
                upper[:] = 0.0
        else:
            rows.append(atom)


# ------------------------------------------------------------------ formulas
# Formulas and terms are evaluated with an explicit stack (never Python recursion), so the
# depth of nesting is limited by memory only; chains of the same connective, such as
# (or (or (or ...))), are flattened first. The disjunctive normal form is bounded in size
# (MAX_DISJUNCTS disjuncts, MAX_DNF_ATOMS atoms in all) and the arithmetic on linear terms
# in work (MAX_TERM_WORK coefficient operations): a file beyond these is a clear error.


class _Row(NamedTuple):
    """The atom ``sum_i coefs[i] * [X; Y]_i <= rhs`` (sparse: absent coefficients are zero)."""

    coefs: dict
    rhs: float


# A conjunction is a rope (joining two is O(1), see :func:`_flatten`): None (true), a list of
# _Row (the atoms of one comparison), or a tuple (left, right) of two conjunctions.


def _join(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (a, b)


def _flatten(conjunction) -> list[_Row]:
    """The atoms of a conjunction, in order, without recursion."""
    out: list[_Row] = []
    todo = [conjunction]
    while todo:
        item = todo.pop()
        if item is None:
            continue
        if type(item) is tuple:
            todo.append(item[1])
            todo.append(item[0])
        else:
            out.extend(item)
    return out


class _Dnf(NamedTuple):
    """A disjunction of conjunctions and the total number of atoms in them."""

    disjuncts: list
    atoms: int


def _conjoin(a: _Dnf, b: _Dnf, error) -> _Dnf:
    """``a AND b`` distributed into DNF; ``error(what)`` builds the exception for a DNF that is too large."""
    count = len(a.disjuncts) * len(b.disjuncts)
    if count > MAX_DISJUNCTS:
        raise error(f"{MAX_DISJUNCTS} disjuncts")
    atoms = len(b.disjuncts) * a.atoms + len(a.disjuncts) * b.atoms
    if atoms > MAX_DNF_ATOMS:
        raise error(f"{MAX_DNF_ATOMS} atoms in disjunctive normal form")
    if a.disjuncts == [None]:
        return _Dnf(list(b.disjuncts), atoms)
    if b.disjuncts == [None]:
        return _Dnf(list(a.disjuncts), atoms)
    return _Dnf([(x, y) if x is not None and y is not None else _join(x, y) for x in a.disjuncts for y in b.disjuncts], atoms)


_CONNECTIVES = ("and", "or")
_COMPARISONS = ("<=", ">=", "=")
_FUNCTIONS = ("+", "-", "*", "/")
_FORMULA, _TERM = 0, 1


class _FormulaReader:
    """Turns formula s-expressions into DNF over atoms ``coefs @ [X; Y] <= rhs``.

    Terms are sparse: ``(coefficients dict, constant)``. Every intermediate value is owned by
    the node that consumes it, so operators update their operands in place.
    """

    def __init__(self, path, declared, num_inputs, num_outputs) -> None:
        self.path = path
        self.declared = declared
        self.num_inputs = num_inputs
        self.work = 0

    def error(self, node, message: str) -> SpecError:
        return SpecError(f"{self.path}:{node.line}: {message}")

    def dnf(self, node) -> _Dnf:
        return self._evaluate(node, _FORMULA)

    def _evaluate(self, root, kind):
        """Post-order evaluation of ``root`` with an explicit stack (see the section comment)."""
        stack = [(root, kind, self._children(root, kind), [])]
        while True:
            node, kind, children, values = stack[-1]
            while len(values) < len(children):
                child, child_kind = children[len(values)]
                if type(child) is not _Atom:
                    stack.append((child, child_kind, self._children(child, child_kind), []))
                    break
                values.append(self._formula(child, ()) if child_kind == _FORMULA else self._term(child, ()))
            if stack[-1][0] is not node or len(values) < len(children):
                continue
            stack.pop()
            value = self._formula(node, values) if kind == _FORMULA else self._term(node, values)
            if not stack:
                return value
            stack[-1][3].append(value)

    def _children(self, node, kind) -> list:
        """The sub-expressions ``node`` needs, with their kind; checks the node's shape first."""
        if isinstance(node, _Atom):
            return []
        if not node or not isinstance(node[0], _Atom):
            raise self.error(node, "expected (and ...), (or ...) or a comparison" if kind == _FORMULA else "expected a term")
        head = node[0].text
        if kind == _FORMULA:
            if head in _CONNECTIVES:
                return [(child, _FORMULA) for child in _same_connective(node, head)]
            if head in _COMPARISONS:
                if len(node) < 3:
                    raise self.error(node, f"({head} ...) needs at least two terms")
                return [(child, _TERM) for child in node[1:]]
            if head in ("<", ">"):
                raise self.error(node, f"strict comparison ({head} ...) is not supported; use <= or >=")
            if head == "not":
                raise self.error(node, "(not ...) is not supported in VNN-LIB 1.0 specifications")
            raise self.error(node, f"expected (and ...), (or ...) or a comparison, found ({head} ...)")
        if head not in _FUNCTIONS:
            raise self.error(node, f"unknown function {head!r} in a term (expected +, -, * or /)")
        if len(node) < 2:
            raise self.error(node, f"({head}) needs arguments")
        return [(child, _TERM) for child in node[1:]]

    def _formula(self, node, values) -> _Dnf:
        if isinstance(node, _Atom):
            if node.text == "true":
                return _Dnf([None], 0)
            if node.text == "false":
                return _Dnf([], 0)
            raise self.error(node, f"expected a formula, found {node.text!r}")
        head = node[0].text
        if head == "and":
            result = _Dnf([None], 0)
            for part in values:
                result = _conjoin(result, part, lambda what: self.error(node, f"the formula expands to more than {what}"))
            return result
        if head == "or":
            disjuncts = []
            for part in values:
                disjuncts.extend(part.disjuncts)
            if len(disjuncts) > MAX_DISJUNCTS:
                raise self.error(node, f"the formula expands to more than {MAX_DISJUNCTS} disjuncts")
            atoms = sum(part.atoms for part in values)
            if atoms > MAX_DNF_ATOMS:
                raise self.error(node, f"the formula expands to more than {MAX_DNF_ATOMS} atoms in disjunctive normal form")
            return _Dnf(disjuncts, atoms)
        atoms = []
        for left, right in zip(values, values[1:]):
            # left - right <= 0  <=>  coefs @ v <= -const
            coefs = dict(left[0])
            for index, c in right[0].items():
                coefs[index] = coefs.get(index, 0.0) - c
            self._count(node, len(left[0]) + len(right[0]))
            const = left[1] - right[1]
            if not np.isfinite(const) or not all(np.isfinite(c) for c in coefs.values()):
                raise self.error(node, f"({head} ...) overflows: a coefficient or constant is not a finite number")
            coefs = {i: c for i, c in coefs.items() if c != 0}
            if head in ("<=", "="):
                atoms.append(_Row(coefs, -const))
            if head in (">=", "="):
                atoms.append(_Row({i: -c for i, c in coefs.items()}, const))
        return _Dnf([atoms], len(atoms))

    def _count(self, node, work: int) -> None:
        self.work += work
        if self.work > MAX_TERM_WORK:
            raise self.error(node, f"the linear terms are too large to expand (more than {MAX_TERM_WORK} coefficient operations)")

    def _term(self, node, args) -> tuple[dict, float]:
        """A linear term as (sparse coefficients over [X; Y], constant)."""
        if isinstance(node, _Atom):
            text = node.text
            if _NUMBER.match(text):
                value = float(text)
                if not np.isfinite(value):
                    raise self.error(node, f"the number {text[:40]} is out of range (not a finite float64)")
                return {}, value
            match = _VARIABLE.match(text)
            if match:
                if text not in self.declared:
                    raise self.error(node, f"variable {text} is used but not declared")
                index = int(match.group(2)) + (0 if match.group(1) == "X" else self.num_inputs)
                return {index: 1.0}, 0.0
            raise self.error(node, f"expected a number or a variable X_i / Y_j, found {text[:40]!r}")
        head = node[0].text
        if head == "+":
            largest = max(range(len(args)), key=lambda i: len(args[i][0]))
            coefs = args[largest][0]
            for position, (other, _) in enumerate(args):
                if position != largest:
                    self._count(node, len(other))
                    for index, c in other.items():
                        coefs[index] = coefs.get(index, 0.0) + c
            const = 0.0
            for _, k in args:
                const += k
            return self._finite(node, coefs, const)
        if head == "-":
            if len(args) == 1:
                coefs, const = args[0]
                self._count(node, len(coefs))
                return {i: -c for i, c in coefs.items()}, -const
            coefs, const = args[0]
            for other, k in args[1:]:
                self._count(node, len(other))
                for index, c in other.items():
                    coefs[index] = coefs.get(index, 0.0) - c
                const = const - k
            return self._finite(node, coefs, const)
        if head == "*":
            const = 1.0
            variable_part = None
            for coefs, k in args:
                self._count(node, len(coefs))
                if any(c != 0 for c in coefs.values()):
                    if variable_part is not None:
                        raise self.error(node, "non-linear term: a product of two variables")
                    variable_part = (coefs, k)
                else:
                    const *= k
            if variable_part is None:
                return self._finite(node, {}, const)
            coefs, k = variable_part
            return self._finite(node, {i: c * const for i, c in coefs.items()}, k * const)
        # "/"
        if len(args) != 2 or any(c != 0 for c in args[1][0].values()):
            raise self.error(node, "(/ a b) needs a constant divisor")
        divisor = args[1][1]
        if divisor == 0:
            raise self.error(node, "division by zero")
        coefs, const = args[0]
        self._count(node, len(coefs))
        return self._finite(node, {i: c / divisor for i, c in coefs.items()}, const / divisor)

    def _finite(self, node, coefs: dict, const: float) -> tuple[dict, float]:
        if not np.isfinite(const) or not all(np.isfinite(c) for c in coefs.values()):
            raise self.error(node, f"({node[0].text} ...) overflows: a coefficient or constant is not a finite number")
        return coefs, const


def _same_connective(node, head: str) -> list:
    """The operands of ``node`` with nested ``(head ...)`` inlined: (or (or a b) c) -> a b c."""
    out = []
    todo = list(reversed(node[1:]))
    while todo:
        item = todo.pop()
        if isinstance(item, _List) and item and isinstance(item[0], _Atom) and item[0].text == head:
            todo.extend(reversed(item[1:]))
        else:
            out.append(item)
    return out


def load_query(network: Network, spec_path: str | os.PathLike) -> Query:
    return read_vnnlib(spec_path).to_query(network)


def load_instance(network_path: str | os.PathLike, spec_path: str | os.PathLike) -> tuple[Network, Query]:
    """The network of a VNN-LIB instance and its query. A final Softmax (or LogSoftmax) over the class axis
    is dropped when every output constraint of the specification compares two outputs -- which it keeps
    the order of, so the answer is the same and the search runs on the logits; otherwise it is computed
    like any other operator. A counterexample's outputs are then the logits: the file's own are
    onnxruntime's on the file (:func:`file_outputs`)."""
    from reluverify.onnx_import import load_onnx

    spec = read_vnnlib(spec_path)
    network = load_onnx(network_path, drop_final_softmax=True)
    if network.final_softmax:
        try:
            return network, spec.to_query(network)
        except SpecError:
            network = load_onnx(network_path)
    return network, spec.to_query(network)


def file_outputs(network: Network, inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """The file's outputs at ``inputs``: ``outputs`` itself, or onnxruntime's on the file when the network's
    final Softmax was dropped (``outputs`` are then its logits)."""
    if not network.final_softmax or not network.source_path:
        return outputs
    from reluverify.onnx_runtime import reference_model

    return np.asarray(reference_model(network.source_path)(np.asarray(inputs)[None])[0], dtype=np.float64)

