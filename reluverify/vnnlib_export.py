"""Write a compiled :class:`~reluverify.query.Query` as a VNN-LIB 1.0 file.

The file states the same counterexample condition for the same network, so that
``reluverify.vnnlib.load_query(network, path)`` reads back a query with the same points
(the property commands write their query next to a certificate, and
``reluverify check-proof NETWORK SPEC PROOF`` then checks it like any VNN-LIB instance).

What is written, and what ``load_query`` makes of it:

* one ``(assert ...)``: the disjunction of the query's disjuncts (a single ``(and ...)`` when
  there is one), each the conjunction of its box ``X_i >= lower_i``, ``X_i <= upper_i`` (the
  disjunct's box, which the query already cut to its own), its rows, then the query's input rows;
* numbers as ``repr(float)``, the shortest decimal that reads back as the same float64, and every
  row ``(<= (+ (* c X_i) ... (* c Y_j)) rhs)`` so that each coefficient and right-hand side is read
  back exactly.

So disjunct ``d`` of the query read back has the rows of disjunct ``d`` followed by the input rows,
in order, except that a row with a single non-zero coefficient, on an input, becomes a bound of the
box (``rhs / c``, rounded to float64) and a row without non-zero coefficients is dropped (or, when
``rhs < 0``, makes the disjunct empty); the query read back has no input rows of its own and its box
is the hull of the disjuncts' boxes. This is the query a certificate for the file refers to.

A query with auxiliary variables (the ``t_i`` of an L1 ball) or with several network copies
(global robustness) is not a VNN-LIB instance of one network: :func:`vnnlib_text` refuses it with a
:class:`~reluverify.errors.ReluverifyError`, and so does a query whose only disjunct is empty (the
VNN-LIB reader refuses a single conjunction with contradictory bounds).
"""

from __future__ import annotations

import os

import numpy as np

from reluverify.errors import ReluverifyError
from reluverify.query import Query


def _number(x: float) -> str:
    return repr(float(x))  # the shortest decimal that reads back exactly (1e-05, -0.0, 1.5e+300)


def _row(coefficients: np.ndarray, rhs: float, names: list[str]) -> str:
    terms = [f"(* {_number(c)} {names[j]})" for j, c in enumerate(coefficients) if c != 0]
    if not terms:
        return f"(<= 0.0 {_number(rhs)})"
    term = terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})"
    return f"(<= {term} {_number(rhs)})"


def _is_empty(query: Query, d) -> bool:
    """The disjunct holds nowhere as the reader sees it: a row ``0 <= rhs < 0``, or an inverted box once
    the rows on a single input are made bounds (a single conjunction with that is a reading error)."""
    n = query.num_inputs
    lower, upper = d.lower.copy(), d.upper.copy()
    for rows in (d.constraints, query.input_constraints):
        for row, rhs in zip(rows.matrix, rows.rhs):
            nonzero = np.flatnonzero(row)
            if nonzero.size == 0 and rhs < 0:
                return True
            if nonzero.size == 1 and nonzero[0] < n:
                i = nonzero[0]
                if row[i] > 0:
                    upper[i] = min(upper[i], rhs / row[i])
                else:
                    lower[i] = max(lower[i], rhs / row[i])
    return bool(np.any(lower > upper))


def vnnlib_text(query: Query) -> str:
    """The VNN-LIB 1.0 text of ``query`` (see the module docstring)."""
    if len(query.networks) != 1:
        raise ReluverifyError(
            f"the query has {len(query.networks)} network copies (e.g. global robustness): a VNN-LIB file describes one network"
        )
    if query.num_auxiliary:
        raise ReluverifyError(
            f"the query has {query.num_auxiliary} auxiliary variables (e.g. an L1 ball): VNN-LIB has only the network's "
            "inputs and outputs"
        )
    n, m = query.num_inputs, query.num_outputs
    if len(query.disjuncts) == 1 and _is_empty(query, query.disjuncts[0]):
        raise ReluverifyError("the query's only disjunct is empty (contradictory bounds, or a row 0 <= negative): "
                              "VNN-LIB 1.0 as reluverify reads it cannot state it")
    names = [f"X_{i}" for i in range(n)] + [f"Y_{j}" for j in range(m)]
    lines = [f"; {query.description or 'query'} (written by reluverify.vnnlib_export)"]
    lines += [f"(declare-const {name} Real)" for name in names]
    extra = query.input_constraints
    conjunctions = []
    for d in query.disjuncts:
        atoms = []
        for i in range(n):
            atoms.append(f"(>= X_{i} {_number(d.lower[i])})")
            atoms.append(f"(<= X_{i} {_number(d.upper[i])})")
        for row, rhs in zip(d.constraints.matrix, d.constraints.rhs):
            atoms.append(_row(row, rhs, names))
        for row, rhs in zip(extra.matrix, extra.rhs):
            atoms.append(_row(np.concatenate([row, np.zeros(m)]), rhs, names))
        conjunctions.append("(and\n    " + "\n    ".join(atoms) + ")")
    if len(conjunctions) == 1:
        lines.append(f"(assert {conjunctions[0]})")
    else:
        lines.append("(assert (or\n  " + "\n  ".join(conjunctions) + "))")
    return "\n".join(lines) + "\n"


def write_vnnlib(query: Query, path: str | os.PathLike) -> str:
    """Write ``query`` to ``path`` as VNN-LIB 1.0; returns the path."""
    text = vnnlib_text(query)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return os.fspath(path)
