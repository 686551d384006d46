"""ReLU branch and bound's proof recorder (relu_bab.recorder) and its sharing contract (relu_bab.search).

A search that records a proof leaves a tree whose leaves cover it: every node is either split in
two (the two phases of one ReLU) or a leaf with evidence, and the leaves' shares ``2^-depth`` sum to
1. A search without a proof records nothing and does no recording work. The search meets
:class:`~reluverify.solver.search.ShareableSearch` by behaviour: what it gives away and keeps is
what it held, and the shares it refutes add up to its whole tree.
"""

from __future__ import annotations

import numpy as np
import pytest

from random_queries import random_chain
from reluverify.solver.bounds import alpha_crown as crown
from reluverify.solver.bounds.deeppoly import deeppoly_bounds
from reluverify.solver.certificate import RELU_ACTIVE, RELU_INACTIVE, ProofTree
from reluverify.solver.options import SolverOptions
from reluverify.solver.relu_bab import Disjunction, bound_root, relu_bab_search, root_bounds
from reluverify.solver.relu_bab.recorder import NO_PROOF, ProofRecorder, recorder_for
from reluverify.solver.relu_bab import search as search_module
from reluverify.solver.relu_bab.search import _Search
from reluverify.solver.result import Statistics


def _near_max_case(seed: int):
    """A 3x10x10x10x2 network and one disjunct ``c @ y >= t`` just above the largest sampled value:
    unsat, and deep enough to need splits (seeds 0 and 3)."""
    rng = np.random.default_rng(seed)
    chain = random_chain(rng, (3, 10, 10, 10, 2))
    lower = rng.uniform(-1.0, 0.0, 3)
    upper = lower + rng.uniform(0.3, 1.0, 3)
    samples = chain.evaluate(rng.uniform(lower, upper, (4000, 3)))
    c = rng.normal(size=2)
    top = float((samples @ c).max())
    target = Disjunction(np.concatenate([np.zeros(3), -c])[None, :], np.array([-(top + 0.01 * (1.0 + abs(top)))]))
    return chain, target, crown.Region(lower[None, :], upper[None, :]), deeppoly_bounds(chain, lower[None, :], upper[None, :])


def _never(*_args):
    raise AssertionError("no leaf or candidate expected")


@pytest.mark.parametrize("seed", [0, 3])
def test_a_recorded_proof_has_leaves_covering_its_tree(seed):
    chain, target, region, first = _near_max_case(seed)
    options = SolverOptions(proof=True, falsify=False)
    tree = ProofTree(0, 1, 0)
    statistics = Statistics()
    outcome = relu_bab_search(chain, [target], region, root_bounds(chain, region, options, first), options, statistics,
                              None, lambda v, t: False, _never, tree=tree)
    assert outcome.status == "unsat", outcome.reason
    parent, kind, index = np.array(tree.parent), np.array(tree.kind), np.array(tree.index)
    assert statistics.relu_splits > 0 and parent.size == 1 + 2 * statistics.relu_splits
    children: dict[int, list[int]] = {}
    for node in range(1, parent.size):
        children.setdefault(int(parent[node]), []).append(node)
    for node, pair in children.items():  # a split node: the two phases of one ReLU
        assert sorted(kind[pair].tolist()) == [RELU_ACTIVE, RELU_INACTIVE] and index[pair[0]] == index[pair[1]]
    leaves = tree.leaf_node
    assert len(leaves) == len(set(leaves)) == tree.num_leaves
    assert set(leaves) == set(range(parent.size)) - set(children)  # every unsplit node is a leaf, and only those

    def depth(node: int) -> int:
        return 0 if node == 0 else 1 + depth(int(parent[node]))

    assert sum(0.5 ** depth(node) for node in leaves) == pytest.approx(1.0, abs=1e-12)


