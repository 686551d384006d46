"""Prioritisation: cheap analysis that puts likely violations first (points, disjuncts, sub-domains)."""

from __future__ import annotations

import numpy as np

from reluverify.network import ReluChain
from reluverify.properties.global_robustness import GlobalRobustness
from reluverify.properties.local import LocalRobustness
from reluverify.properties.priority import ball_scores, disjunct_scores, order_disjuncts, order_queries
from reluverify.properties.runner import run_queries
from reluverify.query import box_query
from reluverify.solver import SolverOptions


def random_network(seed: int, sizes=(3, 10, 10, 3)):
    rng = np.random.default_rng(seed)
    weights = tuple(rng.normal(0, 1 / np.sqrt(a), (b, a)) for a, b in zip(sizes, sizes[1:]))
    biases = tuple(rng.normal(0, 0.1, b) for b in sizes[1:])
    return ReluChain(weights, biases).to_network()


def test_ball_scores_agree_with_the_verdicts_where_they_are_sure():
    """A score <= 0 is a violation seen by sampling (so not robust); 2 is robust by bounds (so robust)."""
    sure = 0
    for seed in range(3):
        network = random_network(seed)
        points = np.random.default_rng(seed + 10).uniform(-1, 1, size=(8, 3))
        deltas = np.array([0.02, 0.3] * 4)
        for decision in ("max", "min"):
            scores = ball_scores(network, points, deltas, decision=decision)
            assert scores.shape == (8,)
            for point, delta, score in zip(points, deltas, scores):
                if 0 < score <= 1:
                    continue
                result = LocalRobustness(network, point, delta, decision=decision).check(SolverOptions(timeout=30))
                assert result.verdict == ("not robust" if score <= 0 else "robust"), (seed, decision, score)
                sure += 1
    assert sure >= 10


def test_ball_scores_for_def3_and_l1_and_larger_balls_score_lower():
    network = random_network(4)
    point = np.array([[0.1, -0.2, 0.3]])
    radii = np.array([0.001, 0.01, 0.1, 1.0])
    for norm in ("inf", "1"):
        scores = ball_scores(network, np.repeat(point, 4, axis=0), radii, norm=norm, epsilon=0.05)
        assert scores[0] == 2.0 and scores[-1] <= 0  # tiny ball proven by bounds, huge one violated
        assert np.all(np.diff(scores) <= 1e-9)


def _steep_network():
    """y0 = relu(20 (x - 0.9)), y1 = 0: flat on [0, 0.9], steep after (violations of Def. 2 live there)."""
    chain = ReluChain((np.array([[20.0]]), np.array([[1.0], [0.0]])), (np.array([-18.0]), np.zeros(2)))
    return chain.to_network()


def test_disjuncts_refuted_by_bounds_go_last_and_violated_ones_first():
    network = random_network(5)
    y = np.eye(3)  # rows over the outputs
    query = box_query(network, [-1, -1, -1], [1, 1, 1], [
        [(y[0], -1e6)],  # y0 <= -1e6: impossible, refuted by bounds
        [(-y[1], -0.5)],  # y1 >= 0.5: hard or impossible
        [(y[2], 1e6)],  # y2 <= 1e6: always true, a violation at once
    ])
    scores = disjunct_scores(query)
    assert scores[0] == np.inf and scores[2] <= 0
    assert order_disjuncts(query)[0] == 2 and order_disjuncts(query)[-1] == 0


def test_the_sub_domain_with_the_violation_runs_first():
    prop = GlobalRobustness(_steep_network(), ([0.0], [1.0]), delta=0.05, epsilon=0.5, partitions=4)
    queries = prop.queries()
    assert order_queries(queries)[0] == 3  # [0.75, 1] holds the steep part
    options = SolverOptions(timeout=30)
    ranked = run_queries(queries, options)  # prioritised by default with several queries
    plain = run_queries(queries, options, prioritize=False)
    assert ranked.verdict == plain.verdict == "sat" and ranked.query_index == plain.query_index == 3
    assert ranked.tasks == 1 and plain.tasks == 4  # the first query tried was the violated one
    parallel = run_queries(queries, options.with_jobs(2))
    assert parallel.verdict == "sat" and parallel.query_index == 3


def test_prioritised_disjunct_groups_keep_verdicts_and_indices():
    network = random_network(6)
    point = np.array([0.2, 0.1, -0.3])
    for delta in (0.01, 0.5):
        prop = LocalRobustness(network, point, delta)
        query = prop.query()
        options = SolverOptions(timeout=30)
        plain = run_queries([query], options.with_jobs(2), split_disjuncts=True, prioritize=False)
        ranked = run_queries([query], options.with_jobs(2), split_disjuncts=True, prioritize=True)
        assert plain.verdict == ranked.verdict
        if ranked.counterexample is not None:
            k = ranked.counterexample.disjunct
            assert query.satisfied_disjuncts(ranked.counterexample.inputs, ranked.counterexample.ir_outputs, 1e-6)
            assert ranked.verdicts[0][k] == "sat"


def test_a_sweep_runs_the_likeliest_violations_first(tmp_path):
    """run.prioritize orders the jobs of a sweep: violations seen by sampling first, bound-proven last."""
    from reluverify.onnx_export import network_to_onnx
    from reluverify.sweep.plan import NetworkRef, make_plan
    from reluverify.sweep.run import prioritize

    network = random_network(7)
    path = tmp_path / "net.onnx"
    path.write_bytes(network_to_onnx(network).SerializeToString())
    from reluverify.network import file_sha256

    ref = NetworkRef(str(path), file_sha256(str(path)), 3)
    points = np.random.default_rng(3).uniform(-1, 1, size=(6, 3))
    jobs = make_plan([ref], points, [0.001, 0.5])
    ordered = prioritize(jobs)
    assert sorted(j.key for j in ordered) == sorted(j.key for j in jobs)
    radii = [j.delta for j in ordered]
    assert radii[0] == 0.5 and radii[-1] == 0.001  # large balls (violated) first, tiny ones (proven) last
