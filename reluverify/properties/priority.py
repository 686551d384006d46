"""Prioritisation: cheap numerical analysis that puts the likeliest violations first.

The paper's advice for parallel runs: check the likeliest violations first, so that a violation
(which ends a property at once) is found early, and the expensive proofs come last. Three cheap
signals, all computed in numpy before any solver runs:

* **sampling** -- random points of the region (and its corners for few inputs): the smallest
  margin seen, or a violation outright;
* **a short gradient attack** -- a few projected sign-gradient steps from the best samples;
* **output sensitivity from bounds** -- symbolic interval bounds over the region give a lower
  bound of the margin; a region whose lower bound is positive is proven by bounds alone and
  goes last.

Two uses:

* :func:`ball_scores` scores the points of a sweep (Def. 1 or Def. 3 on a ball around each
  point), all balls of a batch at once;
* :func:`disjunct_scores` / :func:`order_disjuncts` / :func:`order_queries` score the disjuncts
  of any :class:`~reluverify.query.Query` (one per label and sign) and the sub-domain queries of
  global robustness.

A score is lower for a likelier violation: ``<= 0`` when a violation was seen by sampling or the
attack; ``+inf`` (disjuncts) or 2 (balls) when the bounds prove the region safe. Ordering never
changes a verdict, only which work starts first; every function is deterministic (fixed seed).
"""

from __future__ import annotations

import numpy as np

from reluverify.network import Network
from reluverify.query import Query

_TINY = 1e-12


# ---------------------------------------------------------------- helpers
def _chain_of(network: Network):
    if not network.is_piecewise_linear:
        return None
    try:
        return network.relu_chain()
    except Exception:  # noqa: BLE001 - not a chain: sampling alone
        return None


def _backprop(chain, pre: list[np.ndarray], out_grad: np.ndarray) -> np.ndarray:
    """Gradient with respect to the inputs of ``sum(out_grad * y)`` per sample (batched)."""
    grad = out_grad @ chain.weights[-1]
    for layer in range(len(pre) - 1, -1, -1):
        grad = grad * (pre[layer] > 0)
        grad = grad @ chain.weights[layer]
    return grad


def _ball_samples(rng, centres, radii, lower, upper, norm: str, count: int) -> np.ndarray:
    """``count`` points per ball (B, count, n), inside the ball and the box ``[lower, upper]``."""
    b, n = centres.shape
    if norm == "inf":
        u = rng.uniform(-1.0, 1.0, size=(b, count, n))
        if n <= 6:  # the corners of small boxes: where ReLU networks take their extremes
            corners = np.array(np.meshgrid(*[[-1.0, 1.0]] * n)).reshape(n, -1).T
            u = np.concatenate([np.broadcast_to(corners, (b,) + corners.shape), u], axis=1)
        x = centres[:, None, :] + radii[:, None, None] * u
    else:  # L1: a random direction of L1 norm 1, at a radius uniform in volume
        direction = rng.laplace(size=(b, count, n))
        direction /= np.maximum(np.abs(direction).sum(axis=2, keepdims=True), _TINY)
        scale = rng.uniform(size=(b, count, 1)) ** (1.0 / max(n, 1))
        x = centres[:, None, :] + radii[:, None, None] * scale * direction
    return np.clip(x, lower[:, None, :], upper[:, None, :])


# ---------------------------------------------------------------- points of a sweep
def ball_scores(
    network: Network,
    centres,
    radii,
    norm: str = "inf",
    decision: str = "max",
    epsilon: float | None = None,
    domain=None,
    samples: int = 32,
    attack_steps: int = 8,
    seed: int = 0,
    chunk: int = 128,
) -> np.ndarray:
    """A score per ball (lower = likelier violation) for Def. 1 (``epsilon`` None) or Def. 3.

    ``centres`` is (B, n), ``radii`` (B,) or a number; ``domain`` None or ``(lower, upper)``.
    Scores: in ``[-1, 0]`` when sampling or the attack saw a violation (stronger ones lower);
    in ``(0, 1]`` when undecided (the fraction of the gap between the bounds' worst case and the
    worst sample that is still margin); ``2`` when the bounds prove the ball robust.
    """
    centres = np.atleast_2d(np.asarray(centres, dtype=np.float64))
    count, n = centres.shape
    radii = np.broadcast_to(np.asarray(radii, dtype=np.float64), (count,)).copy()
    lower, upper = centres - radii[:, None], centres + radii[:, None]
    if domain is not None:
        d_lo, d_hi = (np.asarray(v, dtype=np.float64).reshape(-1) for v in domain)
        lower, upper = np.maximum(lower, d_lo), np.minimum(upper, d_hi)
        lower, upper = np.minimum(lower, centres), np.maximum(upper, centres)
    chain = _chain_of(network)
    rng = np.random.default_rng(seed)
    scores = np.empty(count)
    for start in range(0, count, chunk):
        part = slice(start, min(count, start + chunk))
        scores[part] = _ball_chunk(network, chain, rng, centres[part], radii[part], lower[part], upper[part], norm,
                                   decision, epsilon, samples, attack_steps)
    return scores


