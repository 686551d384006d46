"""Independent oracles for the property tests, and tests of the oracles themselves.

Nothing here uses reluverify's property compilation, its queries or its ReLU-chain view: the
oracles read the weights the test built, and

* :func:`z3_property` encodes a property straight from its definition in z3 (exact rationals,
  ``If`` ReLUs, ``|.|`` by ``If``), one or two copies of the network;
* :func:`forward` evaluates the weights with numpy in float64;
* :func:`assert_*` check a counterexample against the definition, and :func:`sample_ball` draws
  points of a ball (its vertices included) to look for violations of an ``unsat`` answer.

Networks are written as float64 ONNX files, so onnxruntime (the solver's reference) computes the
same function as these oracles up to float64 round-off.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import z3

from random_queries import chain_to_onnx, random_chain
from reluverify.network import ReluChain
from reluverify.onnx_import import load_onnx

TOLERANCE = 1e-6
"""The solver confirms counterexamples up to this relative slack (SolverOptions.tolerances.confirm)."""


# ------------------------------------------------------------------ networks
class Net:
    """Weights, the float64 ONNX file written from them, and the network loaded from that file."""

    def __init__(self, weights, biases, path):
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in biases]
        chain_to_onnx(ReluChain(tuple(self.weights), tuple(self.biases)), path)
        self.path = str(path)
        self.network = load_onnx(self.path)

    @property
    def inputs(self) -> int:
        return self.weights[0].shape[1]

    @property
    def outputs(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def relus(self) -> int:
        return sum(w.shape[0] for w in self.weights[:-1])


def make_net(tmp_path, weights, biases, name="net") -> Net:
    return Net(weights, biases, tmp_path / f"{name}.onnx")


def random_net(tmp_path, seed: int, sizes, name=None) -> Net:
    chain = random_chain(np.random.default_rng(seed), sizes, mantissa_bits=8)
    return make_net(tmp_path, chain.weights, chain.biases, name or f"random{seed}")


def forward(net: Net, x) -> np.ndarray:
    h = np.atleast_2d(np.asarray(x, dtype=np.float64))
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        h = h @ w.T + b
        if i < len(net.weights) - 1:
            h = np.maximum(h, 0.0)
    return h[0] if np.ndim(x) == 1 else h


def ramp_net(tmp_path, k: float = 10.0, centre: float = 0.5, inputs: int = 1) -> Net:
    """``y = clip(k * (x_0 - centre), -1, 1)`` as ReLUs: a steep ramp along x_0 (other inputs unused)."""
    a = np.zeros((1, inputs))
    a[0, 0] = k
    c = -k * centre
    w1 = np.vstack([a, a])
    b1 = np.array([c + 1.0, c - 1.0])
    w2 = np.array([[1.0, -1.0]])
    b2 = np.array([-1.0])
    return make_net(tmp_path, [w1, w2], [b1, b2], f"ramp{inputs}")


def difference_net(tmp_path) -> Net:
    """Two inputs, two outputs: ``y0 = x0 - x1`` (as ``relu(x0 - x1) - relu(x1 - x0)``), ``y1 = 0``.

    The label is 0 where ``x0 > x1`` and 1 where ``x0 < x1``; the diagonal is the decision boundary.
    From ``(a, b)`` with ``a > b`` the label changes within L-inf radius ``(a - b) / 2`` and L1 radius ``a - b``.
    """
    w1 = np.array([[1.0, -1.0], [-1.0, 1.0]])
    b1 = np.zeros(2)
    w2 = np.array([[1.0, -1.0], [0.0, 0.0]])
    b2 = np.zeros(2)
    return make_net(tmp_path, [w1, w2], [b1, b2], "difference")


# ------------------------------------------------------------------ z3 oracle
def _q(value: float) -> z3.RatNumRef:
    f = Fraction(float(value))
    return z3.RealVal(f"{f.numerator}/{f.denominator}")


def z3_outputs(net: Net, xs: list) -> list:
    h = xs
    last = len(net.weights) - 1
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        z = []
        for r in range(w.shape[0]):
            terms = [_q(w[r, c]) * h[c] for c in range(w.shape[1]) if w[r, c] != 0.0]
            z.append(z3.Sum(terms) + _q(b[r]) if terms else _q(b[r]))
        h = z if i == last else [z3.If(t >= 0, t, 0) for t in z]
    return h


def _distance_at_most(a: list, b: list, delta: float, norm: str):
    """``||a - b|| <= delta`` as linear constraints (z3 is much faster without If-terms here)."""
    if norm == "inf":
        return z3.And([z3.And(p - q <= _q(delta), q - p <= _q(delta)) for p, q in zip(a, b)])
    t = [z3.FreshReal("t") for _ in a]
    rows = [z3.And(ti >= p - q, ti >= q - p) for ti, p, q in zip(t, a, b)]
    return z3.And(rows + [z3.Sum(t) <= _q(delta)])


def _moves_by_at_least(a, b, epsilon: float):
    """``|a - b| >= epsilon``."""
    return z3.Or(a - b >= _q(epsilon), b - a >= _q(epsilon))


def _in_box(xs, lower, upper):
    return z3.And([z3.And(x >= _q(lo), x <= _q(hi)) for x, lo, hi in zip(xs, lower, upper)])


def z3_property(net: Net, kind: str, *, point=None, delta: float, norm: str = "inf", epsilon: float | None = None,
                domain=None, label: int | None = None, decision: str = "max", timeout_s: float = 60.0):
    """``("sat", model_inputs)`` when the property is violated, ``("unsat", None)`` when it holds.

    ``kind``: ``"local"`` (Def. 1; ``label`` is N(x0)), ``"eps"`` (Def. 3; C(x0) in exact arithmetic)
    or ``"global"`` (Def. 2 on ``domain``, both signs, two copies, no partitioning).
    """
    n, m = net.inputs, net.outputs
    solver = z3.Solver()
    solver.set("timeout", int(timeout_s * 1000))
    x = [z3.Real(f"x_{i}") for i in range(n)]
    y = z3_outputs(net, x)
    if domain is not None:
        solver.add(_in_box(x, *domain))
    if kind in ("local", "eps"):
        x0 = [_q(v) for v in point]
        solver.add(_distance_at_most(x, x0, delta, norm))
        if kind == "local":
            if decision == "max":
                solver.add(z3.Or([y[l] >= y[label] for l in range(m) if l != label]))
            else:
                solver.add(z3.Or([y[l] <= y[label] for l in range(m) if l != label]))
        else:
            c = z3_outputs(net, x0)
            solver.add(z3.Or([_moves_by_at_least(y[l], c[l], epsilon) for l in range(m)]))
        variables = x
    elif kind == "global":
        x2 = [z3.Real(f"x2_{i}") for i in range(n)]
        y2 = z3_outputs(net, x2)
        solver.add(_in_box(x2, *domain))
        solver.add(_distance_at_most(x, x2, delta, norm))
        solver.add(z3.Or([_moves_by_at_least(y[l], y2[l], epsilon) for l in range(m)]))
        variables = x + x2
    else:
        raise ValueError(kind)
    answer = solver.check()
    if answer == z3.sat:
        model = solver.model()
        values = []
        for v in variables:
            r = model.eval(v, model_completion=True)
            values.append(float(Fraction(r.numerator_as_long(), r.denominator_as_long())))
        return "sat", np.array(values)
    if answer == z3.unsat:
        return "unsat", None
    return "unknown", None


# ------------------------------------------------------------------ semantics
def distance(a, b, norm: str) -> float:
    d = np.abs(np.asarray(a, float) - np.asarray(b, float))
    return float(d.max() if norm == "inf" else d.sum())


def _tol(*values) -> float:
    return TOLERANCE * (1.0 + sum(abs(float(v)) for v in values))


def label_of(net: Net, x, decision: str = "max") -> int:
    y = forward(net, x)
    return int(np.argmax(y) if decision == "max" else np.argmin(y))


def breaks_local(net: Net, x, label: int, decision: str = "max") -> bool:
    """Some other label scores at least as well as ``label`` at ``x`` (up to the confirm tolerance)."""
    y = forward(net, x)
    for l in range(net.outputs):
        if l == label:
            continue
        gap = (y[label] - y[l]) if decision == "max" else (y[l] - y[label])
        if gap <= _tol(y[label], y[l]):
            return True
    return False


def assert_distance(x, center, delta, norm):
    assert distance(x, center, norm) <= delta + 1e-8 * (1.0 + delta + np.abs(center).max()), (
        f"counterexample at distance {distance(x, center, norm)} > delta {delta}"
    )


def assert_in_domain(x, domain):
    if domain is not None:
        lo, hi = np.broadcast_to(domain[0], np.shape(x)), np.broadcast_to(domain[1], np.shape(x))
        assert np.all(x >= lo - 1e-12) and np.all(x <= hi + 1e-12), "counterexample outside the domain"


def assert_breaks_local(net: Net, result, point, delta, norm, domain=None, decision="max"):
    """A Def. 1 counterexample: within the ball and the domain, and the label is not kept."""
    cex = result.counterexample
    assert cex is not None and result.verdict == "not robust"
    label = label_of(net, point, decision)
    assert result.label == label
    np.testing.assert_array_equal(cex.point, np.asarray(point, float))
    assert_distance(cex.inputs, point, delta, norm)
    assert_in_domain(cex.inputs, domain)
    assert breaks_local(net, cex.inputs, label, decision), "the counterexample keeps the label"
    # onnxruntime's outputs, as reported, say the same
    y = cex.outputs
    others = [l for l in range(net.outputs) if l != label]
    if decision == "max":
        assert max(y[l] - y[label] + _tol(y[l], y[label]) for l in others) >= 0
    else:
        assert max(y[label] - y[l] + _tol(y[l], y[label]) for l in others) >= 0


def assert_breaks_eps(net: Net, result, point, delta, epsilon, norm, domain=None):
    cex = result.counterexample
    assert cex is not None and result.verdict == "not robust"
    assert_distance(cex.inputs, point, delta, norm)
    assert_in_domain(cex.inputs, domain)
    y, c = forward(net, cex.inputs), forward(net, point)
    assert np.max(np.abs(y - c) - epsilon + TOLERANCE * (1 + np.abs(y) + np.abs(c))) >= 0, (
        f"max |C(x) - C(x0)| = {np.max(np.abs(y - c))} < eps {epsilon}"
    )


def assert_breaks_global(net: Net, result, delta, epsilon, norm, domain):
    cex = result.counterexample
    assert cex is not None and result.verdict == "not robust"
    x1, x2 = cex.inputs, cex.point
    assert_distance(x1, x2, delta, norm)
    assert_in_domain(x1, domain)
    assert_in_domain(x2, domain)
    y1, y2 = forward(net, x1), forward(net, x2)
    assert np.max(np.abs(y1 - y2) - epsilon + TOLERANCE * (1 + np.abs(y1) + np.abs(y2))) >= 0, (
        f"max |C(x1) - C(x2)| = {np.max(np.abs(y1 - y2))} < eps {epsilon}"
    )


def sample_ball(rng, point, delta, norm, domain=None, count=4000) -> np.ndarray:
    """Points of the ball (clipped into the domain): random ones, and the ball's vertices."""
    point = np.asarray(point, float)
    n = point.size
    if norm == "inf":
        pts = point + rng.uniform(-delta, delta, (count, n))
        corners = point + delta * rng.choice([-1.0, 1.0], (min(count, 2**n), n))
        pts = np.vstack([pts, corners])
    else:
        direction = rng.laplace(size=(count, n))
        direction /= np.abs(direction).sum(axis=1, keepdims=True)
        pts = point + delta * rng.uniform(0, 1, (count, 1)) ** (1.0 / n) * direction
        vertices = np.vstack([point + delta * np.eye(n), point - delta * np.eye(n)])
        pts = np.vstack([pts, vertices])
    if domain is not None:
        pts = np.clip(pts, domain[0], domain[1])  # moves each coordinate toward x0: stays in the ball
    return pts


