"""Re-evaluating a counterexample in exact rational arithmetic (``--exact``).

A ``sat`` answer is confirmed with onnxruntime within a relative tolerance (README, "What the
answers mean"). :func:`exact_check` says whether the violation also holds *exactly*: the
counterexample's inputs, the network's weights and biases (its ReLU chain, ``Query.relu_chain()``
made dense with :func:`reluverify.linear_ops.dense`; float32 ONNX weights are exact float64
values) and the specification's numbers (float64, as the VNN-LIB reader or the property read them)
are all dyadic rationals, so every value is computed exactly as a Python integer over a common
power-of-two denominator. No rounding happens anywhere; this is fast enough for MNIST's 784 inputs.

The point is checked against the whole query: inside the query's box, the disjunct's box and the
input rows, and the disjunct's rows ``R [v; y] <= r`` with ``y`` the exact network output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np

from reluverify.errors import QueryError

from reluverify.linear_ops import dense


@dataclass
class ExactCheck:
    """``holds``: the point satisfies ``disjunct`` exactly. ``max_residual``: the disjunct's largest
    ``row - rhs`` in exact arithmetic (rounded to float for display; <= 0 when it holds);
    ``outside``: why the point is outside the region, if it is."""

    holds: bool
    disjunct: int
    max_residual: float | None
    outside: str = ""

    def to_dict(self) -> dict:
        return {**asdict(self), "note": self.describe()}

    def describe(self) -> str:
        if self.holds:
            rows = "no rows" if self.max_residual is None else f"largest row - rhs = {self.max_residual:.6g} <= 0"
            return f"the violation holds exactly (rational arithmetic on the network's weights): {rows}"
        why = self.outside or f"largest row - rhs = {self.max_residual:.6g} > 0"
        return f"the violation holds only within the documented tolerance, not exactly ({why})"


def _fixed(values) -> tuple[np.ndarray, int]:
    """Dyadic float64 values as integers ``n`` (an object array) and one exponent ``e``: ``value = n / 2**e``."""
    ratios = [float(v).as_integer_ratio() for v in np.asarray(values, dtype=np.float64).reshape(-1)]
    e = max((d.bit_length() - 1 for _, d in ratios), default=0)
    ints = [n << (e - (d.bit_length() - 1)) for n, d in ratios]
    out = np.empty(len(ints), dtype=object)
    out[:] = ints
    return out.reshape(np.shape(values)), e


def _align(a: np.ndarray, ea: int, e: int) -> np.ndarray:
    return a * (1 << (e - ea)) if e > ea else a


def exact_outputs(chain, x) -> tuple[np.ndarray, int]:
    """The chain's outputs at ``x``, exactly: integers and exponent (``y = n / 2**e``)."""
    h, eh = _fixed(x)
    last = len(chain.weights) - 1
    for k, (w, b) in enumerate(zip(chain.weights, chain.biases)):
        wi, ew = _fixed(dense(w))
        bi, eb = _fixed(b)
        z, ez = wi.dot(h) if h.size else np.zeros(wi.shape[0], dtype=object), ew + eh
        e = max(ez, eb)
        h, eh = _align(z, ez, e) + _align(bi, eb, e), e
        if k < last:
            h = np.array([max(int(t), 0) for t in h], dtype=object)
    return h, eh


def _residuals(matrix, rhs, point, ep) -> list[Fraction]:
    """``matrix @ point - rhs`` exactly, for ``point = n / 2**ep``."""
    if matrix.shape[0] == 0:
        return []
    mi, em = _fixed(matrix)
    ri, er = _fixed(rhs)
    e = max(em + ep, er)
    values = _align(mi.dot(point), em + ep, e) - _align(ri, er, e)
    return [Fraction(int(v), 1 << e) for v in values]


def require_rational(query) -> None:
    """Only piecewise-linear (ReLU) networks have exact rational outputs: a one-line QueryError for any other."""
    kinds = sorted({kind for net in query.networks for kind in net.activation_counts} - {"relu"})
    if kinds:
        raise QueryError(f"--exact re-evaluates ReLU networks in rational arithmetic; this one has "
                         f"{', '.join(kinds)} units, whose values are not rational")


def exact_check(query, inputs, disjunct: int) -> ExactCheck:
    """Does ``inputs`` (the query's variables, auxiliaries included) satisfy ``disjunct`` exactly?
    (:func:`require_rational` first.)"""
    require_rational(query)
    v = np.asarray(inputs, dtype=np.float64).reshape(-1)
    d = query.disjuncts[disjunct]
    outside = ""
    for name, lower, upper in (("query", query.lower, query.upper), ("disjunct", d.lower, d.upper)):
        bad = np.flatnonzero((v < lower) | (v > upper))  # float64 comparisons are exact
        if bad.size and not outside:
            i = int(bad[0])
            outside = f"input {i} = {v[i]!r} is outside the {name} box [{lower[i]!r}, {upper[i]!r}]"
    y, ey = exact_outputs(query.relu_chain(), v[: query.num_network_inputs])
    vi, ev = _fixed(v)
    e = max(ev, ey)
    point = np.concatenate([_align(vi, ev, e), _align(y, ey, e)])
    rows = query.input_constraints
    extra = _residuals(rows.matrix, rows.rhs, point[: v.size], e)
    if not outside and any(r > 0 for r in extra):
        i = next(k for k, r in enumerate(extra) if r > 0)
        outside = f"input row {i} exceeds its right-hand side by {float(extra[i]):.3g}"
    residuals = _residuals(d.constraints.matrix, d.constraints.rhs, point, e)
    worst = max(residuals, default=Fraction(-1))
    holds = not outside and worst <= 0
    return ExactCheck(bool(holds), int(disjunct), float(worst) if residuals else None, outside)
