"""VNN-LIB 1.0 reader: a specification file -> :class:`~reluverify.query.Query`.

VNN-LIB 1.0 is a fragment of SMT-LIB over reals: ``(declare-const X_i Real)`` for the
network inputs, ``(declare-const Y_j Real)`` for its outputs, and ``(assert F)``
where F is built from ``and``, ``or`` and the comparisons ``<=``, ``>=`` and ``=`` over
linear terms (numbers, variables, ``+``, ``-``, ``*`` by a constant, ``/`` by a
constant). The conjunction of all assertions describes the **counterexample**
(the property is violated iff it is satisfiable), exactly as a :class:`Query` does.

The file is parsed as a real s-expression grammar; anything not understood (strict
comparisons, ``not``, non-linear terms, unknown commands, undeclared variables) is
an error naming the file, line and what was expected -- never skipped silently.

(The ``vnnlib`` package on PyPI reads VNN-LIB 2.0 only; its last 1.0 reader was an
unmaintained alpha, so the 1.0 grammar is implemented here.)
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass

import numpy as np

from reluverify.errors import SpecError
from reluverify.network import Network
from reluverify.query import Disjunct, LinearConstraints, Query

MAX_DISJUNCTS = 100_000

_TOKEN = re.compile(r";[^\n]*|\(|\)|[^\s();]+")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_VARIABLE = re.compile(r"^([XY])_(\d+)$")


@dataclass(frozen=True)
class _Atom:
    """A token with its line number."""

    text: str
    line: int


class _List(list):
    line: int = 0


def _parse_sexprs(text: str, path: str) -> list:
    """All top-level s-expressions; atoms as :class:`_Atom`, lists as :class:`_List`."""
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    stack: list[_List] = []
    top: list = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token[0] == ";":
            continue
        line = bisect.bisect_right(line_starts, match.start())
        if token == "(":
            node = _List()
            node.line = line
            stack.append(node)
        elif token == ")":
            if not stack:
                raise SpecError(f"{path}:{line}: unexpected ')'")
            node = stack.pop()
            (stack[-1] if stack else top).append(node)
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
        if network.input_size != self.num_inputs:
            raise SpecError(
                f"{self.path}: declares {self.num_inputs} inputs (X_0..X_{self.num_inputs - 1}) but the network has {network.input_size}"
            )
        if network.output_size != self.num_outputs:
            raise SpecError(
                f"{self.path}: declares {self.num_outputs} outputs (Y_0..Y_{self.num_outputs - 1}) but the network has {network.output_size}"
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
        return Query((network,), hull_lower, hull_upper, tuple(disjuncts), description=f"VNN-LIB {os.path.basename(self.path)}")


def read_vnnlib(path: str | os.PathLike) -> VnnlibSpec:
    """Parse a VNN-LIB 1.0 file; errors name the file, the line and what was expected."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, not a VNN-LIB file") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_vnnlib(text, path)


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

    # Conjunction of all assertions, kept as: common atoms + a list of disjunctive factors.
    common: list[tuple[np.ndarray, float]] = []
    factors: list[list[list[tuple[np.ndarray, float]]]] = []
    for formula in assertions:
        dnf = reader.dnf(formula)
        if len(dnf) == 1:
            common.extend(dnf[0])
        else:
            factors.append(dnf)
    total = 1
    for f in factors:
        total *= max(1, len(f))
        if total > MAX_DISJUNCTS:
            raise SpecError(f"{path}: the specification expands to more than {MAX_DISJUNCTS} disjuncts")
    if any(len(f) == 0 for f in factors):
        combos: list[list] = []  # an empty disjunction is false: no counterexample can exist
    else:
        combos = [[]]
        for f in factors:
            combos = [c + d for c in combos for d in f]
    width = num_inputs + num_outputs
    base_lower = np.full(num_inputs, -np.inf)
    base_upper = np.full(num_inputs, np.inf)
    base_rows: list[tuple[np.ndarray, float]] = []
    _split_atoms(common, num_inputs, base_lower, base_upper, base_rows)
    inverted = np.flatnonzero(base_lower > base_upper)
    if inverted.size:
        i = inverted[0]
        raise SpecError(
            f"{path}: X_{i} has inverted bounds: lower {base_lower[i]:g} > upper {base_upper[i]:g}"
        )
    disjuncts = []
    for combo in combos:
        lower, upper, rows = base_lower.copy(), base_upper.copy(), list(base_rows)
        _split_atoms(combo, num_inputs, lower, upper, rows)
        matrix = np.array([r[0] for r in rows]).reshape(len(rows), width)
        rhs = np.array([r[1] for r in rows], dtype=np.float64)
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


