"""ReLU branch and bound over all the disjuncts of a box at once (``bab.joint_disjuncts``).

The joint search keeps one bound per disjunct in every sub-problem and drops a disjunct where its
bound is positive; it must give the verdict of one search per disjunct, and of Reluplex.
"""

from __future__ import annotations

import numpy as np
import pytest

from random_queries import random_chain
from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.solver import SolverOptions, solve
from reluverify.solver.bounds import alpha_crown as crown
from reluverify.solver.options import BranchAndBoundOptions


def _near_max_disjuncts(rng, chain, offsets):
    """One box; disjunct ``k``: ``c_k @ y >= t_k`` with ``t_k`` the largest value of 4,000 samples
    shifted by ``offsets[k]`` of its scale (near the threshold: deep searches of either verdict)."""
    n, m = chain.input_size, chain.output_size
    lower = rng.uniform(-1.0, 0.0, n)
    upper = lower + rng.uniform(0.3, 1.0, n)
    samples = chain.evaluate(rng.uniform(lower, upper, (4000, n)))
    disjuncts = []
    for k, offset in enumerate(offsets):
        c = rng.normal(size=m)
        top = float((samples @ c).max())
        rows = np.concatenate([np.zeros(n), -c])[None, :]
        disjuncts.append(Disjunct(lower, upper, LinearConstraints(rows, [-(top + offset * (1.0 + abs(top)))]), f"near max {k}"))
    return Query((chain.to_network(),), lower, upper, tuple(disjuncts), LinearConstraints(np.zeros((0, n)), np.zeros(0)))


# deep searches of both verdicts (13-463 sub-problems) whose Reluplex reference takes a few seconds
@pytest.mark.parametrize("seed", [0, 2, 19, 8, 18, 24, 26])
def test_joint_search_agrees_with_separate_searches_and_reluplex(seed):
    rng = np.random.default_rng(500 + seed)
    chain = random_chain(rng, (3, 12, 12, 12, 3))
    offsets = rng.choice([-1e-2, 1e-3, 3e-3, 1e-2, 3e-2], size=int(rng.integers(2, 5)))
    query = _near_max_disjuncts(rng, chain, offsets)
    reluplex = solve(query, SolverOptions(timeout=20, strategy="relu-split", falsify=False))
    assert reluplex.verdict in ("sat", "unsat"), reluplex.reason
    for joint in ("joint", "separate"):
        bab = solve(query, SolverOptions(timeout=20, strategy="relu-bab", bab=BranchAndBoundOptions(joint_disjuncts=joint),
                                         falsify=False))
        assert bab.verdict == reluplex.verdict, (joint, bab.reason)
        if bab.verdict == "unsat":
            assert all(v == "unsat" for v in bab.disjunct_verdicts)
        else:
            cex = bab.counterexample
            d = query.disjuncts[cex.disjunct]
            y = chain.evaluate(cex.inputs[None, :])[0]
            assert d.constraints.matrix[:, chain.input_size:] @ y <= d.constraints.rhs + 1e-6


def test_joint_search_shares_its_tree():
    """On a case where every disjunct needs splits, the joint search bounds fewer sub-problems than the
    separate searches together (the splits and re-tightened bounds are made once)."""
    counts = {"joint": 0, "separate": 0}
    for seed in range(6):
        rng = np.random.default_rng(700 + seed)
        chain = random_chain(rng, (3, 12, 12, 12, 3))
        query = _near_max_disjuncts(rng, chain, [3e-2, 3e-2, 3e-2])
        for joint in ("joint", "separate"):
            result = solve(query, SolverOptions(timeout=20, strategy="relu-bab", bab=BranchAndBoundOptions(joint_disjuncts=joint),
                                                falsify=False))
            assert result.verdict == "unsat", result.reason
            counts[joint] += result.statistics.subproblems
    assert counts["separate"] > 3 * 6  # the cases do need splits ...
    assert counts["joint"] < counts["separate"]  # ... and the joint search needs fewer


def test_stacked_objective_bounds_each_entry_as_its_own_objective():
    """A per-batch objective (entry t of a batch: objective t) gives each sub-problem the bound that
    objective alone gives it, with any weights."""
    rng = np.random.default_rng(3)
    chain = random_chain(rng, (4, 8, 8, 3))
    lower = rng.uniform(-1.0, 0.0, (1, 4))
    region = crown.Region(lower, lower + 0.5)
    from reluverify.solver.bounds.deeppoly import deeppoly_bounds

    first = deeppoly_bounds(chain, region.lower, region.upper)
    relaxation = crown.Relaxation(first.pre_lower, first.pre_upper)
    shared = [crown.Objective(rng.normal(size=(r, 3)), rng.normal(size=(r, 4)), rng.normal(size=r)) for r in (1, 2, 3)]
    stacked = crown.Objective.stacked(shared)
    batch = np.array([2, 0, 1, 2])
    zeros = np.zeros(batch.size, dtype=np.int64)
    params = crown.initial_parameters(relaxation.take(zeros), 1, 2, region.take(zeros), with_beta=True)
    weights = rng.random((batch.size, 1, 3))
    for i, t in enumerate(batch):  # the padding repeats the last row: its weight joins that row's
        r = shared[t].num_rows
        weights[i, 0, r - 1] += weights[i, 0, r:].sum()
        weights[i, 0, r:] = 0.0
    weights /= weights.sum(axis=2, keepdims=True)
    params.weights = weights
    joint = crown.bound(chain, region.take(zeros), relaxation.take(zeros), stacked.take(batch), params)
    for i, t in enumerate(batch):
        alone = crown.Parameters([a[i : i + 1] for a in params.alpha], [b[i : i + 1] for b in params.beta], None,
                                 weights[i : i + 1, :, : shared[t].num_rows])
        single = crown.bound(chain, region, relaxation, shared[t], alone)
        assert joint.value[i, 0] == pytest.approx(single.value[0, 0], rel=1e-12, abs=1e-12)
