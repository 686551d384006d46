"""Def. 1 (delta-local robustness), L-infinity and L1: against z3 on the definition, and the semantics."""

from __future__ import annotations

import numpy as np
import pytest

from reluverify.properties.local import LocalRobustness
from reluverify.properties.inputs import Domain
from reluverify.query import Query
from reluverify.solver import SolverOptions
from reluverify.solver.z3_encoding import decide_with_z3
from test_properties_oracles import (
    assert_breaks_local,
    breaks_local,
    difference_net,
    forward,
    label_of,
    random_net,
    sample_ball,
    z3_property,
)

OPTIONS = SolverOptions(timeout=60)


def check_against_oracles(net, point, delta, norm, domain=None, decision="max", rng=None):
    """The verdict agrees with z3 on the definition; sat breaks Def. 1; unsat survives sampling."""
    prop = LocalRobustness(net.network, point, delta, norm, None if domain is None else Domain(*domain), decision)
    result = prop.check(OPTIONS)
    label = label_of(net, point, decision)
    expected, _ = z3_property(net, "local", point=point, delta=delta, norm=norm, domain=domain, label=label,
                              decision=decision)
    assert result.solver_verdict == expected, (result.summary(), expected)
    if expected == "sat":
        assert_breaks_local(net, result, point, delta, norm, domain, decision)
    else:
        assert result.verdict == "robust" and result.counterexample is None
        samples = sample_ball(rng or np.random.default_rng(0), point, delta, norm, domain)
        y = forward(net, samples)
        keeps = (y.argmax(axis=1) if decision == "max" else y.argmin(axis=1)) == label
        assert keeps.all(), f"a sampled point of the ball changes the label: {samples[~keeps][0]}"
    return result


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_random_networks_agree_with_z3_and_the_definition(tmp_path, norm):
    rng = np.random.default_rng(7)
    verdicts = set()
    for seed in range(6):
        net = random_net(tmp_path, seed, (3, 6, 5, 3))
        domain = (np.full(3, -1.0), np.full(3, 1.0))
        point = rng.uniform(-0.6, 0.6, 3)
        for delta in (0.02, 0.15, 0.5):
            result = check_against_oracles(net, point, delta, norm, domain if seed % 2 else None, rng=rng)
            verdicts.add(result.verdict)
    assert verdicts == {"robust", "not robust"}  # both answers were exercised


def test_compiled_query_agrees_with_the_z3_encoding(tmp_path):
    """The solver and the z3 encoding of the same compiled query (L1 with auxiliaries included)."""
    net = random_net(tmp_path, 11, (2, 5, 4, 3))
    for norm in ("inf", "1"):
        for delta in (0.05, 0.3, 0.8):
            query = LocalRobustness(net.network, [0.1, -0.2], delta, norm).query()
            assert isinstance(query, Query)
            assert query.num_auxiliary == (2 if norm == "1" else 0)
            ours = LocalRobustness(net.network, [0.1, -0.2], delta, norm).check(OPTIONS)
            assert ours.solver_verdict == decide_with_z3(query, timeout_s=60).verdict


def test_difference_network_boundary_exactly(tmp_path):
    """From (0.5, 0.3) the label 0 changes at L-inf radius 0.1 and L1 radius 0.2: on the boundary."""
    net = difference_net(tmp_path)
    point = np.array([0.5, 0.3])
    robust = LocalRobustness(net.network, point, 0.0999, "inf").check(OPTIONS)
    assert robust.verdict == "robust" and robust.label == 0
    on_boundary = LocalRobustness(net.network, point, 0.1, "inf").check(OPTIONS)
    assert_breaks_local(net, on_boundary, point, 0.1, "inf")
    assert on_boundary.counterexample.violated == "label 1 scores >= label 0"
    assert LocalRobustness(net.network, point, 0.1999, "1").check(OPTIONS).verdict == "robust"
    l1 = LocalRobustness(net.network, point, 0.2, "1").check(OPTIONS)
    assert_breaks_local(net, l1, point, 0.2, "1")
    assert l1.counterexample.distance <= 0.2 + 1e-9


