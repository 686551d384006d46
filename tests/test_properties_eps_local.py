"""Def. 3 ((delta, eps)-local robustness): against z3 on the definition, eps = 0, delta = 0, the encoding."""

from __future__ import annotations

import numpy as np
import pytest

from reluverify.properties.eps_local import EpsLocalRobustness
from reluverify.properties.inputs import Domain
from reluverify.solver import SolverOptions
from test_properties_oracles import (
    assert_breaks_eps,
    difference_net,
    forward,
    random_net,
    sample_ball,
    z3_property,
)

OPTIONS = SolverOptions(timeout=60)


def check_against_oracles(net, point, delta, epsilon, norm, domain=None, rng=None):
    prop = EpsLocalRobustness(net.network, point, delta, epsilon, norm, None if domain is None else Domain(*domain))
    result = prop.check(OPTIONS)
    expected, _ = z3_property(net, "eps", point=point, delta=delta, epsilon=epsilon, norm=norm, domain=domain)
    assert result.solver_verdict == expected, (result.summary(), expected)
    if expected == "sat":
        assert_breaks_eps(net, result, point, delta, epsilon, norm, domain)
    else:
        assert result.verdict == "robust"
        samples = sample_ball(rng or np.random.default_rng(0), point, delta, norm, domain)
        change = np.abs(forward(net, samples) - forward(net, point)).max()
        assert change < epsilon, f"a sampled point moves a score by {change} >= eps {epsilon}"
    return result


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_random_networks_agree_with_z3_and_the_definition(tmp_path, norm):
    rng = np.random.default_rng(11)
    verdicts = set()
    for seed in range(4):
        net = random_net(tmp_path, 20 + seed, (3, 6, 4, 3))
        point = rng.uniform(-0.5, 0.5, 3)
        domain = (np.full(3, -1.0), np.full(3, 1.0)) if seed % 2 else None
        for delta, epsilon in ((0.02, 0.1), (0.1, 0.05), (0.3, 0.4), (0.3, 2.0)):
            verdicts.add(check_against_oracles(net, point, delta, epsilon, norm, domain, rng).verdict)
    assert verdicts == {"robust", "not robust"}


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_epsilon_zero_is_violated_at_the_point_itself(tmp_path, norm):
    """|C(x0) - C(x0)| = 0 is not < 0: with eps = 0 the point itself breaks Def. 3."""
    net = random_net(tmp_path, 4, (2, 5, 3))
    point = np.array([0.2, -0.1])
    for delta in (0.0, 0.1):
        result = EpsLocalRobustness(net.network, point, delta, 0.0, norm).check(OPTIONS)
        assert_breaks_eps(net, result, point, delta, 0.0, norm)


@pytest.mark.parametrize("norm", ["inf", "1"])
def test_delta_zero_is_robust_for_positive_epsilon(tmp_path, norm):
    net = random_net(tmp_path, 4, (2, 5, 3))
    result = EpsLocalRobustness(net.network, [0.2, -0.1], 0.0, 1e-3, norm).check(OPTIONS)
    assert result.verdict == "robust"


def test_exact_threshold_on_a_linear_region(tmp_path):
    """y0 = x0 - x1 moves by exactly 2 * delta (L-inf) or delta (L1): eps at the threshold is violated."""
    net = difference_net(tmp_path)
    point = np.array([0.5, 0.2])  # both ReLUs keep their phase within radius 0.15
    assert EpsLocalRobustness(net.network, point, 0.125, 0.25, "inf").check(OPTIONS).verdict == "not robust"
    assert EpsLocalRobustness(net.network, point, 0.125, 0.2501, "inf").check(OPTIONS).verdict == "robust"
    assert EpsLocalRobustness(net.network, point, 0.125, 0.125, "1").check(OPTIONS).verdict == "not robust"
    assert EpsLocalRobustness(net.network, point, 0.125, 0.1251, "1").check(OPTIONS).verdict == "robust"


def test_one_disjunct_per_label_and_sign(tmp_path):
    net = random_net(tmp_path, 1, (2, 4, 3))
    prop = EpsLocalRobustness(net.network, [0.0, 0.5], 0.1, 0.2)
    query = prop.query()
    assert len(query.disjuncts) == 6
    c = forward(net, np.array([0.0, 0.5]))
    # y = c + 0.2 e_l satisfies exactly the "higher" disjunct of label l (and no "lower" one)
    for l in range(3):
        y = c.copy()
        y[l] += 0.2
        v = np.concatenate([[0.0, 0.5], y])
        hits = [k for k, d in enumerate(query.disjuncts) if d.constraints.holds(v)]
        assert [query.disjuncts[k].label for k in hits] == [f"label {l}'s score is at least eps above its score at the point"]


def test_parallel_disjuncts_agree(tmp_path):
    net = random_net(tmp_path, 8, (3, 6, 3))
    point = np.array([0.1, 0.2, -0.2])
    for delta, epsilon in ((0.01, 0.5), (0.3, 0.05)):
        prop = EpsLocalRobustness(net.network, point, delta, epsilon)
        a, b = prop.check(OPTIONS), prop.check(OPTIONS, jobs=2)
        assert a.verdict == b.verdict
        if b.verdict == "not robust":
            assert_breaks_eps(net, b, point, delta, epsilon, "inf")
