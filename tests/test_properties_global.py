"""Def. 2 ((delta, eps)-global robustness): two copies, exact partitioning, z3 and brute force."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from reluverify.onnx_import import load_onnx
from reluverify.properties.global_robustness import GlobalRobustness, partition
from reluverify.properties.inputs import Domain
from reluverify.solver import SolverOptions
from test_properties_oracles import assert_breaks_global, forward, random_net, ramp_net, z3_property

OPTIONS = SolverOptions(timeout=60)
RELU_SPLIT = SolverOptions(timeout=60, strategy="relu-split")
"""Input splitting does not use the rows |x1 - x2| <= delta to shrink x2's box, so a robust global
query over a wide domain can stall in it even on a tiny network (reported to the solver's owner);
Reluplex alone decides those in a second or two."""
REPO = Path(__file__).resolve().parents[1]


def brute_force_max_difference(net, domain, delta, norm, per_dim=41, offsets=9) -> float:
    """max over a grid of pairs (x1, x2 = x1 + d) in the domain of max_l |C(x1, l) - C(x2, l)|."""
    lo, hi = np.asarray(domain[0], float), np.asarray(domain[1], float)
    n = lo.size
    axes = [np.linspace(a, b, per_dim) for a, b in zip(lo, hi)]
    x1 = np.stack([g.reshape(-1) for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    steps = np.linspace(-delta, delta, offsets)
    best = 0.0
    for d in itertools.product(steps, repeat=n):
        d = np.asarray(d)
        dist = np.abs(d).max() if norm == "inf" else np.abs(d).sum()
        if dist > delta + 1e-15:
            continue
        x2 = x1 + d
        inside = np.all((x2 >= lo) & (x2 <= hi), axis=1)
        if inside.any():
            diff = np.abs(forward(net, x1[inside]) - forward(net, x2[inside])).max()
            best = max(best, float(diff))
    return best


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_tiny_networks_agree_with_z3_two_copies(tmp_path, norm):
    verdicts = set()
    for seed in range(3):
        net = random_net(tmp_path, 40 + seed, (2, 4, 3, 2))
        domain = (np.array([-1.0, -0.5]), np.array([0.5, 1.0]))
        for delta, epsilon, parts in ((0.05, 0.5, 1), (0.2, 0.3, 3), (0.1, 0.02, 4)):
            prop = GlobalRobustness(net.network, Domain(*domain), delta, epsilon, norm, parts)
            result = prop.check(OPTIONS)
            expected, _ = z3_property(net, "global", delta=delta, epsilon=epsilon, norm=norm, domain=domain)
            assert result.solver_verdict == expected, (seed, delta, epsilon, parts, result.summary())
            if expected == "sat":
                assert_breaks_global(net, result, delta, epsilon, norm, domain)
            verdicts.add(result.verdict)
    assert verdicts == {"robust", "not robust"}


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_brute_force_pairs_bracket_the_answer(tmp_path, norm):
    """On a 2-input network: eps just above the brute-force max difference is robust only if the
    true max is below it; eps at 0.9 x the brute-force max must be violated."""
    net = random_net(tmp_path, 5, (2, 5, 4, 2))
    domain = (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    delta = 0.1
    seen = brute_force_max_difference(net, domain, delta, norm)
    below = GlobalRobustness(net.network, Domain(*domain), delta, 0.9 * seen, norm, 2).check(OPTIONS)
    assert_breaks_global(net, below, delta, 0.9 * seen, norm, domain)
    above = GlobalRobustness(net.network, Domain(*domain), delta, 1.5 * seen, norm, 2).check(RELU_SPLIT)
    assert above.solver_verdict == z3_property(net, "global", delta=delta, epsilon=1.5 * seen, norm=norm,
                                               domain=domain)[0]
    if above.verdict == "not robust":  # a sharper pair than the grid saw: it must be a real one
        assert_breaks_global(net, above, delta, 1.5 * seen, norm, domain)


@pytest.mark.parametrize("inputs", [1, 2])
@pytest.mark.parametrize("parts", [2, 4, 5])
def test_pairs_that_straddle_a_border_are_not_lost(tmp_path, inputs, parts):
    """The ramp's only violating pairs straddle x_0 = 0.5, a border of the partition.

    Taking x1 and x2 from the same sub-domain misses them all; growing x2's box by delta finds one.
    """
    net = ramp_net(tmp_path, inputs=inputs)
    domain = Domain(np.zeros(inputs), np.ones(inputs))
    delta, epsilon = 0.2, 1.5
    prop = GlobalRobustness(net.network, domain, delta, epsilon, "inf", parts)
    subs = prop.subdomains()
    assert len(subs) == parts
    assert any(np.isclose(s.upper[0], 0.5) for s in subs)  # 0.5 is a border along x_0
    # every violating pair straddles: within any single sub-domain the property holds
    for sub in subs:
        naive = GlobalRobustness(net.network, sub, delta, epsilon, "inf").check(OPTIONS)
        assert naive.verdict == "robust", sub
    result = prop.check(OPTIONS)
    assert_breaks_global(net, result, delta, epsilon, "inf", (domain.lower, domain.upper))
    x1, x2 = result.counterexample.inputs, result.counterexample.point
    assert (x1[0] - 0.5) * (x2[0] - 0.5) < 0  # on opposite sides of the border
    assert result.counterexample.subdomain is not None
    assert result.subdomain_verdicts[result.counterexample.subdomain] == "sat"
    # and the same with the sub-domains in parallel, and without the symmetry reduction
    parallel = prop.check(OPTIONS, jobs=2)
    assert_breaks_global(net, parallel, delta, epsilon, "inf", (domain.lower, domain.upper))
    both_signs = GlobalRobustness(net.network, domain, delta, epsilon, "inf", parts, symmetric=False).check(OPTIONS)
    assert both_signs.verdict == "not robust"


def test_ramp_robust_just_below_the_threshold(tmp_path):
    net = ramp_net(tmp_path, inputs=1)
    domain = Domain(np.zeros(1), np.ones(1))
    for parts in (1, 2, 3):
        assert GlobalRobustness(net.network, domain, 0.149, 1.5, "inf", parts).check(OPTIONS).verdict == "robust"
        assert GlobalRobustness(net.network, domain, 0.149, 1.5, "1", parts).check(OPTIONS).verdict == "robust"


def test_partition_covers_the_domain_with_the_requested_count():
    domain = Domain(np.array([0.0, -1.0, 2.0]), np.array([4.0, 1.0, 2.0]))
    for parts in (1, 2, 3, 5, 8):
        subs = partition(domain, parts)
        assert len(subs) == parts
        volume = sum(np.prod((s.upper - s.lower)[:2]) for s in subs)
        assert np.isclose(volume, 8.0)
        for s in subs:
            assert np.all(s.lower >= domain.lower) and np.all(s.upper <= domain.upper)
    # a point domain cannot be cut
    assert len(partition(Domain(np.ones(2), np.ones(2)), 4)) == 1


def test_query_layout_two_copies(tmp_path):
    net = random_net(tmp_path, 1, (2, 3, 2))
    domain = Domain(np.zeros(2), np.ones(2))
    prop = GlobalRobustness(net.network, domain, 0.1, 0.2, "1", 2)
    queries = prop.queries()
    assert len(queries) == 2
    q = queries[0]
    assert q.networks == (net.network, net.network)
    assert q.num_inputs == 6 and q.num_auxiliary == 2 and q.num_outputs == 4
    assert len(q.disjuncts) == 2  # symmetric: y1_l - y2_l >= eps for each label
    # x1 in the sub-domain, x2 in the domain around it grown by delta
    sub = prop.subdomains()[0]
    np.testing.assert_array_equal(q.lower[:2], sub.lower)
    np.testing.assert_allclose(q.upper[2:4], np.minimum(sub.upper + 0.1, 1.0))
    assert len(GlobalRobustness(net.network, domain, 0.1, 0.2, symmetric=False).query().disjuncts) == 4


def test_epsilon_zero_is_violated_and_delta_zero_holds(tmp_path):
    net = random_net(tmp_path, 6, (2, 4, 2))
    domain = (np.zeros(2), np.ones(2))
    zero_eps = GlobalRobustness(net.network, Domain(*domain), 0.1, 0.0).check(OPTIONS)
    assert_breaks_global(net, zero_eps, 0.1, 0.0, "inf", domain)
    zero_delta = GlobalRobustness(net.network, Domain(*domain), 0.0, 1e-3, "1", 2).check(OPTIONS)
    assert zero_delta.verdict == "robust"


def test_a_shipped_network_with_300_relus_per_copy():
    """acas_like (5 -> 6 x 50 -> 5): a small domain is robust; a loose eps on a larger one is not."""
    network = load_onnx(REPO / "networks" / "acas_like.onnx")
    assert network.num_relus == 300
    centre = np.array([0.1, 0.1, 0.1, 0.1, 0.1])
    tight = GlobalRobustness(network, Domain(centre - 0.01, centre + 0.01), 0.005, 0.5).check(OPTIONS)
    assert tight.verdict == "robust", tight.summary()
    loose = GlobalRobustness(network, Domain(centre - 0.2, centre + 0.2), 0.05, 0.05, partitions=4).check(OPTIONS)
    assert loose.verdict == "not robust"
    x1, x2 = loose.counterexample.inputs, loose.counterexample.point
    assert np.abs(x1 - x2).max() <= 0.05 + 1e-9
    y1, y2 = network.evaluate(x1), network.evaluate(x2)
    assert np.abs(y1 - y2).max() >= 0.05 - 1e-5


def test_adaptive_refinement_decides_what_a_small_budget_cannot(tmp_path):
    """With a node budget too small for the whole domain (each query then answers ``unknown``,
    deterministically, unlike a time limit), halving undecided sub-domains -- which also shrinks
    x2's box -- decides the query of test_brute_force_pairs_bracket_the_answer."""
    net = random_net(tmp_path, 5, (2, 5, 4, 2))
    domain = (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    epsilon = 1.5 * brute_force_max_difference(net, domain, 0.1, "inf")
    # the queries' refinement alone (the screening's bounds would decide this small domain at once)
    prop = GlobalRobustness(net.network, Domain(*domain), 0.1, epsilon, "inf", 2, screen=False)
    budget = SolverOptions(timeout=60, node_budget=3, strategy="relu-split")
    assert prop.check(budget).verdict == "unknown"  # without refinement the budget is too small
    result = prop.check(budget, subdomain_timeout=30)
    assert result.verdict == "robust", result.summary()
    assert result.parameters["rounds"] >= 2 and len(result.subdomains) > 2
    assert all(s["verdict"] == "unsat" for s in result.subdomains)
    # the leaves still cover the domain exactly once (halving keeps the volume)
    volume = sum(np.prod(np.subtract(s["upper"], s["lower"])) for s in result.subdomains)
    assert np.isclose(volume, 4.0)


def test_adaptive_refinement_reports_the_violated_leaf(tmp_path):
    net = ramp_net(tmp_path, inputs=2)
    domain = Domain(np.zeros(2), np.ones(2))
    result = GlobalRobustness(net.network, domain, 0.2, 1.5, "inf", 3).check(OPTIONS, subdomain_timeout=5, jobs=2)
    assert_breaks_global(net, result, 0.2, 1.5, "inf", (domain.lower, domain.upper))
    leaf = result.subdomains[result.counterexample.subdomain]
    assert leaf["verdict"] == "sat"
    assert np.all(result.counterexample.inputs >= np.array(leaf["lower"]) - 1e-12)
    assert np.all(result.counterexample.inputs <= np.array(leaf["upper"]) + 1e-12)
