"""Random small ReLU networks and random queries, for differential tests.

Usable from plain seeds (every generator takes a ``numpy.random.Generator``) and from
hypothesis (:func:`chains`, :func:`queries`; they draw sizes and feature flags with
hypothesis, and the numbers from a drawn seed, so a failure shrinks to a small shape and
replays exactly).

Special cases are drawn on purpose, not left to chance:

* ``cancel`` -- a hidden unit duplicated (same row, same bias) with opposite outgoing weights,
  so its two copies cancel exactly (``x - x``); a pair of units ``w``/``-w`` recombined into the
  identity ``relu(z) - relu(-z) = z``; and two identical output rows (``y_a == y_b`` exactly);
* ``huge`` / ``tiny`` -- some weights scaled by ``1e4`` / ``1e-4``;
* constant inputs (``lower == upper``) in the box; disjuncts with an empty box.

Queries with a known answer: :func:`planted_counterexample_query` (sat by construction, with
the witness) and :func:`robust_query` (unsat by construction, by interval arithmetic plus a
clear slack). :func:`chain_to_onnx` writes a chain as an ONNX Gemm/Relu model, in float64 by
default, so onnxruntime can replay a counterexample without float32 rounding.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from reluverify.network import ReluChain
from reluverify.query import Disjunct, LinearConstraints, Query

HUGE = 1e4
TINY = 1e-4


# ------------------------------------------------------------------ networks
def random_chain(
    rng: np.random.Generator,
    sizes,
    weight_scale: float = 1.0,
    *,
    cancel: bool = False,
    huge: bool = False,
    tiny: bool = False,
    mantissa_bits: int | None = None,
) -> ReluChain:
    """A chain with layer sizes ``sizes = (inputs, hidden..., outputs)`` and Gaussian weights.

    Weights are ``N(0, weight_scale / sqrt(fan_in))`` and biases ``N(0, 0.3 * weight_scale)``,
    so on boxes of width ~1 around the origin many ReLUs change phase. The flags add the
    special cases listed in the module docstring where the sizes allow them.

    ``mantissa_bits`` rounds every weight and bias to that many significant bits: still
    exact floats, but rationals with small denominators, which exact solvers (z3) handle
    several times faster than full 53-bit mantissas. ``None`` keeps full float64 weights.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"bad layer sizes {sizes}")
    weights = [rng.normal(0.0, weight_scale / np.sqrt(a), (b, a)) for a, b in zip(sizes, sizes[1:])]
    biases = [rng.normal(0.0, 0.3 * weight_scale, b) for b in sizes[1:]]
    if huge:
        layer = int(rng.integers(len(weights)))
        mask = rng.random(weights[layer].shape) < 0.3
        mask.flat[rng.integers(mask.size)] = True
        weights[layer] = np.where(mask, weights[layer] * HUGE, weights[layer])
    if tiny:
        layer = int(rng.integers(len(weights)))
        mask = rng.random(weights[layer].shape) < 0.5
        mask.flat[rng.integers(mask.size)] = True
        weights[layer] = np.where(mask, weights[layer] * TINY, weights[layer])
    if mantissa_bits is not None:
        weights = [round_mantissa(w, mantissa_bits) for w in weights]
        biases = [round_mantissa(b, mantissa_bits) for b in biases]
    if cancel:
        for layer in range(len(weights) - 1):  # hidden layers feed weights[layer + 1]
            width = weights[layer].shape[0]
            if width >= 2:  # unit 1 duplicates unit 0; their outgoing weights cancel: x - x
                weights[layer][1] = weights[layer][0]
                biases[layer][1] = biases[layer][0]
                weights[layer + 1][:, 1] = -weights[layer + 1][:, 0]
            if width >= 4:  # units 2, 3 are z and -z; recombined as relu(z) - relu(-z) = z
                weights[layer][3] = -weights[layer][2]
                biases[layer][3] = -biases[layer][2]
                weights[layer + 1][:, 3] = -weights[layer + 1][:, 2]
        if weights[-1].shape[0] >= 2:  # two identical outputs
            weights[-1][-1] = weights[-1][0]
            biases[-1][-1] = biases[-1][0]
    return ReluChain(tuple(np.ascontiguousarray(w) for w in weights), tuple(biases))


def round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """``values`` rounded to ``bits`` significant bits (exactly representable, small denominators)."""
    mantissa, exponent = np.frexp(np.asarray(values, dtype=np.float64))
    return np.ldexp(np.round(mantissa * 2.0**bits) / 2.0**bits, exponent)