def test_point_on_the_decision_boundary_is_a_tie(tmp_path):
    net = difference_net(tmp_path)
    for point in ([0.3, 0.3], [0.3, 0.3 + 1e-9]):
        prop = LocalRobustness(net.network, point, 0.05)
        assert prop.label is None and prop.ties == (0, 1)
        result = prop.check(OPTIONS)
        assert result.verdict == "tie" and result.ties == (0, 1) and result.holds is False
        assert result.solver_verdict == "" and result.counterexample is None
        assert "share the top score" in result.reason
    # just off the boundary the label is unique again, and a tiny ball crosses it
    prop = LocalRobustness(net.network, [0.3 + 1e-3, 0.3], 1e-3)
    assert prop.label == 0 and prop.ties == ()
    result = prop.check(OPTIONS)
    assert result.verdict == "not robust" and breaks_local(net, result.counterexample.inputs, 0)


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_delta_zero_is_robust_unless_tied(tmp_path, norm):
    net = random_net(tmp_path, 3, (2, 6, 3))
    point = np.array([0.25, -0.4])
    result = LocalRobustness(net.network, point, 0.0, norm).check(OPTIONS)
    assert result.verdict == "robust"
    tie = LocalRobustness(difference_net(tmp_path).network, [0.2, 0.2], 0.0, norm).check(OPTIONS)
    assert tie.verdict == "tie"


def test_domain_clips_the_ball(tmp_path):
    """The ball reaches across the boundary only outside the domain: robust within it."""
    net = difference_net(tmp_path)
    point = np.array([0.5, 0.3])
    free = LocalRobustness(net.network, point, 0.3).check(OPTIONS)
    assert free.verdict == "not robust"
    # inside x1 <= 0.35 and x0 >= 0.45 the difference stays >= 0.1 > 0
    domain = Domain(np.array([0.45, -1.0]), np.array([1.0, 0.35]))
    clipped = LocalRobustness(net.network, point, 0.3, domain=domain).check(OPTIONS)
    assert clipped.verdict == "robust"
    check_against_oracles(net, point, 0.3, "1", (np.array([0.45, -1.0]), np.array([1.0, 0.35])))


def test_decision_min_uses_the_lowest_score(tmp_path):
    net = random_net(tmp_path, 5, (3, 6, 4))
    rng = np.random.default_rng(3)
    for delta in (0.05, 0.4):
        point = rng.uniform(-0.5, 0.5, 3)
        result = check_against_oracles(net, point, delta, "inf", decision="min")
        assert result.label == int(np.argmin(forward(net, point)))
        assert "lowest score" in result.description


def test_disjuncts_list_the_closest_competitor_first(tmp_path):
    net = random_net(tmp_path, 2, (2, 5, 4))
    point = np.array([0.3, 0.1])
    prop = LocalRobustness(net.network, point, 0.1)
    y = forward(net, point)
    label = prop.label
    others = sorted((l for l in range(4) if l != label), key=lambda l: y[label] - y[l])
    assert [d.label for d in prop.query().disjuncts] == [f"label {l} scores >= label {label}" for l in others]


def test_parallel_disjuncts_give_the_same_verdicts(tmp_path):
    net = random_net(tmp_path, 9, (3, 8, 4))
    point = np.array([0.1, -0.3, 0.2])
    for delta in (0.02, 0.6):
        prop = LocalRobustness(net.network, point, delta)
        sequential = prop.check(OPTIONS)
        # one task per disjunct; two groups; the default: one task whose search two processes share
        for split, tasks in ((True, 3), (2, 2), (None, 1)):
            parallel = prop.check(OPTIONS, jobs=2, split_disjuncts=split)
            assert sequential.verdict == parallel.verdict
            if parallel.verdict == "not robust":
                assert_breaks_local(net, parallel, point, delta, "inf")
                assert parallel.counterexample.violated == prop.query().disjuncts[parallel.counterexample.disjunct].label
            else:
                assert parallel.queries == tasks and parallel.disjunct_verdicts == ["unsat"] * 3