def _split_atoms(atoms, num_inputs, lower, upper, rows) -> None:
    """Single-input atoms become box bounds (intersected); all others stay rows."""
    for coefs, rhs in atoms:
        nz = np.flatnonzero(coefs)
        if nz.size == 1 and nz[0] < num_inputs:
            i = nz[0]
            c = coefs[i]
            bound = rhs / c
            if c > 0:
                upper[i] = min(upper[i], bound)
            else:
                lower[i] = max(lower[i], bound)
        elif nz.size == 0:
            if rhs < 0:  # "0 <= rhs" is false: the conjunction is empty
                lower[:] = 1.0
                upper[:] = 0.0
        else:
            rows.append((coefs, rhs))


class _FormulaReader:
    """Turns formula s-expressions into DNF over atoms ``coefs @ [X; Y] <= rhs``."""

    def __init__(self, path, declared, num_inputs, num_outputs) -> None:
        self.path = path
        self.declared = declared
        self.num_inputs = num_inputs
        self.width = num_inputs + num_outputs

    def error(self, node, message: str) -> SpecError:
        return SpecError(f"{self.path}:{node.line}: {message}")

    def dnf(self, node) -> list[list[tuple[np.ndarray, float]]]:
        if isinstance(node, _Atom):
            if node.text == "true":
                return [[]]
            if node.text == "false":
                return []
            raise self.error(node, f"expected a formula, found {node.text!r}")
        if not node or not isinstance(node[0], _Atom):
            raise self.error(node, "expected (and ...), (or ...) or a comparison")
        head = node[0].text
        args = node[1:]
        if head == "and":
            result = [[]]
            for arg in args:
                part = self.dnf(arg)
                if len(result) * max(1, len(part)) > MAX_DISJUNCTS:
                    raise self.error(node, f"the formula expands to more than {MAX_DISJUNCTS} disjuncts")
                result = [a + b for a in result for b in part]
            return result
        if head == "or":
            result = []
            for arg in args:
                result.extend(self.dnf(arg))
            return result
        if head in ("<=", ">=", "="):
            if len(args) < 2:
                raise self.error(node, f"({head} ...) needs at least two terms")
            terms = [self.term(a) for a in args]
            atoms = []
            for left, right in zip(terms, terms[1:]):
                diff_c = left[0] - right[0]
                diff_k = left[1] - right[1]
                # left - right <= 0  <=>  coefs @ v <= -const
                if head in ("<=", "="):
                    atoms.append((diff_c, -diff_k))
                if head in (">=", "="):
                    atoms.append((-diff_c, diff_k))
            return [atoms]
        if head in ("<", ">"):
            raise self.error(node, f"strict comparison ({head} ...) is not supported; use <= or >=")
        if head == "not":
            raise self.error(node, "(not ...) is not supported in VNN-LIB 1.0 specifications")
        raise self.error(node, f"expected (and ...), (or ...) or a comparison, found ({head} ...)")

    def term(self, node) -> tuple[np.ndarray, float]:
        """A linear term as (coefficients over [X; Y], constant)."""
        if isinstance(node, _Atom):
            text = node.text
            if _NUMBER.match(text):
                return np.zeros(self.width), float(text)
            match = _VARIABLE.match(text)
            if match:
                if text not in self.declared:
                    raise self.error(node, f"variable {text} is used but not declared")
                coefs = np.zeros(self.width)
                index = int(match.group(2)) + (0 if match.group(1) == "X" else self.num_inputs)
                coefs[index] = 1.0
                return coefs, 0.0
            raise self.error(node, f"expected a number or a variable X_i / Y_j, found {text!r}")
        if not node or not isinstance(node[0], _Atom):
            raise self.error(node, "expected a term")
        head, args = node[0].text, [self.term(a) for a in node[1:]]
        if not args:
            raise self.error(node, f"({head}) needs arguments")
        if head == "+":
            return sum((a[0] for a in args), np.zeros(self.width)), sum(a[1] for a in args)
        if head == "-":
            if len(args) == 1:
                return -args[0][0], -args[0][1]
            c, k = args[0][0].copy(), args[0][1]
            for a in args[1:]:
                c, k = c - a[0], k - a[1]
            return c, k
        if head == "*":
            coefs, const = np.zeros(self.width), 1.0
            variable_part = None
            for a in args:
                if np.any(a[0]):
                    if variable_part is not None:
                        raise self.error(node, "non-linear term: a product of two variables")
                    variable_part = a
                else:
                    const *= a[1]
            if variable_part is None:
                return coefs, const
            return variable_part[0] * const, variable_part[1] * const
        if head == "/":
            if len(args) != 2 or np.any(args[1][0]):
                raise self.error(node, "(/ a b) needs a constant divisor")
            if args[1][1] == 0:
                raise self.error(node, "division by zero")
            return args[0][0] / args[1][1], args[0][1] / args[1][1]
        raise self.error(node, f"unknown function {head!r} in a term (expected +, -, * or /)")


def load_query(network: Network, spec_path: str | os.PathLike) -> Query:
    return read_vnnlib(spec_path).to_query(network)