def _ball_chunk(network, chain, rng, centres, radii, lower, upper, norm, decision, epsilon, samples, steps):
    b, n = centres.shape
    y0 = network.evaluate(centres)
    rows = np.arange(b)
    sign = 1.0 if decision == "max" else -1.0
    labels = np.argmax(sign * y0, axis=1)

    def margins(y: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Margin of each sample (>= ... > 0 safe, <= 0 violated); ``which`` maps samples to balls."""
        if epsilon is None:
            pref = sign * y
            top = pref[np.arange(len(which)), labels[which]]
            others = pref.copy()
            others[np.arange(len(which)), labels[which]] = -np.inf
            return top - others.max(axis=1)
        return epsilon - np.abs(y - y0[which]).max(axis=1)

    m0 = margins(y0, rows)
    x = _ball_samples(rng, centres, radii, lower, upper, norm, samples)
    per = x.shape[1]
    which = np.repeat(rows, per)
    flat = x.reshape(-1, n)
    values = margins(network.evaluate(flat), which).reshape(b, per)
    best = np.argmin(values, axis=1)
    m_min = np.minimum(m0, values[rows, best])
    lb = None
    if chain is not None:
        if norm == "inf" and steps > 0:
            m_min = np.minimum(m_min, _attack_balls(chain, x[rows, best], lower, upper, labels, y0, sign, epsilon,
                                                    steps, margins))
        lb = _margin_lower_bounds(chain, lower, upper, labels, y0, sign, epsilon)
    violated = m_min <= 0
    score = np.where(violated, m_min / (np.abs(m0) + np.abs(m_min) + _TINY), 0.0)
    if lb is None:
        undecided = m_min / (np.abs(m0) + _TINY)
        return np.where(violated, score, np.clip(undecided, _TINY, 1.0))
    proven = (lb > 0) & ~violated
    undecided = m_min / np.maximum(m_min - np.minimum(lb, 0.0), _TINY)
    return np.where(violated, score, np.where(proven, 2.0, np.clip(undecided, _TINY, 1.0)))


def _attack_balls(chain, start, lower, upper, labels, y0, sign, epsilon, steps, margins) -> np.ndarray:
    """A few projected sign-gradient steps per ball on its margin; the smallest margin seen."""
    b = start.shape[0]
    rows = np.arange(b)
    x = np.clip(start, lower, upper)
    width = upper - lower
    best = np.full(b, np.inf)
    for step in range(steps + 1):
        y, pre = chain.forward(x)
        value = margins(y, rows)
        best = np.minimum(best, value)
        if step == steps or np.all(best <= 0):
            break
        out_grad = np.zeros_like(y)
        if epsilon is None:
            pref = sign * y
            others = pref.copy()
            others[rows, labels] = -np.inf
            rival = np.argmax(others, axis=1)
            out_grad[rows, labels] = sign
            out_grad[rows, rival] -= sign
        else:
            moved = y - y0
            worst = np.argmax(np.abs(moved), axis=1)
            out_grad[rows, worst] = -np.sign(moved[rows, worst])
        grad = _backprop(chain, pre, out_grad)
        size = 0.25 * (1.0 - step / steps) ** 2 + 1e-3
        x = np.clip(x - size * width * np.sign(grad), lower, upper)
    return best


def _margin_lower_bounds(chain, lower, upper, labels, y0, sign, epsilon) -> np.ndarray:
    """A lower bound of each ball's margin over its box (symbolic bounds; valid for L1 balls too)."""
    from reluverify.solver.bounds import forward_bounds, row_lower_bounds

    layer_bounds = forward_bounds(chain, lower, upper)
    if epsilon is not None:
        moved = np.maximum(layer_bounds.out_upper - y0, y0 - layer_bounds.out_lower)
        return epsilon - moved.max(axis=1)
    m = y0.shape[1]
    lb = np.empty(lower.shape[0])
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        out_rows = np.zeros((m - 1, m))
        for r, other in enumerate(l for l in range(m) if l != label):
            out_rows[r, label], out_rows[r, other] = sign, -sign
        sub = _subset(layer_bounds, members)
        bounds = row_lower_bounds(chain, lower[members], upper[members], sub, out_rows)
        lb[members] = bounds.lower.min(axis=1)
    return lb


def _subset(layer_bounds, members):
    from reluverify.solver.bounds import LayerBounds

    return LayerBounds(
        [p[members] for p in layer_bounds.pre_lower],
        [p[members] for p in layer_bounds.pre_upper],
        layer_bounds.out_lower[members],
        layer_bounds.out_upper[members],
        layer_bounds.infeasible[members],
    )


# ---------------------------------------------------------------- disjuncts and sub-domains
def disjunct_scores(query: Query, samples: int = 256, attack_steps: int = 10, restarts: int = 4,
                    seed: int = 0) -> np.ndarray:
    """A score per disjunct of ``query`` (lower = likelier violation; ``inf``: refuted by bounds).

    The score is the smallest violation ``max_r (row_r - rhs_r)`` of the disjunct's rows and the
    query's input rows seen by sampling its box and a short attack (<= 0: a candidate
    counterexample). Queries with auxiliary variables (L1 balls) or non-ReLU networks get
    zeros: no reordering.
    """
    count = len(query.disjuncts)
    if query.num_auxiliary or not all(net.is_piecewise_linear for net in query.networks):
        return np.zeros(count)
    from reluverify.solver.bounds import forward_bounds, row_lower_bounds
    from reluverify.solver.falsify import attack, random_samples, violations

    chain = query.relu_chain()
    n_x, n_v = chain.input_size, query.num_inputs
    rng = np.random.default_rng(seed)
    input_rows = query.input_constraints
    padded = np.hstack([input_rows.matrix, np.zeros((input_rows.num_rows, query.num_outputs))])
    scores = np.empty(count)
    layer_cache: dict[tuple[bytes, bytes], object] = {}
    for k, disjunct in enumerate(query.disjuncts):
        if disjunct.is_empty_box():
            scores[k] = np.inf
            continue
        rows = np.vstack([disjunct.constraints.matrix, padded])
        rhs = np.concatenate([disjunct.constraints.rhs, input_rows.rhs])
        lo, hi = disjunct.lower[:n_x], disjunct.upper[:n_x]
        key = (lo.tobytes(), hi.tobytes())
        if key not in layer_cache:
            layer_cache[key] = forward_bounds(chain, lo[None, :], hi[None, :])
        bounds = row_lower_bounds(chain, lo[None, :], hi[None, :], layer_cache[key], rows[:, n_v:], rows[:, :n_x], rhs)
        if np.any(bounds.lower[0] > 0):
            scores[k] = np.inf
            continue
        points = random_samples(rng, lo, hi, samples)
        values = violations(chain, points, rows, rhs)
        best = np.argsort(values)[:restarts]
        value = float(values[best[0]])
        if value > 0 and attack_steps > 0:
            _, attacked = attack(chain, lo, hi, rows, rhs, rng, starts=points[best], steps=attack_steps)
            value = min(value, float(attacked.min()))
        scores[k] = value
    return scores


def order_disjuncts(query: Query, **options) -> list[int]:
    """The disjunct indices of ``query``, likeliest violation first (ties keep the query's order)."""
    return [int(k) for k in np.argsort(disjunct_scores(query, **options), kind="stable")]


def order_queries(queries: list[Query], **options) -> list[int]:
    """Query indices (e.g. sub-domains), the query with the likeliest violation first."""
    best = [float(np.min(disjunct_scores(q, **options))) for q in queries]
    return [int(k) for k in np.argsort(np.asarray(best), kind="stable")]
