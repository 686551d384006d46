"""Input splitting's stronger box bounds: bounds inherited from the parent box, and optimised slopes on
deep boxes (``input_split.alpha_depth``). Both may only ever cut what holds no counterexample."""

from __future__ import annotations

import numpy as np
import pytest
from random_queries import random_chain

from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.solver import SolverOptions, solve
from reluverify.solver.options import InputSplitOptions
from reluverify.solver.bounds.deeppoly import deeppoly_bounds


def _pre_activations(chain, points):
    values, h = [], points
    for w, b in zip(chain.weights[:-1], chain.biases[:-1]):
        z = h @ np.asarray(w).T + b
        values.append(z)
        h = np.maximum(z, 0.0)
    return values


@pytest.mark.parametrize("seed", range(8))
def test_child_bounds_with_the_parents_hold_on_samples(seed):
    rng = np.random.default_rng(seed)
    chain = random_chain(rng, (3, 12, 12, 12, 2))
    lower = rng.uniform(-1.0, 0.0, 3)
    upper = lower + rng.uniform(0.2, 1.5, 3)
    parent = deeppoly_bounds(chain, lower[None], upper[None])
    # the parent's box cut in two along each dimension in turn, down to a few levels deep
    boxes = [(lower, upper, parent)]
    for level in range(4):
        lo, hi, bounds = boxes[-1]
        dim = level % 3
        middle = 0.5 * (lo[dim] + hi[dim])
        child_hi = hi.copy()
        child_hi[dim] = middle
        child = deeppoly_bounds(chain, lo[None], child_hi[None], bounds.pre_lower, bounds.pre_upper)
        assert not child.infeasible[0]
        for mine, theirs in zip(child.pre_lower, bounds.pre_lower):
            assert np.all(mine >= theirs)  # never looser than the parent's
        for mine, theirs in zip(child.pre_upper, bounds.pre_upper):
            assert np.all(mine <= theirs)
        points = rng.uniform(lo, child_hi, (2000, 3))
        points[:8] = np.where(rng.random((8, 3)) < 0.5, lo, child_hi)  # some vertices
        for z, low, high in zip(_pre_activations(chain, points), child.pre_lower, child.pre_upper):
            slack = 1e-9 * (1.0 + np.abs(z))
            assert np.all(z >= low - slack) and np.all(z <= high + slack)
        boxes.append((lo, child_hi, child))


def _deep_options(**extra):
    # optimised slopes from the first box on, and boxes bounded many times before they are decided
    return SolverOptions(timeout=20, strategy="input-split", falsify=False,
                         input_split=InputSplitOptions(alpha_depth=0, alpha_iterations=20, min_relus=1, **extra))


def _near_max_query(rng, chain, offset):
    """``c @ y >= t`` on a box, with ``t`` the largest value seen on 4,000 samples shifted by ``offset`` of
    its scale: near the threshold, so the search goes deep, with either verdict."""
    n, m = chain.input_size, chain.output_size
    lower = rng.uniform(-1.0, 0.0, n)
    upper = lower + rng.uniform(0.3, 1.0, n)
    c = rng.normal(size=m)
    values = chain.evaluate(rng.uniform(lower, upper, (4000, n))) @ c
    top = float(values.max())
    rows = np.concatenate([np.zeros(n), -c])[None, :]
    rhs = np.array([-(top + offset * (1.0 + abs(top)))])
    disjunct = Disjunct(lower, upper, LinearConstraints(rows, rhs), "near max")
    return Query((chain.to_network(),), lower, upper, (disjunct,), LinearConstraints(np.zeros((0, n)), np.zeros(0)))


@pytest.mark.parametrize("seed", range(10))
def test_optimised_deep_boxes_agree_with_reluplex(seed):
    rng = np.random.default_rng(100 + seed)
    chain = random_chain(rng, (3, 16, 16, 16, 2))
    query = _near_max_query(rng, chain, float(rng.choice([1e-3, 3e-3, 1e-2, 3e-2])))
    # optimised slopes from the first box on, boxes bounded with their parents' bounds
    split = solve(query, SolverOptions(timeout=20, strategy="input-split", falsify=False,
                                       input_split=InputSplitOptions(alpha_depth=0, min_relus=1)))
    reluplex = solve(query, SolverOptions(timeout=20, strategy="relu-split", falsify=False))
    assert split.verdict in ("sat", "unsat"), split.reason
    if reluplex.verdict in ("sat", "unsat"):
        assert split.verdict == reluplex.verdict


def test_parameter_layout_round_trip():
    """A box's ascent parameters packed for its children come back as they were (float32), the
    target's row weights padded to the widest target's."""
    from reluverify.solver.bounds import alpha_crown as crown
    from reluverify.solver.input_split.parameters import ParameterLayout as _ParameterLayout

    rng = np.random.default_rng(7)
    sizes, k, r = [4, 3, 5], 6, 2
    layout = _ParameterLayout(sizes, r, 3)
    params = crown.Parameters([rng.random((k, 1, n)) for n in sizes], [rng.random((k, 1, n, 2)) for n in sizes],
                              rng.random((k, 1, r)), rng.random((k, 1, 2)))
    packed = layout.pack(params)
    assert packed.shape == (k, 3 * sum(sizes) + r + 3) and packed.dtype == np.float32
    fresh = crown.Parameters([np.zeros((k, 1, n)) for n in sizes], [np.zeros((k, 1, n, 2)) for n in sizes],
                             np.zeros((k, 1, r)), np.zeros((k, 1, 2)))
    mask = np.array([True, False, True, True, False, True])
    layout.unpack_into(fresh, packed, mask)
    for got, want in zip(fresh.alpha + fresh.beta + [fresh.gamma, fresh.weights],
                         params.alpha + params.beta + [params.gamma, params.weights]):
        np.testing.assert_allclose(got[mask], want[mask], rtol=1e-6)
        assert not np.any(got[~mask])  # boxes outside the mask keep their own start


# deep searches (13-57 boxes) of both verdicts whose Reluplex reference takes under a second
@pytest.mark.parametrize("seed", [0, 1, 8, 12, 13, 16, 17, 18, 21])
def test_warm_started_ascent_agrees_with_reluplex(seed):
    """Children start their ascent from their parent's parameters, or from the heuristic slopes: both
    give Reluplex's verdict."""
    rng = np.random.default_rng(300 + seed)
    chain = random_chain(rng, (3, 16, 16, 16, 2))
    query = _near_max_query(rng, chain, float(rng.choice([1e-3, 3e-3, 1e-2])))
    reluplex = solve(query, SolverOptions(timeout=20, strategy="relu-split", falsify=False))
    assert reluplex.verdict in ("sat", "unsat"), reluplex.reason
    for warm in (True, False):
        split = solve(query, SolverOptions(timeout=20, strategy="input-split", falsify=False,
                                           input_split=InputSplitOptions(alpha_depth=0, alpha_iterations=5, alpha_warm=warm,
                                                                         inherit_depth=0, min_relus=1)))
        assert split.verdict == reluplex.verdict, (warm, split.reason)
