"""An independent z3 encoding of a :class:`~reluverify.query.Query`: the cross-check witness.

This module decides a query with z3 over linear real arithmetic and shares no code with
the simplex solver beside it (it reads only the query and each network's
:meth:`~reluverify.network.Network.relu_chain`). Its meaning is the query's, word for word:

* one z3 ``Real`` per input variable ``v`` (network inputs, then auxiliaries), with the
  query's box and its input rows;
* each network copy ``k`` reads ``v[offset_k : offset_k + n_k]`` and is encoded layer by
  layer from its own ReLU chain: ``b = W h + bias`` as a linear term with the **exact**
  rational value of every float64 weight, and one ``Real`` ``f`` per ReLU with
  ``f == If(b >= 0, b, 0)``; the last affine layer defines one ``Real`` per output, and the
  copies' outputs are concatenated in order into ``y``;
* the counterexample condition is ``Or`` over the disjuncts of
  ``And(disjunct box, disjunct rows over [v; y])``; a disjunct whose box is empty is ``False``.

No float is ever rounded on the way in (``Fraction(float)`` is exact), so ``unsat`` here
means unsat for the real-arithmetic function of the network's float64 weights, which is
the function reluverify reasons about (see :mod:`reluverify.network`).

A ``sat`` model is exact in z3; it is converted to float64 and replayed through
``query.outputs`` (float64 IR). :attr:`Z3Result.disjunct` names a disjunct that replayed
point satisfies within ``1e-9`` relative to the magnitude of the row's terms, partial sums
inside the network included (absolute where that is below 1): the conversion to float
moves the point by round-off only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import z3

from reluverify import linear_ops
from reluverify.query import LinearConstraints, Query

REPLAY_TOLERANCE = 1e-9
"""Relative slack (to the magnitude of a row's terms, absolute below 1) for naming the
disjunct that the float64 replay of an exact z3 model satisfies."""

VERDICTS = ("sat", "unsat", "unknown", "timeout")


@dataclass(frozen=True)
class Z3Result:
    """z3's answer to one query.

    ``inputs`` and ``outputs`` (float64) are set for ``sat`` only: the model's input
    variables and ``query.outputs(inputs)``. ``disjunct`` is the index of a disjunct they
    satisfy within :data:`REPLAY_TOLERANCE` (``None`` if round-off broke every one, which
    would itself be worth a look). ``reason`` is z3's reason for ``unknown``/``timeout``.
    """

    verdict: str
    inputs: np.ndarray | None
    outputs: np.ndarray | None
    disjunct: int | None
    seconds: float
    reason: str = ""


# ------------------------------------------------------------------ encoding
def _exact(value: float, ctx: z3.Context) -> z3.RatNumRef:
    """The exact rational value of a float64 as a z3 numeral (never through decimal rounding)."""
    q = Fraction(float(value))
    return z3.RealVal(f"{q.numerator}/{q.denominator}", ctx)


def _linear(coefficients: np.ndarray, terms: list, constant: float, ctx: z3.Context) -> z3.ArithRef:
    """``sum_j coefficients[j] * terms[j] + constant`` with zero coefficients skipped."""
    parts = []
    for j in np.flatnonzero(coefficients):
        c = float(coefficients[j])
        if c == 1.0:
            parts.append(terms[j])
        elif c == -1.0:
            parts.append(-terms[j])
        else:
            parts.append(_exact(c, ctx) * terms[j])
    if constant != 0.0:
        parts.append(_exact(constant, ctx))
    if not parts:
        return z3.RealVal(0, ctx)
    if len(parts) == 1:
        return parts[0]
    return z3.Sum(parts)


def _rows(constraints: LinearConstraints, terms: list, ctx: z3.Context) -> list[z3.BoolRef]:
    """``matrix @ terms <= rhs`` as one z3 atom per row."""
    return [
        _linear(constraints.matrix[i], terms, 0.0, ctx) <= _exact(constraints.rhs[i], ctx)
        for i in range(constraints.num_rows)
    ]


def _box(variables: list, lower: np.ndarray, upper: np.ndarray, ctx: z3.Context,
         skip_lower: np.ndarray | None = None, skip_upper: np.ndarray | None = None) -> list[z3.BoolRef]:
    """``lower <= v <= upper`` (an equality where they meet); bounds equal to ``skip_*`` are left out."""
    atoms = []
    for i, var in enumerate(variables):
        lo, hi = float(lower[i]), float(upper[i])
        if lo == hi:
            if skip_lower is None or not (skip_lower[i] == lo and skip_upper[i] == hi):
                atoms.append(var == _exact(lo, ctx))
            continue
        if np.isfinite(lo) and (skip_lower is None or skip_lower[i] != lo):
            atoms.append(var >= _exact(lo, ctx))
        if np.isfinite(hi) and (skip_upper is None or skip_upper[i] != hi):
            atoms.append(var <= _exact(hi, ctx))
    return atoms


def encode_query(query: Query, ctx: z3.Context | None = None) -> tuple[z3.Solver, list, list]:
    """A z3 solver holding the whole query, its input-variable Reals and its output Reals.

    The solver is satisfiable iff the query is ``sat``; see the module docstring for the
    encoding. A fresh :class:`z3.Context` is used unless ``ctx`` is given, so encodings are
    independent of each other (and of z3's global context).
    """
    ctx = ctx if ctx is not None else z3.Context()
    solver = z3.Solver(ctx=ctx)
    n_net = query.num_network_inputs
    inputs = [z3.Real(f"X_{i}", ctx) for i in range(n_net)]
    inputs += [z3.Real(f"T_{i}", ctx) for i in range(query.num_auxiliary)]
    solver.add(*_box(inputs, query.lower, query.upper, ctx))
    solver.add(*_rows(query.input_constraints, inputs, ctx))

    outputs: list = []
    offset = 0
    for k, network in enumerate(query.networks):
        chain = network.relu_chain()
        h = inputs[offset : offset + network.input_size]
        offset += network.input_size
        last = len(chain.weights) - 1
        for layer, (w, bias) in enumerate(zip(chain.weights, chain.biases)):
            w = np.asarray(linear_ops.dense(w), dtype=np.float64)
            bias = np.asarray(bias, dtype=np.float64)
            pre = [_linear(w[j], h, float(bias[j]), ctx) for j in range(w.shape[0])]
            if layer == last:
                ys = [z3.Real(f"Y_{len(outputs) + j}", ctx) for j in range(len(pre))]
                solver.add(*[y == b for y, b in zip(ys, pre)])
                outputs.extend(ys)
            else:
                zero = z3.RealVal(0, ctx)
                fs = [z3.Real(f"n{k}_L{layer}_{j}", ctx) for j in range(len(pre))]
                solver.add(*[f == z3.If(b >= zero, b, zero) for f, b in zip(fs, pre)])
                h = fs
    if len(outputs) != query.num_outputs:  # a relu_chain that disagrees with the network's size
        raise ValueError(f"encoded {len(outputs)} outputs, the query has {query.num_outputs}")

    point = inputs + outputs
    cases = []
    for d in query.disjuncts:
        if d.is_empty_box():
            cases.append(z3.BoolVal(False, ctx))
            continue
        atoms = _box(inputs, d.lower, d.upper, ctx, skip_lower=query.lower, skip_upper=query.upper)
        atoms += _rows(d.constraints, point, ctx)
        cases.append(z3.And(atoms) if atoms else z3.BoolVal(True, ctx))
    solver.add(z3.Or(cases) if len(cases) > 1 else cases[0])
    return solver, inputs, outputs


# ------------------------------------------------------------------ models
def _to_float(value: z3.ExprRef) -> float:
    if z3.is_rational_value(value):
        return float(Fraction(value.numerator_as_long(), value.denominator_as_long()))
    if z3.is_algebraic_value(value):
        return _to_float(value.approx(30))
    raise ValueError(f"z3 model value {value} is not a number")


def _term_magnitudes(query: Query, v: np.ndarray) -> np.ndarray:
    """``|v|`` and, per output, ``|W_L| ... |W_1| |x| + ...``: the size of the partial sums behind it.

    Round-off in the float64 replay is a small multiple of machine epsilon times these.
    """
    parts, offset = [np.abs(v)], 0
    for network in query.networks:
        chain = network.relu_chain()
        m = np.abs(v[offset : offset + network.input_size])
        offset += network.input_size
        for w, bias in zip(chain.weights, chain.biases):
            m = np.abs(linear_ops.dense(w)) @ m + np.abs(bias)
        parts.append(m)
    return np.concatenate(parts)


def _replayed_disjunct(query: Query, v: np.ndarray, y: np.ndarray) -> int | None:
    """First disjunct that ``(v, y)`` satisfies within REPLAY_TOLERANCE of its rows' term magnitudes.

    Box bounds are checked exactly: they are floats, and rounding an exact value inside
    them to the nearest float cannot leave them.
    """
    point = np.concatenate([v, y])
    magnitude = _term_magnitudes(query, v)
    for k, d in enumerate(query.disjuncts):
        if d.is_empty_box() or np.any(v < d.lower) or np.any(v > d.upper):
            continue
        c = d.constraints
        slack = REPLAY_TOLERANCE * np.maximum(1.0, np.abs(c.matrix) @ magnitude + np.abs(c.rhs))
        if np.all(c.residuals(point) <= slack):
            return k
    return None


def decide_with_z3(query: Query, timeout_s: float | None = None, seed: int = 0) -> Z3Result:
    """Decide ``query`` with z3: ``sat`` (with a model), ``unsat``, ``unknown`` or ``timeout``.

    ``timeout_s`` bounds the whole call (encoding included) as closely as z3 allows; a
    budget that is gone before z3 starts is a ``timeout`` without a check.
    """
    start = time.perf_counter()
    solver, inputs, outputs = encode_query(query)
    solver.set("random_seed", int(seed))
    if timeout_s is not None:
        remaining = timeout_s - (time.perf_counter() - start)
        if remaining <= 0:
            return Z3Result("timeout", None, None, None, time.perf_counter() - start, "budget spent while encoding")
        solver.set("timeout", max(1, int(remaining * 1000)))
    answer = solver.check()
    if answer == z3.unsat:
        return Z3Result("unsat", None, None, None, time.perf_counter() - start)
    if answer == z3.unknown:
        reason = solver.reason_unknown()
        elapsed = time.perf_counter() - start
        timed_out = "timeout" in reason or "canceled" in reason or (timeout_s is not None and elapsed >= timeout_s)
        return Z3Result("timeout" if timed_out else "unknown", None, None, None, elapsed, reason)
    model = solver.model()
    v = np.array([_to_float(model.eval(x, model_completion=True)) for x in inputs], dtype=np.float64)
    # The exact values lie in the box and its bounds are floats, so rounding to nearest stays inside it.
    y = np.asarray(query.outputs(v), dtype=np.float64)
    return Z3Result("sat", v, y, _replayed_disjunct(query, v, y), time.perf_counter() - start)