def test_the_recorder_numbers_children_and_keeps_evidence():
    chain, target, region, first = _near_max_case(0)
    tree = ProofTree(0, 1, 0)
    recorder = ProofRecorder(tree, chain, rows=1)
    nodes = recorder.splits(np.array([0, 0]), np.array([0, 2]), np.array([3, 1]))  # ReLUs 3 and 21 of node 0
    np.testing.assert_array_equal(nodes, [1, 3, 2, 4])  # active children first, then inactive ones
    assert tree.index[1:] == [3, 3, 21, 21] and tree.kind[1:] == [RELU_ACTIVE, RELU_INACTIVE] * 2
    options = SolverOptions(proof=True)
    root = root_bounds(chain, region, options, first)
    start = bound_root(chain, [target], region, root, options)
    relaxation = root.relaxation.take(np.zeros(4, dtype=np.int64))
    recorder.bound_leaves(nodes, relaxation, start.params.take(np.zeros(4, dtype=np.int64)), np.array([True, False, False, True]))
    assert tree.leaf_node == [1, 4] and tree.weights[0].shape == (2, 1)
    recorder.lp_leaf(2, (np.array([0]), np.array([1.5])))
    assert tree.leaf_node == [1, 4, 2] and tree.num_leaves == 3
    root.interm_rows.append((1, np.array([0]), np.array([1]), np.zeros((1, 30))))
    recorder.root(root)
    assert tree.bounds_at == "root" and len(tree.interm) == 1


class _Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"the null recorder looked at {name}")


def test_the_null_recorder_records_nothing_and_does_no_work(monkeypatch):
    assert recorder_for(None, None, 0) is NO_PROOF
    np.testing.assert_array_equal(NO_PROOF.splits(np.array([5, 7]), _Untouchable(), _Untouchable()), np.zeros(4))
    NO_PROOF.bound_leaves(_Untouchable(), _Untouchable(), _Untouchable(), _Untouchable())
    NO_PROOF.lp_leaf(0, _Untouchable())
    NO_PROOF.root(_Untouchable())
    for name in ("add_split", "add_bound_leaves", "add_lp_leaf", "add_interm_rows"):  # no tree is ever written
        monkeypatch.setattr(ProofTree, name, _never)
    chain, target, region, first = _near_max_case(3)
    options = SolverOptions(falsify=False)
    statistics = Statistics()
    outcome = relu_bab_search(chain, [target], region, root_bounds(chain, region, options, first), options, statistics,
                              None, lambda v, t: False, _never)
    assert outcome.status == "unsat" and statistics.relu_splits > 0


class _Clock:
    """A clock that advances one second per reading: ``work(1.5)`` is exactly one round."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now


def test_the_search_meets_the_sharing_contract(monkeypatch):
    """What ``split_off`` gives away plus what the search keeps is what it held; payloads ``add`` back
    whole; after ``reset_statistics`` the shares refuted before and after add up to the whole tree."""
    monkeypatch.setattr(search_module, "time", _Clock())
    chain, target, region, first = _near_max_case(0)
    options = SolverOptions(falsify=False)
    search = _Search(chain, [target], region, options, Statistics(), None, lambda v, t: False, _never, None, None)
    root = root_bounds(chain, region, options, first)
    start = bound_root(chain, [target], region, root, options)
    search.settle(root.relaxation, start.params, start.values[None, :], start.vertices[None], np.zeros(1, np.int64),
                  np.zeros(1, np.int64))
    assert search.open_count() == 1
    assert search.work(1.5) is None  # one round
    held = search.open_count()
    assert held >= 2 and search.statistics.subproblems > 1
    parts = search.split_off(2)
    assert len(parts) == 2 and search.open_count() == 0
    assert sum(part["value"].shape[0] for part in parts) == held
    for part in parts:
        search.add(part)
    assert search.open_count() == held
    before = search.proven
    search.reset_statistics()
    assert search.proven == 0.0 and search.undecided == [] and search.statistics.subproblems == 0
    assert search.work(float("inf")) is None and search.open_count() == 0
    assert before + search.proven == pytest.approx(1.0, abs=1e-12)
    search.proven += before  # what the caller kept from before the reset
    assert search.finish().status == "unsat"