def output_magnitude(chain: ReluChain, inputs: np.ndarray) -> np.ndarray:
    """``|W_L| ... |W_1| |x| + ...``: a bound on every partial sum behind each output (batch, out).

    Round-off in evaluating the chain is a small multiple of ``eps * output_magnitude``; tests
    scale their tolerances by it (huge weights make large partial sums that may cancel).
    """
    m = np.abs(np.atleast_2d(np.asarray(inputs, dtype=np.float64)))
    for w, b in zip(chain.weights, chain.biases):
        m = m @ np.abs(w).T + np.abs(b)
    return m


def interval_bounds(chain: ReluChain, lower: np.ndarray, upper: np.ndarray, row: np.ndarray | None = None):
    """Interval bounds on ``y`` over the box (or on ``row @ y`` when ``row`` is given)."""
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    weights = list(chain.weights)
    biases = list(chain.biases)
    if row is not None:
        weights[-1] = np.asarray(row, float)[None, :] @ weights[-1]
        biases[-1] = np.asarray(row, float)[None, :] @ biases[-1]
    for i, (w, b) in enumerate(zip(weights, biases)):
        wp, wn = np.maximum(w, 0.0), np.minimum(w, 0.0)
        lo, hi = wp @ lo + wn @ hi + b, wp @ hi + wn @ lo + b
        if i < len(weights) - 1:
            lo, hi = np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    return lo, hi


@st.composite
def chains(draw, max_relus: int = 20, min_inputs: int = 1, max_inputs: int = 4, max_outputs: int = 4,
           max_hidden_layers: int = 3, special: bool = True,
           mantissa_bits=st.sampled_from([8, 8, 8, None])) -> ReluChain:
    """Chains with 1..``max_hidden_layers`` hidden layers and at most ``max_relus`` ReLUs.

    ``mantissa_bits`` is a strategy (or a value) for :func:`random_chain`'s weight rounding;
    by default most chains have 8-bit mantissas (fast for z3) and some full float64 weights.
    """
    n_in = draw(st.integers(min_inputs, max_inputs))
    n_out = draw(st.integers(1, max_outputs))
    depth = draw(st.integers(1, min(max_hidden_layers, max_relus)))
    hidden, budget = [], max_relus
    for layer in range(depth):
        room = budget - (depth - layer - 1)
        hidden.append(draw(st.integers(1, max(1, min(room, 8)))))
        budget -= hidden[-1]
    scale = draw(st.sampled_from([1.0, 1.0, 0.3, 3.0]))
    flags = {"cancel": False, "huge": False, "tiny": False}
    if special:
        flags = {k: draw(st.booleans()) for k in flags}
    bits = draw(mantissa_bits) if isinstance(mantissa_bits, st.SearchStrategy) else mantissa_bits
    seed = draw(st.integers(0, 2**32 - 1))
    return random_chain(np.random.default_rng(seed), [n_in, *hidden, n_out], scale, mantissa_bits=bits, **flags)


