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

from reluverify import linear_ops
from reluverify.network import Network
from reluverify.query import Query

_TINY = 1e-12


def _one_thread():
    """BLAS limited to one thread: these matrices are small, and threads only contend (as in the solver)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


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
    grad = linear_ops.backward(chain.weights[-1], out_grad)
    for layer in range(len(pre) - 1, -1, -1):
        grad = grad * (pre[layer] > 0)
        grad = linear_ops.backward(chain.weights[layer], grad)
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
    with _one_thread():
        for start in range(0, count, chunk):
            part = slice(start, min(count, start + chunk))
            scores[part] = _ball_chunk(network, chain, rng, centres[part], radii[part], lower[part], upper[part],
                                       norm, decision, epsilon, samples, attack_steps)
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
    from reluverify.solver.bounds.deeppoly import forward_bounds
    from reluverify.solver.bounds.rows import row_lower_bounds

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
    from reluverify.solver.bounds.deeppoly import LayerBounds

    return LayerBounds(
        [p[members] for p in layer_bounds.pre_lower],
        [p[members] for p in layer_bounds.pre_upper],
        layer_bounds.out_lower[members],
        layer_bounds.out_upper[members],
        layer_bounds.infeasible[members],
    )


# ---------------------------------------------------------------- disjuncts and sub-domains
def disjunct_scores(query: Query, samples: int = 128, attack_steps: int = 8, restarts: int = 2,
                    seed: int = 0) -> np.ndarray:
    """A score per disjunct of ``query`` (lower = likelier violation; ``inf``: refuted by bounds).

    The score is the smallest violation ``max_r (row_r - rhs_r)`` of the disjunct's rows and the
    query's input rows seen by sampling its box and a short attack (<= 0: a candidate
    counterexample). Disjuncts over the same box share one batch of samples and one bound
    computation. Queries with auxiliary variables (L1 balls) or non-ReLU networks get zeros: no
    reordering.
    """
    with _one_thread():
        return _disjunct_scores(query, samples, attack_steps, restarts, seed)


def _disjunct_scores(query: Query, samples: int, attack_steps: int, restarts: int, seed: int) -> np.ndarray:
    count = len(query.disjuncts)
    if query.num_auxiliary or not all(net.is_piecewise_linear for net in query.networks):
        return np.zeros(count)
    from reluverify.solver.bounds.deeppoly import forward_bounds
    from reluverify.solver.bounds.rows import row_lower_bounds
    from reluverify.solver.falsify import random_samples

    chain = query.relu_chain()
    n_x = chain.input_size
    rng = np.random.default_rng(seed)
    input_rows = query.input_constraints
    padded = np.hstack([input_rows.matrix, np.zeros((input_rows.num_rows, query.num_outputs))])
    scores = np.full(count, np.inf)
    boxes: dict[tuple[bytes, bytes], list[int]] = {}
    for k, disjunct in enumerate(query.disjuncts):
        if not disjunct.is_empty_box():
            boxes.setdefault((disjunct.lower.tobytes(), disjunct.upper.tobytes()), []).append(k)
    for members in boxes.values():
        lo, hi = query.disjuncts[members[0]].lower[:n_x], query.disjuncts[members[0]].upper[:n_x]
        own = [query.disjuncts[k].constraints for k in members]
        rows = np.vstack([c.matrix for c in own] + [padded])
        rhs = np.concatenate([c.rhs for c in own] + [input_rows.rhs])
        starts = np.cumsum([0] + [c.num_rows for c in own])
        shared = np.arange(starts[-1], rows.shape[0])
        if rows.shape[0] == 0:  # no row at all: every point of the box satisfies these disjuncts
            scores[members] = -np.inf
            continue
        # bounds: one backward pass for every row of the box
        layer_bounds = forward_bounds(chain, lo[None, :], hi[None, :])
        low = row_lower_bounds(chain, lo[None, :], hi[None, :], layer_bounds, rows[:, n_x:], rows[:, :n_x], rhs).lower[0]
        # samples: one forward pass for every disjunct of the box
        points = random_samples(rng, lo, hi, samples)
        margins = points @ rows[:, :n_x].T + chain.evaluate(points) @ rows[:, n_x:].T - rhs
        refuted_all = bool(shared.size and np.any(low[shared] > 0))
        live, masks, first = [], [], []
        for position, k in enumerate(members):
            mine = np.arange(starts[position], starts[position + 1])
            if refuted_all or np.any(low[mine] > 0):
                continue  # refuted by bounds: stays inf
            mask = np.zeros(rows.shape[0], dtype=bool)
            mask[mine] = True
            mask[shared] = True
            values = np.where(mask, margins, -np.inf).max(axis=1)
            best = np.argsort(values)[:restarts]
            scores[k] = float(values[best[0]])
            if scores[k] > 0:
                live.append(k)
                masks.append(np.broadcast_to(mask, (best.size, mask.size)))
                first.append(points[best])
        if live and attack_steps > 0:  # one batched attack for every disjunct of the box not yet violated
            owner = np.repeat(np.arange(len(live)), [m.shape[0] for m in masks])
            found = _attack_rows(chain, lo, hi, np.vstack(first), rows, rhs, np.vstack(masks), attack_steps)
            for position, k in enumerate(live):
                scores[k] = min(scores[k], float(found[owner == position].min()))
    return scores


def _attack_rows(chain, lower, upper, starts, rows, rhs, mask, steps) -> np.ndarray:
    """Projected sign-gradient descent, each start on its own conjunction of rows (``mask`` (P, R)).

    Returns the smallest violation ``max_{r in mask[p]} (row_r - rhs_r)`` seen from each start.
    """
    n = chain.input_size
    x = np.clip(starts, lower, upper)
    width = upper - lower
    best = np.full(x.shape[0], np.inf)
    index = np.arange(x.shape[0])
    for step in range(steps + 1):
        y, pre = chain.forward(x)
        margins = np.where(mask, x @ rows[:, :n].T + y @ rows[:, n:].T - rhs, -np.inf)
        worst = np.argmax(margins, axis=1)
        best = np.minimum(best, margins[index, worst])
        if step == steps or np.all(best <= 0):
            break
        grad = _backprop(chain, pre, rows[worst, n:]) + rows[worst, :n]
        size = 0.25 * (1.0 - step / steps) ** 2 + 1e-3
        x = np.clip(x - size * width * np.sign(grad), lower, upper)
    return best


def order_disjuncts(query: Query, samples: int = 128, attack_steps: int = 8, restarts: int = 2,
                    seed: int = 0) -> list[int]:
    """The disjunct indices of ``query``, likeliest violation first (ties keep the query's order)."""
    scores = disjunct_scores(query, samples, attack_steps, restarts, seed)
    return [int(k) for k in np.argsort(scores, kind="stable")]


def order_queries(queries: list[Query], samples: int = 128, attack_steps: int = 8, restarts: int = 2,
                  seed: int = 0) -> list[int]:
    """Query indices (e.g. sub-domains), the query with the likeliest violation first."""
    with _one_thread():
        best = [float(np.min(_disjunct_scores(q, samples, attack_steps, restarts, seed))) for q in queries]
    return [int(k) for k in np.argsort(np.asarray(best), kind="stable")]
