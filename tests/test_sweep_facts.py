"""Sharing learned ReLU phase facts between runs: on sub-domains of where they were proven, never elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from reluverify.network import ReluChain
from reluverify.properties.global_robustness import GlobalRobustness
from reluverify.properties.runner import run_queries, shared_facts
from reluverify.query import box_query
from reluverify.solver import SolverOptions
from reluverify.solver.facts import INACTIVE, UNFIXED, PhaseFacts, chain_fingerprint


def _sign_chain():
    # h1 = relu(x), h2 = relu(-x); y = h1 - 0.5 h2 (each relu's phase is the sign of x)
    return ReluChain((np.array([[1.0], [-1.0]]), np.array([[1.0, -0.5]])), (np.zeros(2), np.zeros(1)))


@pytest.mark.parametrize("jobs", [1, 2])
def test_facts_reach_sub_domain_queries_and_never_a_sibling(jobs):
    """A deliberately false fact shows where it was used: it refutes the queries it is applied to."""
    chain = _sign_chain()
    network = chain.to_network()
    # claimed on [0.5, 1]: relu 0 inactive (false there: x >= 0.5 makes it active)
    wrong = PhaseFacts(chain_fingerprint(chain), np.array([0.5]), np.array([1.0]), np.array([INACTIVE, INACTIVE]))
    row = [[(np.array([-1.0]), -0.7)]]  # y >= 0.7, true at x = 0.8 and at x = 1
    inside = box_query(network, [0.6], [0.9], row)  # a sub-domain of [0.5, 1]
    sibling = box_query(network, [0.0], [0.5], [[(np.array([1.0]), 0.0)]])  # y <= 0: true at x = 0
    overlapping = box_query(network, [0.4], [1.0], row)  # overlaps [0.5, 1] but is not inside it
    options = SolverOptions(timeout=20, falsify=False)
    for facts in ([wrong], [wrong.to_dict()]):  # as values or as the plain dicts workers receive
        assert run_queries([inside], options.with_jobs(jobs), facts=facts, prioritize=False).verdict == "unsat"  # used
        assert run_queries([sibling], options.with_jobs(jobs), facts=facts).verdict == "sat"  # ignored
        assert run_queries([overlapping], options.with_jobs(jobs), facts=facts).verdict == "sat"  # ignored
    for query in (inside, sibling, overlapping):
        assert run_queries([query], options.with_jobs(jobs), facts=[]).verdict == "sat"


def test_shared_facts_cover_every_sub_domain_and_fix_phases():
    network = _random_network(3)
    prop = GlobalRobustness(network, DOMAIN, delta=0.1, epsilon=0.5, partitions=4)
    queries = prop.queries()
    facts = [PhaseFacts.from_dict(f) for f in shared_facts(queries, SolverOptions())]
    assert len(facts) == 1
    fingerprint = chain_fingerprint(queries[0].relu_chain())
    n_x = queries[0].relu_chain().input_size
    for query in queries:
        assert facts[0].covers(fingerprint, query.lower[:n_x], query.upper[:n_x])
    assert np.any(facts[0].phases != UNFIXED)
    # a query on another network gets none
    other = GlobalRobustness(_random_network(4), DOMAIN, 0.1, 0.5).query()
    assert shared_facts([queries[0], other], SolverOptions()) == []


DOMAIN = ([0.0, 0.0], [0.4, 0.4])


def _random_network(seed: int, sizes=(2, 8, 8, 2)):
    rng = np.random.default_rng(seed)
    weights = tuple(rng.normal(0, 1 / np.sqrt(a), (b, a)) for a, b in zip(sizes, sizes[1:]))
    biases = tuple(rng.normal(0, 0.3, b) for b in sizes[1:])
    return ReluChain(weights, biases).to_network()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sharing_true_facts_never_changes_a_verdict(seed):
    network = _random_network(seed)
    options = SolverOptions(timeout=30)
    verdicts = set()
    for delta, epsilon in ((0.02, 0.2), (0.1, 0.05)):
        prop = GlobalRobustness(network, DOMAIN, delta, epsilon, partitions=4)
        queries = prop.queries()
        alone = run_queries(queries, options, facts=[])
        shared = run_queries(queries, options)  # the hull's facts, by default
        parallel = run_queries(queries, options.with_jobs(2))
        assert alone.verdict == shared.verdict == parallel.verdict
        verdicts.add(alone.verdict)
        if alone.verdict == "unsat":
            assert alone.verdicts == shared.verdicts == parallel.verdicts
        # a parent's learned facts (Outcome.facts) passed on to its halves: same verdicts again
        parent = run_queries([prop.query()], options)
        assert parent.facts[0] is not None
        halves = run_queries(queries, options, facts=[parent.facts[0]])
        assert halves.verdict == alone.verdict
    assert verdicts <= {"sat", "unsat"}
