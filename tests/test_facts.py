"""Learned phase facts are reused on sub-domains of the domain they were proven on, never elsewhere."""

from __future__ import annotations

import numpy as np

from reluverify.network import ReluChain
from reluverify.query import box_query
from reluverify.solver import SolverOptions, solve
from reluverify.solver.facts import ACTIVE, INACTIVE, PhaseFacts, chain_fingerprint


def _chain():
    # h1 = relu(x), h2 = relu(-x); y = h1 - 0.5 h2  (phase of each relu depends on the sign of x)
    return ReluChain((np.array([[1.0], [-1.0]]), np.array([[1.0, -0.5]])), (np.zeros(2), np.zeros(1)))


def test_facts_on_a_box_report_fixed_phases():
    chain = _chain()
    query = box_query(chain.to_network(), [0.5], [1.0], [[(np.array([1.0]), 10.0)]])
    result = solve(query, SolverOptions(timeout=10))
    assert result.verdict == "sat"
    facts = result.facts
    assert list(facts.phases) == [ACTIVE, INACTIVE]
    assert facts.covers(chain_fingerprint(chain), np.array([0.6]), np.array([0.9]))
    assert not facts.covers(chain_fingerprint(chain), np.array([0.4]), np.array([0.9]))  # not a sub-domain
    assert not facts.covers("another network", np.array([0.6]), np.array([0.9]))


def test_facts_are_used_on_sub_domains_only():
    chain = _chain()
    network = chain.to_network()
    fingerprint = chain_fingerprint(chain)
    # A deliberately false "fact" (relu 0 inactive, i.e. x <= 0) claimed on [0.5, 1]. Where it is used,
    # it contradicts x >= 0.5 and refutes everything; so the verdict shows whether it was used.
    wrong = PhaseFacts(fingerprint, np.array([0.5]), np.array([1.0]), np.array([INACTIVE, INACTIVE]))
    # outside its domain ([0.2, 1] is not inside [0.5, 1]) it must be ignored: y >= 0.7 holds at x = 0.8
    outside = box_query(network, [0.2], [1.0], [[(np.array([-1.0]), -0.7)]])
    assert solve(outside, SolverOptions(timeout=10, falsify=False), facts=[wrong]).verdict == "sat"
    # inside its domain it is used (and, being false, refutes the query): reuse happens on sub-domains
    inside = box_query(network, [0.6], [0.9], [[(np.array([-1.0]), -0.7)]])
    assert solve(inside, SolverOptions(timeout=10, falsify=False), facts=[wrong]).verdict == "unsat"


def test_true_facts_do_not_change_verdicts_on_sub_domains(rng):
    sizes = [2, 6, 6, 2]
    chain = ReluChain(
        tuple(rng.normal(size=(b, a)) for a, b in zip(sizes, sizes[1:])), tuple(rng.normal(size=b) for b in sizes[1:])
    )
    network = chain.to_network()
    parent = box_query(network, [-1.0, -1.0], [1.0, 1.0], [[(np.array([1.0, -1.0]), 0.0)]])
    facts = solve(parent, SolverOptions(timeout=10)).facts
    for lo, hi in [([-1.0, -1.0], [0.0, 0.0]), ([0.0, -1.0], [1.0, 0.0]), ([-0.5, 0.2], [0.3, 0.9])]:
        for rhs in (-2.0, 0.0, 2.0):
            child = box_query(network, lo, hi, [[(np.array([1.0, -1.0]), rhs)]])
            plain = solve(child, SolverOptions(timeout=10, falsify=False))
            reused = solve(child, SolverOptions(timeout=10, falsify=False), facts=[facts])
            assert plain.verdict == reused.verdict