# ------------------------------------------------------------------ the oracles' own tests
def test_z3_oracle_knows_the_difference_network(tmp_path):
    net = difference_net(tmp_path)
    point = np.array([0.5, 0.3])
    assert label_of(net, point) == 0
    assert z3_property(net, "local", point=point, delta=0.0999, label=0)[0] == "unsat"
    verdict, x = z3_property(net, "local", point=point, delta=0.1, label=0)
    assert verdict == "sat" and breaks_local(net, x, 0)
    assert z3_property(net, "local", point=point, delta=0.1999, norm="1", label=0)[0] == "unsat"
    assert z3_property(net, "local", point=point, delta=0.2, norm="1", label=0)[0] == "sat"


def test_z3_oracle_global_on_the_ramp(tmp_path):
    net = ramp_net(tmp_path)
    # the ramp rises by 2 over [0.4, 0.6]: |y1 - y2| >= 1.5 needs |x1 - x2| >= 0.15
    assert z3_property(net, "global", delta=0.149, epsilon=1.5, domain=([0.0], [1.0]))[0] == "unsat"
    verdict, pair = z3_property(net, "global", delta=0.151, epsilon=1.5, domain=([0.0], [1.0]))
    assert verdict == "sat" and abs(forward(net, pair[:1])[0] - forward(net, pair[1:])[0]) >= 1.5


def test_ball_samples_stay_in_the_ball():
    rng = np.random.default_rng(0)
    for norm in ("inf", "1"):
        pts = sample_ball(rng, [0.2, 0.9, -0.5], 0.3, norm, domain=([0, 0, -1], [1, 1, 1]))
        d = np.abs(pts - [0.2, 0.9, -0.5])
        d = d.max(axis=1) if norm == "inf" else d.sum(axis=1)
        assert np.all(d <= 0.3 + 1e-12) and np.all(pts[:, 1] <= 1)


@pytest.fixture
def tmp_net(tmp_path):
    return lambda seed, sizes: random_net(tmp_path, seed, sizes)
