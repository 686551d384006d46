"""The nonlinear decision procedure against exhaustive evaluation, and its verdict discipline.

* On tiny SRUs with two inputs, the input space is gridded finely: a clear grid violation must
  give ``sat`` (never ``unsat``), a clear margin ``unsat``; an ``unsat`` never has a violating
  grid point. Thresholds sit a Lipschitz margin away from the grid minimum so the grid decides them.
* Every ``sat`` carries a counterexample that onnxruntime confirms (replayed here).
* On random DAGs with sigmoid, tanh, ReLU and products: no ``unsat`` where sampling finds a violation.
* The shipped ``digits_sru.onnx`` decides small and large balls quickly.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_nonlinear_networks import random_dag, tiny_sru

from reluverify.onnx_import import load_onnx
from reluverify.onnx_runtime import reference_for
from reluverify.query import Disjunct, LinearConstraints, Query, box_query
from reluverify.solver import SolverOptions, solve
from reluverify.solver.nonlinear import NonlinearOptions, solve_nonlinear
from reluverify.solver.result import SAT, TIMEOUT, UNKNOWN, UNSAT

NETWORKS = Path(__file__).resolve().parents[1] / "networks"
GRID = 301


def _grid(lower: np.ndarray, upper: np.ndarray, count: int = GRID) -> np.ndarray:
    axes = [np.linspace(lo, hi, count) for lo, hi in zip(lower, upper)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))


def _margin_function(net, c: np.ndarray, lower, upper):
    """Grid values of ``c @ y``, their minimum, and a margin that covers what the grid can miss."""
    points = _grid(lower, upper)
    values = net.evaluate(points) @ c
    cube = values.reshape(GRID, GRID)
    step = max(np.abs(np.diff(cube, axis=0)).max(), np.abs(np.diff(cube, axis=1)).max())
    spread = values.max() - values.min()
    return points, values, 2.0 * step + 0.02 * spread + 1e-3


def _replay(query: Query, result) -> None:
    """A sat's counterexample lies in the query region and onnxruntime's outputs satisfy its disjunct."""
    assert result.verdict == SAT
    cex = result.counterexample
    assert query.in_region(cex.inputs, 1e-9)
    disjunct = query.disjuncts[cex.disjunct]
    assert np.all(cex.inputs >= disjunct.lower) and np.all(cex.inputs <= disjunct.upper)
    outputs = np.concatenate([
        np.atleast_1d(reference_for(net)(cex.inputs[off : off + net.input_size]))
        for net, off in zip(query.networks, np.cumsum([0] + [n.input_size for n in query.networks])[:-1])
    ])
    full = np.concatenate([cex.inputs, outputs])
    scale = np.abs(disjunct.constraints.matrix) @ np.abs(full) + np.abs(disjunct.constraints.rhs)
    assert np.all(disjunct.constraints.residuals(full) <= cex.tolerance * (1 + scale))


OPTIONS = NonlinearOptions(timeout=30.0, random_samples=200, attack_restarts=4, attack_steps=20)


@pytest.mark.parametrize("seed", range(4))
def test_thresholds_on_a_tiny_sru_agree_with_the_grid(seed):
    rng = np.random.default_rng(100 + seed)
    net = tiny_sru(rng, steps=2, features=1, hidden=2, classes=2)
    lower, upper = np.zeros(2), np.ones(2)
    c = np.array([1.0, -1.0])
    _, values, margin = _margin_function(net, c, lower, upper)
    low = values.min()
    for threshold, expected in ((low + margin, SAT), (low - margin, UNSAT)):
        query = box_query(net, lower, upper, [[(c, threshold)]])
        # without falsification the boxes find it; both complete split rules decide
        for options in (OPTIONS, replace(OPTIONS, falsify=False), replace(OPTIONS, falsify=False, split="alternate")):
            result = solve_nonlinear(query, options)
            assert result.verdict == expected, (threshold, low, result.reason)
            if result.verdict == SAT:
                _replay(query, result)
            else:
                assert not np.any(values <= threshold)


def _robustness_query(net, x0, delta):
    y0 = net.evaluate(x0)
    label = int(np.argmax(y0))
    others = [l for l in range(y0.shape[0]) if l != label]
    rows = []
    for l in others:
        c = np.zeros(y0.shape[0])
        c[label], c[l] = 1.0, -1.0
        rows.append([(c, 0.0)])
    return box_query(net, x0 - delta, x0 + delta, rows), label, others


def _ball_worst(net, x0, delta, count=GRID):
    """The smallest ``y_label - y_other`` on a grid of the L-inf ball (<= 0: the grid finds a violation)."""
    _, label, others = _robustness_query(net, x0, delta)
    y = net.evaluate(_grid(x0 - delta, x0 + delta, count))
    return (y[:, label][:, None] - y[:, others]).min()


@pytest.mark.parametrize("seed", (206, 207, 208))  # tiny SRUs whose three classes all occur on [0, 1]^2
def test_local_robustness_on_a_tiny_sru_agrees_with_the_grid(seed):
    net = tiny_sru(np.random.default_rng(seed), steps=2, features=1, hidden=3, classes=3)
    delta = 0.2
    centres = _grid(np.full(2, 0.2), np.full(2, 0.8), 13)
    worst = np.array([_ball_worst(net, x0, delta, 41) for x0 in centres])
    order = np.argsort(worst)
    hard_robust = [i for i in order if 0.02 < worst[i] < 0.5][:2]  # robust, but not by much
    broken = [i for i in order[::-1] if -0.5 < worst[i] < -0.05][:2]  # violated, not by much
    chosen = [(i, UNSAT) for i in hard_robust] + [(i, SAT) for i in broken] + [(order[-1], UNSAT)]
    assert len(chosen) >= 4
    for i, expected in chosen:
        query, _, _ = _robustness_query(net, centres[i], delta)
        result = solve_nonlinear(query, OPTIONS)
        fine = _ball_worst(net, centres[i], delta)
        if result.verdict == UNSAT:
            assert fine > 0, "unsat, yet a grid point violates"
        if result.verdict == SAT:
            _replay(query, result)
        assert result.verdict == expected, (worst[i], fine, result.reason)


def test_an_exported_torch_sru_is_verified_on_its_onnx_file(tmp_path):
    torch = pytest.importorskip("torch")
    from reluverify.train.export import export_onnx
    from reluverify.train.models import SRUClassifier

    torch.manual_seed(0)
    model = SRUClassifier(steps=2, features=1, hidden=2, classes=2)
    with torch.no_grad():
        model.sru.bias.normal_()
        model.sru.v.mul_(2.0)
    net = load_onnx(export_onnx(model, tmp_path / "tiny_sru.onnx"))
    assert net.source_path and net.activation_counts == {"sigmoid": 6, "product": 6}
    lower, upper = np.zeros(2), np.ones(2)
    c = np.array([1.0, -1.0])
    _, values, margin = _margin_function(net, c, lower, upper)
    for threshold, expected in ((values.min() + margin, SAT), (values.min() - margin, UNSAT)):
        query = box_query(net, lower, upper, [[(c, threshold)]])
        result = solve(query, SolverOptions(timeout=30.0))  # dispatched to the nonlinear procedure
        assert result.verdict == expected
        if expected == SAT:
            _replay(query, result)


def test_an_l1_ball_through_auxiliary_variables():
    rng = np.random.default_rng(7)
    net = tiny_sru(rng, steps=2, features=1, hidden=2, classes=2)
    x0, delta = np.array([0.5, 0.5]), 0.3
    # v = [x0, x1, t0, t1]: |x_i - x0_i| <= t_i, t0 + t1 <= delta
    matrix = np.array([[1, 0, -1, 0], [-1, 0, -1, 0], [0, 1, 0, -1], [0, -1, 0, -1], [0, 0, 1, 1]], dtype=float)
    rhs = np.array([x0[0], -x0[0], x0[1], -x0[1], delta])
    lower = np.concatenate([x0 - delta, [0, 0]])
    upper = np.concatenate([x0 + delta, [delta, delta]])
    points = _grid(x0 - delta, x0 + delta)
    inside = np.abs(points - x0).sum(axis=1) <= delta
    values = net.evaluate(points[inside]) @ np.array([1.0, -1.0])
    margin = 0.05 * (values.max() - values.min()) + 0.02
    for threshold, expected in ((values.min() + margin, SAT), (values.min() - margin, UNSAT)):
        row = np.zeros((1, 6))
        row[0, 4:] = [1.0, -1.0]
        disjunct = Disjunct(lower, upper, LinearConstraints(row, np.array([threshold])))
        query = Query((net,), lower, upper, (disjunct,), LinearConstraints(matrix, rhs), num_auxiliary=2)
        result = solve_nonlinear(query, OPTIONS)
        assert result.verdict == expected, result.reason
        if expected == SAT:
            _replay(query, result)


def test_two_copies_and_disjuncts_with_their_own_boxes():
    """Def. 2 style: two copies within delta of each other whose first outputs differ by eps."""
    rng = np.random.default_rng(8)
    net = tiny_sru(rng, steps=1, features=1, hidden=2, classes=2)  # one input per copy
    delta = 0.05
    xs = np.linspace(0, 1, 2001)
    y = net.evaluate(xs[:, None])[:, 0]
    shift = int(round(delta / (xs[1] - xs[0])))
    largest = max(np.abs(y[shift:] - y[:-shift]).max(), 1e-3)  # the largest change over delta, on a grid
    n = 2
    matrix = np.array([[1.0, -1.0], [-1.0, 1.0]])  # |x1 - x2| <= delta
    for eps, expected in ((1.5 * largest + 0.01, UNSAT), (0.5 * largest, SAT)):
        rows = np.zeros((2, n + 4))
        rows[0, [2, 4]] = [-1.0, 1.0]  # y1_0 - y2_0 >= eps
        rows[1, [2, 4]] = [1.0, -1.0]  # y2_0 - y1_0 >= eps
        disjuncts = (
            Disjunct(np.zeros(2), np.ones(2), LinearConstraints(rows[:1], np.array([-eps]))),
            Disjunct(np.zeros(2), np.array([1.0, 0.5]), LinearConstraints(rows[1:], np.array([-eps]))),
        )
        query = Query((net, net), np.zeros(2), np.ones(2), disjuncts, LinearConstraints(matrix, np.full(2, delta)))
        result = solve_nonlinear(query, OPTIONS)
        assert result.verdict == expected, result.reason
        if expected == SAT:
            _replay(query, result)
        else:
            assert result.disjunct_verdicts == [UNSAT, UNSAT]


@pytest.mark.parametrize("seed", range(8))
def test_no_unsat_where_sampling_finds_a_violation_on_random_dags(seed):
    rng = np.random.default_rng(300 + seed)
    net = random_dag(rng, inputs=2, width=3, layers=4, outputs=2)
    lower, upper = -np.ones(2), np.ones(2)
    samples = rng.uniform(lower, upper, (20000, 2))
    c = rng.normal(0, 1, 2)
    values = net.evaluate(samples) @ c
    spread = values.max() - values.min()
    for threshold in (values.min() + 0.01 * spread, values.min() + 0.3 * spread, values.min() - 0.05 * spread - 1e-3):
        query = box_query(net, lower, upper, [[(c, threshold)]])
        result = solve_nonlinear(query, OPTIONS)
        if np.any(values <= threshold):
            assert result.verdict != UNSAT
        if result.verdict == SAT:
            _replay(query, result)
        assert result.verdict in (SAT, UNSAT), result.reason  # two inputs: decided well within budget


@pytest.mark.parametrize("seed", range(6))
def test_relaxation_splits_are_sound_on_random_dags(seed):
    """Clamped relaxation intervals (ReLU inputs cut at 0) never lose a counterexample."""
    rng = np.random.default_rng(400 + seed)
    net = random_dag(rng, inputs=2, width=3, layers=4, outputs=2, kinds=("relu", "sigmoid", "tanh"))
    lower, upper = -np.ones(2), np.ones(2)
    values = net.evaluate(_grid(lower, upper, 201)) @ (c := rng.normal(0, 1, 2))
    spread = values.max() - values.min()
    for threshold in (values.min() + 0.02 * spread, values.min() - 0.02 * spread - 1e-3):
        query = box_query(net, lower, upper, [[(c, threshold)]])
        for split in ("relaxation", "alternate"):
            result = solve_nonlinear(query, replace(OPTIONS, split=split, falsify=False, timeout=2.0))
            stats = result.statistics
            assert stats.relu_splits <= stats.splits - stats.input_splits  # relaxation splits at ReLU inputs
            if np.any(values <= threshold):
                assert result.verdict != UNSAT
            if result.verdict == SAT:
                _replay(query, result)
            if result.verdict == UNSAT:
                assert not np.any(values <= threshold)


def _digit_query(net, index: int, delta: float) -> Query:
    from reluverify.train.data import digits_split

    x = digits_split().test_inputs[index].astype(np.float64)
    y = net.evaluate(x)
    label = int(np.argmax(y))
    rows = []
    for l in np.argsort(-y):
        if l != label:
            c = np.zeros(10)
            c[label], c[l] = 1.0, -1.0
            rows.append([(c, 0.0)])
    return box_query(net, np.clip(x - delta, 0, 1), np.clip(x + delta, 0, 1), rows)


def test_the_shipped_sru_is_decided_at_a_test_point():
    pytest.importorskip("sklearn")
    net = load_onnx(NETWORKS / "digits_sru.onnx")
    robust = solve(_digit_query(net, 1, 0.005), SolverOptions(timeout=60.0))
    assert robust.verdict == UNSAT and robust.seconds < 60
    assert robust.disjunct_verdicts == [UNSAT] * 9
    query = _digit_query(net, 1, 0.1)
    broken = solve(query, SolverOptions(timeout=60.0))
    assert broken.verdict == SAT
    _replay(query, broken)


def test_budgets_give_timeout_or_unknown_with_a_reason():
    rng = np.random.default_rng(9)
    net = tiny_sru(rng, steps=3, features=1, hidden=3, classes=2)
    lower, upper = np.zeros(3), np.ones(3)
    c = np.array([1.0, -1.0])
    values = net.evaluate(_grid(lower, upper, 41)) @ c
    threshold = values.min() - 0.02 * (values.max() - values.min())  # a little below the minimum: many boxes
    query = box_query(net, lower, upper, [[(c, threshold)]])
    few = solve_nonlinear(query, NonlinearOptions(timeout=30.0, max_boxes=2, falsify=False))
    assert few.verdict == UNKNOWN and "budget" in few.reason
    assert few.statistics.boxes >= 1
    late = solve_nonlinear(query, NonlinearOptions(timeout=0.0, falsify=False))
    assert late.verdict == TIMEOUT and "time" in late.reason


def test_statistics_are_filled():
    rng = np.random.default_rng(10)
    net = tiny_sru(rng, steps=2, features=1, hidden=2, classes=2)
    c = np.array([1.0, -1.0])
    values = net.evaluate(_grid(np.zeros(2), np.ones(2), 101)) @ c
    result = solve_nonlinear(box_query(net, np.zeros(2), np.ones(2), [[(c, values.min() - 0.05)]]), OPTIONS)
    stats = result.statistics
    assert result.verdict == UNSAT
    assert stats.falsification_samples > 0 and stats.boxes >= 1
    assert stats.splits == stats.input_splits and stats.max_depth >= (1 if stats.splits else 0)