# ------------------------------------------------------------------ queries
def random_box(rng: np.random.Generator, n: int, constant_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """A box around a random centre in [-1, 1]^n with radii in [0.05, 1]; some dimensions constant."""
    centre = rng.uniform(-1.0, 1.0, n)
    radius = rng.uniform(0.05, 1.0, n)
    radius[rng.random(n) < constant_fraction] = 0.0
    return centre - radius, centre + radius


def _sample_box(rng, lower, upper, count):
    return lower + (upper - lower) * rng.random((count, lower.shape[0]))


def _rhs_from_values(rng, values: np.ndarray, *, lean: str = "either") -> float:
    """A right-hand side near a quantile of ``values``, shifted a bit either way.

    ``row <= rhs`` is satisfiable iff rhs >= the row's true minimum; quantiles near 0 shifted
    down make unsat likely, others sat, and the true minimum may lie below the samples.
    """
    if values.size == 0:
        return float(rng.normal())
    q = {"sat": rng.choice([0.1, 0.3, 0.7, 1.0]), "unsat": 0.0, "either": rng.choice([0.0, 0.0, 0.02, 0.1, 0.5])}[lean]
    base = float(np.quantile(values, q))
    spread = float(np.ptp(values)) if values.size > 1 else 0.0
    spread = max(spread, 1e-3 * (1.0 + abs(base)))
    shift = spread * rng.choice([-0.2, -0.05, -0.01, 0.0, 0.01, 0.05])
    return base + shift


def random_query(
    rng: np.random.Generator,
    chain: ReluChain,
    *,
    num_disjuncts: int | None = None,
    input_rows: int | None = None,
    constant_fraction: float = 0.25,
    empty_box_probability: float = 0.1,
    sub_box_probability: float = 0.2,
    input_coefficient_probability: float = 0.3,
    samples: int = 256,
) -> Query:
    """A random one-network query on ``chain``: box, optional input rows, a DNF of 1-3 disjuncts.

    Each disjunct has 1-3 rows over ``y`` (sometimes also ``v``) with right-hand sides from
    quantiles of the row on random samples (so sat and unsat are both common), sometimes a
    sub-box, sometimes an empty box. If the chain has two identical outputs, some rows are
    ``y_a - y_b <= 0`` (sat) or ``<= -tiny`` (unsat), which only exact arithmetic gets right.
    """
    net = chain.to_network()
    n, m = chain.input_size, chain.output_size
    lower, upper = random_box(rng, n, constant_fraction)
    points = _sample_box(rng, lower, upper, samples)
    outs = chain.evaluate(points)
    full = np.concatenate([points, outs], axis=1)

    if input_rows is None:
        input_rows = int(rng.choice([0, 0, 1, 2]))
    a = rng.normal(size=(input_rows, n))
    a[rng.random(a.shape) < 0.2] = 0.0
    b = np.array([_rhs_from_values(rng, points @ row, lean="sat") for row in a])
    input_constraints = LinearConstraints(a.reshape(input_rows, n), b.reshape(input_rows))
    inside = full[input_constraints.holds(points)] if input_rows else full
    if inside.shape[0] == 0:
        inside = full

    twins = [(i, j) for i in range(m) for j in range(i + 1, m)
             if np.array_equal(chain.weights[-1][i], chain.weights[-1][j]) and chain.biases[-1][i] == chain.biases[-1][j]]

    if num_disjuncts is None:
        num_disjuncts = int(rng.integers(1, 4))
    disjuncts = []
    for k in range(num_disjuncts):
        rows = int(rng.integers(1, 4))
        mat = np.zeros((rows, n + m))
        rhs = np.zeros(rows)
        for r in range(rows):
            if twins and rng.random() < 0.3:
                i, j = twins[int(rng.integers(len(twins)))]
                mat[r, n + i], mat[r, n + j] = 1.0, -1.0
                rhs[r] = rng.choice([0.0, -1e-12, -1e-300, 1e-12])
                continue
            mat[r, n:] = rng.normal(size=m)
            mat[r, n:][rng.random(m) < 0.25] = 0.0
            if rng.random() < input_coefficient_probability:
                mat[r, :n] = rng.normal(size=n) * (rng.random(n) < 0.5)
            if not np.any(mat[r]):
                mat[r, n + int(rng.integers(m))] = 1.0
            rhs[r] = _rhs_from_values(rng, inside @ mat[r])
        d_lower, d_upper = lower.copy(), upper.copy()
        u = rng.random()
        if u < empty_box_probability:
            i = int(rng.integers(n))
            d_lower[i], d_upper[i] = upper[i] + 0.5, lower[i] - 0.5
        elif u < empty_box_probability + sub_box_probability:
            t = np.sort(rng.random((2, n)), axis=0)
            d_lower, d_upper = lower + (upper - lower) * t[0], lower + (upper - lower) * t[1]
        disjuncts.append(Disjunct(d_lower, d_upper, LinearConstraints(mat, rhs), f"random {k}"))
    return Query((net,), lower, upper, tuple(disjuncts), input_constraints, description="random query")


@st.composite
def queries(draw, max_relus: int = 20, min_inputs: int = 1, max_inputs: int = 4, max_outputs: int = 4,
            max_hidden_layers: int = 3, special: bool = True,
            mantissa_bits=st.sampled_from([8, 8, 8, None])) -> Query:
    """Random one-network queries (see :func:`random_query`) over chains drawn by :func:`chains`."""
    chain = draw(chains(max_relus, min_inputs, max_inputs, max_outputs, max_hidden_layers, special, mantissa_bits))
    seed = draw(st.integers(0, 2**32 - 1))
    constant = draw(st.sampled_from([0.0, 0.25, 0.5])) if special else 0.0
    empty = 0.15 if special else 0.0
    return random_query(np.random.default_rng(seed), chain, constant_fraction=constant, empty_box_probability=empty)


class Planted(NamedTuple):
    query: Query
    witness: np.ndarray  # input variables that satisfy disjunct ``disjunct``
    disjunct: int


def planted_counterexample_query(rng: np.random.Generator, chain: ReluChain, margin: float = 1e-3,
                                 num_disjuncts: int = 2) -> Planted:
    """A query that is sat by construction: a random point satisfies one disjunct with a small margin.

    The margin is relative to the magnitude of the row's terms (:func:`output_magnitude`), so
    float64 round-off in computing the planted point's outputs cannot eat it.
    """
    n, m = chain.input_size, chain.output_size
    lower, upper = random_box(rng, n)
    p = _sample_box(rng, lower, upper, 1)[0]
    y = chain.evaluate(p[None, :])[0]
    point = np.concatenate([p, y])
    mag = np.concatenate([np.abs(p), output_magnitude(chain, p)[0]])

    def row_through(rowcount: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        mat = rng.normal(size=(rowcount, width))
        mat[:, :n] *= rng.random((rowcount, n)) < 0.3
        rhs = mat @ point[:width] + margin * (1.0 + np.abs(mat) @ mag[:width])
        return mat, rhs

    a, b = row_through(int(rng.integers(0, 3)), n)
    planted = int(rng.integers(num_disjuncts))
    disjuncts = []
    for k in range(num_disjuncts):
        if k == planted:
            mat, rhs = row_through(int(rng.integers(1, 4)), n + m)
            d_lower = np.minimum(p, lower + (p - lower) * rng.random(n))
            d_upper = np.maximum(p, upper - (upper - p) * rng.random(n))
        else:  # a random other disjunct, sat or not
            mat = rng.normal(size=(2, n + m))
            rhs = mat @ point - rng.uniform(0.1, 2.0, 2) * (1.0 + np.abs(mat) @ mag)
            d_lower, d_upper = lower, upper
        disjuncts.append(Disjunct(d_lower, d_upper, LinearConstraints(mat, rhs), f"planted {k}" if k == planted else f"other {k}"))
    query = Query((chain.to_network(),), lower, upper, tuple(disjuncts), LinearConstraints(a, b), description="planted")
    return Planted(query, p, planted)


def robust_query(rng: np.random.Generator, chain: ReluChain, slack: float = 0.1, num_disjuncts: int = 2,
                 input_rows: int = 1) -> Query:
    """A query that is unsat by construction: each disjunct asks ``c @ y >= U + slack * (1 + |U|)``
    where ``U`` is an interval-arithmetic upper bound of ``c @ y`` over the box (input rows only
    shrink the region, so they are random)."""
    n, m = chain.input_size, chain.output_size
    lower, upper = random_box(rng, n)
    disjuncts = []
    for k in range(num_disjuncts):
        c = rng.normal(size=m)
        _, hi = interval_bounds(chain, lower, upper, c)
        bound = float(hi[0])
        mat = np.zeros((1, n + m))
        mat[0, n:] = -c
        rhs = np.array([-(bound + slack * (1.0 + abs(bound)))])
        if rng.random() < 0.5:  # add a random row that leaves it unsat
            extra = np.zeros((1, n + m))
            extra[0, n:] = rng.normal(size=m)
            mat, rhs = np.vstack([mat, extra]), np.concatenate([rhs, [rng.normal()]])
        disjuncts.append(Disjunct(lower, upper, LinearConstraints(mat, rhs), f"robust {k}"))
    a = rng.normal(size=(input_rows, n))
    b = a @ ((lower + upper) / 2) + np.abs(a) @ (upper - lower) * rng.uniform(0.0, 0.5, input_rows)
    return Query((chain.to_network(),), lower, upper, tuple(disjuncts), LinearConstraints(a, b), description="robust")


# ------------------------------------------------------------------ brute force
def grid(query: Query, per_dim: int) -> np.ndarray:
    """A regular grid over the query's box (constant dimensions get one value), as (points, n)."""
    axes = [np.linspace(lo, hi, per_dim) if hi > lo else np.array([lo]) for lo, hi in zip(query.lower, query.upper)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([a.reshape(-1) for a in mesh], axis=1)


def clear_violations(query: Query, points: np.ndarray, margin: float = 1e-9) -> np.ndarray:
    """Mask of points that violate the property by more than round-off.

    A point counts when it is in the region and satisfies some disjunct with every row's
    residual below ``-margin`` times the magnitude of the row's terms (bounds are checked
    exactly: a grid point on a box face is in the box).
    """
    v = np.asarray(points, dtype=np.float64)
    y = query.outputs(v)
    full = np.concatenate([v, y], axis=1)
    mags = [output_magnitude(net.relu_chain(), v[:, off:off + net.input_size])
            for net, off in zip(query.networks, np.cumsum((0,) + query.input_sizes[:-1]))]
    mag = np.concatenate([np.abs(v)] + mags, axis=1)
    ok = np.all((v >= query.lower) & (v <= query.upper), axis=1)
    ic = query.input_constraints
    ok &= np.all(ic.residuals(v) < -margin * (1.0 + np.abs(mag[:, :v.shape[1]]) @ np.abs(ic.matrix).T + np.abs(ic.rhs)), axis=1)
    hit = np.zeros(v.shape[0], dtype=bool)
    for d in query.disjuncts:
        inside = np.all((v >= d.lower) & (v <= d.upper), axis=1)
        c = d.constraints
        tol = margin * (1.0 + mag @ np.abs(c.matrix).T + np.abs(c.rhs))
        hit |= inside & np.all(c.residuals(full) < -tol, axis=1)
    return ok & hit


# ------------------------------------------------------------------ exact arithmetic
def exact_outputs(query: Query, inputs: np.ndarray) -> list[Fraction]:
    """``y`` at ``inputs`` in exact rational arithmetic on the networks' float64 ReLU chains."""
    v = [Fraction(float(x)) for x in inputs]
    out, offset = [], 0
    for net in query.networks:
        chain = net.relu_chain()
        h = v[offset : offset + net.input_size]
        offset += net.input_size
        last = len(chain.weights) - 1
        for layer, (w, b) in enumerate(zip(chain.weights, chain.biases)):
            z = [sum((Fraction(float(w[i, j])) * h[j] for j in np.flatnonzero(w[i])), Fraction(float(b[i])))
                 for i in range(w.shape[0])]
            h = z if layer == last else [max(t, Fraction(0)) for t in z]
        out += h
    return out


def exact_residuals(query: Query, disjunct: int, inputs: np.ndarray) -> tuple[list[Fraction], np.ndarray]:
    """Exact ``row @ [v; y] - rhs`` of the disjunct's rows, and the confirm tolerance scale of each row."""
    d = query.disjuncts[disjunct]
    point = [Fraction(float(x)) for x in inputs] + exact_outputs(query, inputs)
    residuals = exact_row_residuals(d.constraints, point)
    approx = np.array([float(p) for p in point])
    scale = 1.0 + np.abs(d.constraints.matrix) @ np.abs(approx) + np.abs(d.constraints.rhs)
    return residuals, scale


def exact_row_residuals(constraints: LinearConstraints, point: list[Fraction]) -> list[Fraction]:
    """Exact ``row @ point - rhs`` of every row (``point`` in rationals)."""
    return [sum((Fraction(float(row[j])) * point[j] for j in np.flatnonzero(row)), Fraction(0)) - Fraction(float(rhs))
            for row, rhs in zip(constraints.matrix, constraints.rhs)]


# ------------------------------------------------------------------ ONNX export
def chain_to_onnx(chain: ReluChain, path, dtype=np.float64) -> str:
    """Write ``chain`` as an ONNX Gemm/Relu model with input ``x`` of shape (batch, inputs).

    ``dtype=np.float64`` keeps the weights exact, so onnxruntime evaluates the same function
    as the float64 IR up to round-off; ``np.float32`` rounds them as a real ONNX file would.
    """
    elem = TensorProto.DOUBLE if np.dtype(dtype) == np.float64 else TensorProto.FLOAT
    nodes, inits = [], []
    current = "x"
    last = len(chain.weights) - 1
    for i, (w, b) in enumerate(zip(chain.weights, chain.biases)):
        inits += [numpy_helper.from_array(np.asarray(w, dtype=dtype), f"W{i}"),
                  numpy_helper.from_array(np.asarray(b, dtype=dtype), f"B{i}")]
        out = "y" if i == last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"B{i}"], [out], transB=1))
        current = out
        if i < last:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            current = f"r{i}"
    graph = helper.make_graph(
        nodes, "chain",
        [helper.make_tensor_value_info("x", elem, ["batch", chain.input_size])],
        [helper.make_tensor_value_info("y", elem, ["batch", chain.output_size])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)
