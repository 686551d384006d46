"""Unit tests pinning the Reluplex behaviours of ``ReluplexEngine`` on small hand-made chains.

(a) a ReLU whose phase is fixed by bounds is never split; (b) a pair is split only after
``repair_threshold`` repairs; (c) backtracking restores the bound store exactly (and the
``BoundStore`` trail restores bit for bit under random push/tighten/pop); (d) ``tighten()``
fixes phases that interval bounds settle; (e) a ``sat`` outcome really satisfies the rows when
its inputs are run through the network.

Events are observed by wrapping the engine's ``_split`` / ``_repair`` methods on the instance.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from random_queries import planted_counterexample_query, random_chain, random_query, robust_query
from reluverify.network import ReluChain
from reluverify.query import Query
from reluverify.solver.bound_store import BoundStore
import dataclasses

from reluverify.solver.options import ReluplexOptions, SolverOptions
from reluverify.solver.reluplex import ACTIVE, INACTIVE, ReluplexEngine
from reluverify.solver.result import Statistics

UNFIXED = -1


# ------------------------------------------------------------------ hand-made chains
def chain(*layers) -> ReluChain:
    """``chain((W1, b1), (W2, b2), ...)`` with ReLUs between the layers."""
    return ReluChain(tuple(np.asarray(w, float) for w, _ in layers), tuple(np.asarray(b, float) for _, b in layers))


# y = relu(x) + relu(-x) = |x|
ABS = chain(([[1.0], [-1.0]], [0.0, 0.0]), ([[1.0, 1.0]], [0.0]))

# five first-layer ReLUs on x in [-1, 1]: x, -x (unstable), x + 2 (active), x - 2 (inactive), 0.5 x + 3 (active);
# a second layer with c0 = f0 + f1 - 0.3 (unstable), c1 = f2 + 1 (active), c2 = -f4 - 1 (inactive).
# y = relu(c0) + 0.1 relu(c1) + 0.7 relu(c2) = relu(|x| - 0.3) + 0.1 (x + 3) on [-1, 1].
MIXED = chain(
    ([[1.0], [-1.0], [1.0], [1.0], [0.5]], [0.0, 0.0, 2.0, -2.0, 3.0]),
    ([[1.0, 1.0, 0.0, 0.7, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, -1.0]], [-0.3, 1.0, -1.0]),
    ([[1.0, 0.1, 0.7]], [0.0]),
)
MIXED_FIXED_AT_ROOT = {2: ACTIVE, 3: INACTIVE, 4: ACTIVE, 6: ACTIVE, 7: INACTIVE}  # relu index -> phase
MIXED_UNSTABLE = {0, 1, 5}


def abs_needs_splits():
    """``|x| >= 0.8`` with ``-0.5 <= x <= 0.5`` as input rows on the box [-1, 1]: unsat, yet its LP
    relaxation is feasible (the chords allow |x| up to 1), so the search must split."""
    rows = np.array([[0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])
    rhs = np.array([-0.8, 0.5, 0.5])
    return ABS, rows, rhs, np.array([-1.0]), np.array([1.0])


def mixed_needs_splits():
    """``y >= 0.6`` with ``-0.5 <= x <= 0.5``: at most relu(0.2) + 0.35 = 0.55, unsat; needs splits."""
    rows = np.array([[0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])
    rhs = np.array([-0.6, 0.5, 0.5])
    return MIXED, rows, rhs, np.array([-1.0]), np.array([1.0])


def make_engine(net: ReluChain, rows, rhs, lower, upper, num_v=None, **options):
    stats = Statistics()
    reluplex = {f.name: options.pop(f.name) for f in dataclasses.fields(ReluplexOptions) if f.name in options}
    opts = SolverOptions(reluplex=ReluplexOptions(**reluplex), **options)
    engine = ReluplexEngine(net, num_v or net.input_size, np.asarray(rows, float), np.asarray(rhs, float),
                            np.asarray(lower, float), np.asarray(upper, float), opts, stats)
    return engine, stats


class Recorder:
    """Logs ``("repair", relu)`` and ``("split", relu, phase from bounds at that moment)`` events."""

    def __init__(self, engine: ReluplexEngine) -> None:
        self.events: list[tuple] = []
        split, repair = engine._split, engine._repair

        def recording_split(relu, frames):
            self.events.append(("split", int(relu), int(engine.phases()[relu])))
            return split(relu, frames)

        def recording_repair(relu, rng):
            self.events.append(("repair", int(relu)))
            return repair(relu, rng)

        engine._split = recording_split
        engine._repair = recording_repair

    def splits(self) -> list[tuple[int, int]]:
        return [(e[1], e[2]) for e in self.events if e[0] == "split"]

    def repairs(self) -> list[int]:
        return [e[1] for e in self.events if e[0] == "repair"]


def soon(seconds: float = 30.0) -> float:
    """A deadline for engine.solve: a search that stops terminating fails as a timeout, not a hang."""
    return time.monotonic() + seconds


def snapshot(engine: ReluplexEngine):
    return engine.store.lower.copy(), engine.store.upper.copy(), engine.store.level


def assert_restored(engine: ReluplexEngine, snap) -> None:
    lower, upper, level = snap
    assert engine.store.level == level
    assert np.array_equal(engine.store.lower, lower) and np.array_equal(engine.store.upper, upper)


# ------------------------------------------------------------------ (a) fixed phases are never split
def test_root_phases_of_the_mixed_chain():
    net, rows, rhs, lo, hi = mixed_needs_splits()
    engine, _ = make_engine(net, rows, rhs, lo, hi)
    phases = engine.phases()
    for relu, phase in MIXED_FIXED_AT_ROOT.items():
        assert phases[relu] == phase, relu
    assert {int(r) for r in np.flatnonzero(phases == UNFIXED)} == MIXED_UNSTABLE


@pytest.mark.parametrize("threshold", [0, 1, 5])
@pytest.mark.parametrize("tightening", [True, False])
def test_relus_fixed_by_the_box_are_never_split(threshold, tightening):
    net, rows, rhs, lo, hi = mixed_needs_splits()
    engine, stats = make_engine(net, rows, rhs, lo, hi, repair_threshold=threshold,
                                network_tightening=tightening, row_tightening=tightening)
    rec = Recorder(engine)
    assert engine.solve(lo, hi, deadline=soon()).status == "unsat"
    split = {relu for relu, _ in rec.splits()}
    assert split, "this query needs splits; the test would be vacuous"
    assert stats.relu_splits == len(rec.splits())
    assert not split & set(MIXED_FIXED_AT_ROOT), rec.splits()
    if not tightening:  # no bound changes below the root: every split ReLU is unfixed when split
        assert all(phase == UNFIXED for _, phase in rec.splits()), rec.splits()


# Regression: bounds derived by row tightening (or a sub-box given to solve()) that fix a ReLU's phase
# through ``b``'s bounds must reach ``f`` and ``a`` too (ReluplexEngine._relu_consistency), so the pair
# can no longer be broken, repaired or split.


@pytest.mark.parametrize("threshold", [0, 1, 5])
def test_relus_fixed_below_the_root_are_never_split(threshold):
    """MIXED with default options: after the first splits, row tightening settles the layer-2 relu 5
    (phases() reports it active through b's lower bound), yet it is split: a's upper bound was never lowered."""
    net, rows, rhs, lo, hi = mixed_needs_splits()
    engine, _ = make_engine(net, rows, rhs, lo, hi, repair_threshold=threshold)
    rec = Recorder(engine)
    assert engine.solve(lo, hi, deadline=soon()).status == "unsat"
    assert all(phase == UNFIXED for _, phase in rec.splits()), rec.splits()  # e.g. [(0, -1), (1, -1), (5, 1), ...]


def test_phase_fixed_by_a_sub_box_is_not_split_minimal():
    """y = relu(x) on the construction box [-1, 1], solved on the sub-box [0.2, 1] (as input splitting does),
    ``y >= 0.9`` and ``x <= 0.5``: unsat. Row tightening gives b >= 0.2 (phases() says active) but a keeps
    its upper bound 1, so (b, f) = (0.5, 0.9) is a broken pair, repaired 5 times and then split."""
    net = chain(([[1.0]], [0.0]), ([[1.0]], [0.0]))
    engine, stats = make_engine(net, [[0.0, -1.0], [1.0, 0.0]], [-0.9, 0.5], [-1.0], [1.0], network_tightening=False)
    rec = Recorder(engine)
    assert engine.solve(np.array([0.2]), np.array([1.0]), deadline=soon()).status == "unsat"
    assert all(phase == UNFIXED for _, phase in rec.splits()), rec.splits()


def _random_engine(seed: int, **options):
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(1, 4)), *rng.integers(2, 7, int(rng.integers(1, 3))), int(rng.integers(1, 3))]
    net = random_chain(rng, sizes, mantissa_bits=8)
    if seed % 2:
        query = planted_counterexample_query(rng, net, num_disjuncts=1).query
    else:
        query = robust_query(rng, net, slack=0.01, num_disjuncts=1)
    rows, rhs = _rows_of(query, 0)
    d = query.disjuncts[0]
    engine, stats = make_engine(net, rows, rhs, d.lower, d.upper, **options)
    return engine, stats, query, rows, rhs


def _rows_of(query: Query, k: int):
    """The engine's rows for disjunct k: its own rows and the query's input rows (padded)."""
    d, ic = query.disjuncts[k], query.input_constraints
    padded = np.hstack([ic.matrix, np.zeros((ic.num_rows, query.num_outputs))])
    return np.vstack([d.constraints.matrix, padded]), np.concatenate([d.constraints.rhs, ic.rhs])


def test_no_split_of_a_phase_fixed_by_bounds_on_random_chains():
    """At the moment of every split, phases() must report the ReLU unfixed (default options, threshold 2).

    Random queries (random_query) and tight robust ones (robust_query with slack 0); seeds 57, 93 and 175
    split a ReLU that phases() already reports fixed."""
    offenders, splits = [], 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        sizes = [int(rng.integers(1, 4)), *rng.integers(2, 7, int(rng.integers(1, 3))), int(rng.integers(1, 3))]
        net = random_chain(rng, sizes, mantissa_bits=8)
        if seed % 2:
            query = random_query(rng, net, num_disjuncts=1, empty_box_probability=0.0)
        else:
            query = robust_query(rng, net, slack=0.0, num_disjuncts=1)
        rows, rhs = _rows_of(query, 0)
        d = query.disjuncts[0]
        engine, _ = make_engine(net, rows, rhs, d.lower, d.upper, repair_threshold=2)
        rec = Recorder(engine)
        engine.solve(d.lower, d.upper, deadline=time.monotonic() + 10)
        splits += len(rec.splits())
        offenders += [(seed, relu, phase) for relu, phase in rec.splits() if phase != UNFIXED]
    assert splits >= 10
    assert not offenders, offenders


# ------------------------------------------------------------------ (b) repair threshold
def test_threshold_zero_splits_without_repairing():
    net, rows, rhs, lo, hi = abs_needs_splits()
    engine, stats = make_engine(net, rows, rhs, lo, hi, repair_threshold=0)
    rec = Recorder(engine)
    assert engine.solve(lo, hi, deadline=soon()).status == "unsat"
    assert rec.repairs() == []
    assert rec.events and rec.events[0][0] == "split"
    assert stats.relu_splits >= 1


@pytest.mark.parametrize("threshold", [1, 2, 5, 9])
@pytest.mark.parametrize("case", [abs_needs_splits, mixed_needs_splits])
def test_a_pair_is_repaired_threshold_times_before_it_is_split(case, threshold):
    net, rows, rhs, lo, hi = case()
    engine, stats = make_engine(net, rows, rhs, lo, hi, repair_threshold=threshold)
    rec = Recorder(engine)
    assert engine.solve(lo, hi, deadline=soon()).status == "unsat"
    assert rec.splits(), "the case needs splits"
    since_split: dict[int, int] = {}
    for event in rec.events:
        relu = event[1]
        if event[0] == "repair":
            since_split[relu] = since_split.get(relu, 0) + 1
        else:
            assert since_split.get(relu, 0) >= threshold, (relu, since_split, rec.events)
            since_split[relu] = 0
    # the first split comes only after threshold repairs of that pair
    first = next(i for i, e in enumerate(rec.events) if e[0] == "split")
    assert first >= threshold


def test_large_threshold_repairs_and_never_splits():
    """With a threshold that is never reached, the engine only repairs (until its deadline here)."""
    net, rows, rhs, lo, hi = abs_needs_splits()
    engine, stats = make_engine(net, rows, rhs, lo, hi, repair_threshold=10**9)
    rec = Recorder(engine)
    snap = snapshot(engine)
    outcome = engine.solve(lo, hi, deadline=time.monotonic() + 0.3)
    assert outcome.status == "timeout"
    assert stats.relu_splits == 0 and rec.splits() == []
    assert len(rec.repairs()) > 10
    assert_restored(engine, snap)


def test_thresholds_agree_on_the_verdict():
    for case, expected in [(abs_needs_splits, "unsat"), (mixed_needs_splits, "unsat")]:
        net, rows, rhs, lo, hi = case()
        for threshold in (0, 1, 3, 5, 20):
            engine, _ = make_engine(net, rows, rhs, lo, hi, repair_threshold=threshold)
            assert engine.solve(lo, hi, deadline=soon()).status == expected, (case.__name__, threshold)
    # and a sat variant: |x| >= 0.8 on the whole box
    for threshold in (0, 1, 3, 5, 20):
        engine, _ = make_engine(ABS, [[0.0, -1.0]], [-0.8], [-1.0], [1.0], repair_threshold=threshold)
        outcome = engine.solve(np.array([-1.0]), np.array([1.0]), deadline=soon())
        assert outcome.status == "sat" and abs(outcome.inputs[0]) >= 0.8 - 1e-9


def test_repairs_alone_solve_a_one_relu_sat_query():
    """y = relu(x) >= 0.5 on [-1, 1]: x = 0.5 is one repair (b := f) away from the first simplex point."""
    net = chain(([[1.0]], [0.0]), ([[1.0]], [0.0]))
    engine, stats = make_engine(net, [[0.0, -1.0]], [-0.5], [-1.0], [1.0], repair_threshold=10**9)
    outcome = engine.solve(np.array([-1.0]), np.array([1.0]), deadline=time.monotonic() + 2.0)
    assert outcome.status == "sat" and stats.relu_splits == 0


# ------------------------------------------------------------------ (c) exact backtracking
def _solve_restores(engine, lo, hi, **kwargs):
    snap = snapshot(engine)
    kwargs.setdefault("deadline", soon())
    outcome = engine.solve(lo, hi, **kwargs)
    assert_restored(engine, snap)
    return outcome


def test_solve_restores_the_store_exactly_for_every_outcome():
    net, rows, rhs, lo, hi = mixed_needs_splits()
    engine, stats = make_engine(net, rows, rhs, lo, hi, repair_threshold=1)
    assert _solve_restores(engine, lo, hi).status == "unsat"
    assert stats.backtracks >= 1
    assert _solve_restores(engine, lo, hi, node_budget=0).status == "unknown"
    assert _solve_restores(engine, lo, hi, deadline=time.monotonic() - 1.0).status == "timeout"
    assert _solve_restores(engine, np.array([0.1]), np.array([0.4])).status == "unsat"
    sat_engine, _ = make_engine(ABS, [[0.0, -1.0]], [-0.8], [-1.0], [1.0], repair_threshold=1)
    assert _solve_restores(sat_engine, np.array([-1.0]), np.array([1.0])).status == "sat"
    # a sub-box that conflicts with a row at once
    assert _solve_restores(sat_engine, np.array([-0.5]), np.array([0.5])).status == "unsat"


@pytest.mark.parametrize("seed", range(40))
def test_reused_engine_matches_fresh_engines_on_sub_boxes(seed):
    """One engine asked about several sub-boxes (as input splitting does) answers like fresh engines,
    and its store is back to the construction bounds after each call."""
    engine, _, query, rows, rhs = _random_engine(seed)
    d = query.disjuncts[0]
    rng = np.random.default_rng(seed)
    boxes = [(d.lower, d.upper)]
    for _ in range(3):
        t = np.sort(rng.random((2, d.lower.size)), axis=0)
        boxes.append((d.lower + (d.upper - d.lower) * t[0], d.lower + (d.upper - d.lower) * t[1]))
    deadline = time.monotonic() + 20
    for lo, hi in boxes:
        reused = _solve_restores(engine, lo, hi, deadline=deadline).status
        fresh_engine, _ = make_engine(engine.chain, rows, rhs, d.lower, d.upper)
        fresh = fresh_engine.solve(lo, hi, deadline=deadline).status
        if {reused, fresh} <= {"sat", "unsat"}:
            assert reused == fresh, (seed, lo, hi)


@pytest.mark.parametrize("seed", range(30))
def test_search_restores_bounds_on_random_chains(seed):
    engine, stats, query, *_ = _random_engine(seed, repair_threshold=1)
    d = query.disjuncts[0]
    outcome = _solve_restores(engine, d.lower, d.upper, deadline=time.monotonic() + 10)
    assert outcome.status in ("sat", "unsat")
    if seed % 2 == 0:
        assert outcome.status == "unsat"  # robust by construction


# BoundStore: random push / tighten / set_bounds / pop sequences
_VALUES = st.sampled_from([-2.0, -1.0, -0.5, -1e-10, 0.0, 1e-10, 0.25, 0.5, 1.0 - 1e-10, 1.0, 1.0 + 1e-10, 2.0])
_OPS = st.lists(
    st.one_of(
        st.just(("push",)),
        st.just(("pop",)),
        st.tuples(st.just("tighten"), st.lists(st.integers(0, 5), min_size=1, max_size=6, unique=True),
                  st.lists(st.one_of(st.none(), _VALUES), min_size=6, max_size=6),
                  st.lists(st.one_of(st.none(), _VALUES), min_size=6, max_size=6),
                  st.sampled_from([0.0, 1e-9, 1e-6]), st.sampled_from([0.0, 1e-12, 1e-7])),
        st.tuples(st.just("set"), st.lists(st.integers(0, 5), min_size=1, max_size=6, unique=True),
                  st.lists(_VALUES, min_size=6, max_size=6)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(_OPS)
def test_bound_store_pop_restores_bit_for_bit(ops):
    store = BoundStore(np.full(6, -3.0), np.full(6, 3.0))
    store.push()  # level 1: everything below is undone by the final pop
    saved: list[tuple[np.ndarray, np.ndarray]] = []
    for op in ops:
        before = store.lower.copy(), store.upper.copy()
        if op[0] == "push":
            store.push()
            saved.append(before)
        elif op[0] == "pop":
            if not saved:
                continue
            store.pop()
            lower, upper = saved.pop()
            assert np.array_equal(store.lower, lower) and np.array_equal(store.upper, upper)
        elif op[0] == "tighten":
            _, index, los, his, tolerance, min_change = op
            index = np.array(index)
            new_lo = np.array([-np.inf if v is None else v for v in los[: index.size]])
            new_hi = np.array([np.inf if v is None else v for v in his[: index.size]])
            changed, conflict = store.tighten(index, new_lo, new_hi, tolerance, min_change)
            if conflict:
                assert changed == 0
                assert np.array_equal(store.lower, before[0]) and np.array_equal(store.upper, before[1])
            else:
                # an intersection: never looser, except that bounds crossing by less than the tolerance
                # merge into one point, which may lie up to half the tolerance outside the old interval
                assert np.all(store.lower >= before[0] - tolerance) and np.all(store.upper <= before[1] + tolerance)
                assert changed >= int(np.sum(store.lower != before[0]) + np.sum(store.upper != before[1]))
                untouched = np.setdiff1d(np.arange(6), index)
                assert np.array_equal(store.lower[untouched], before[0][untouched])
                assert np.array_equal(store.upper[untouched], before[1][untouched])
        else:
            _, index, values = op
            index = np.array(index)
            lo = np.array(values[: index.size])
            store.set_bounds(index, lo, lo + 0.5)
            assert np.array_equal(store.lower[index], lo)
        assert store.level == 1 + len(saved)
    store.pop_to(0)
    assert np.array_equal(store.lower, np.full(6, -3.0)) and np.array_equal(store.upper, np.full(6, 3.0))


def test_tighten_never_stores_an_inverted_interval():
    """The store's documented invariant: lower <= upper, except in a reported conflict."""
    store = BoundStore(np.array([1.0]), np.array([2.0]))
    changed, conflict = store.tighten(np.array([0]), None, np.array([1.0 - 1e-10]), tolerance=1e-9)
    assert not conflict
    assert store.lower[0] <= store.upper[0], (store.lower[0], store.upper[0])  # 1.0 > 0.99999999995


def test_tighten_conflict_and_merge_within_tolerance():
    store = BoundStore(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    assert store.tighten(np.array([0]), np.array([2.0]), None) == (0, True)
    assert np.array_equal(store.lower, [0.0, 0.0])
    changed, conflict = store.tighten(np.array([1]), np.array([0.5 + 1e-12]), np.array([0.5]), tolerance=1e-9)
    assert not conflict and changed == 2 and store.lower[1] == store.upper[1]
    assert abs(store.lower[1] - 0.5) <= 1e-12


# ------------------------------------------------------------------ (d) tighten fixes phases
def test_tighten_fixes_phases_that_interval_bounds_settle():
    lo, hi = np.array([-1.0]), np.array([1.0])
    engine, stats = make_engine(MIXED, [[0.0, 1.0]], [10.0], lo, hi)  # y <= 10: always true
    root = engine.phases().copy()
    snap = snapshot(engine)
    store, lay = engine.store, engine.layout
    store.push()
    store.tighten(lay.v, np.array([0.6]), np.array([1.0]))
    assert np.array_equal(engine.phases(), root), "phases change only through tighten()"
    assert engine.tighten()
    phases = engine.phases()
    # x in [0.6, 1]: x active, -x inactive, and in layer 2 c0 = |x| - 0.3 >= 0.3 active
    expected = dict(MIXED_FIXED_AT_ROOT)
    expected.update({0: ACTIVE, 1: INACTIVE, 5: ACTIVE})
    assert {r: int(p) for r, p in enumerate(phases)} == expected
    assert stats.tightened_bounds > 0
    # the fixed phases are bounds: a = f - b is pinned to 0 (active), f to 0 (inactive)
    for relu, phase in expected.items():
        if phase == ACTIVE:
            assert store.lower[lay.b[relu]] >= 0.0
        else:
            assert store.upper[lay.b[relu]] <= 0.0 and store.upper[lay.f[relu]] <= 0.0
    store.pop()
    assert_restored(engine, snap)
    assert np.array_equal(engine.phases(), root)


def test_bounds_refute_a_sub_box_before_any_simplex_call():
    """y <= 0.3 holds at x = 0 (y = 0.3), but not for x in [0.9, 1] (y >= 0.99): tightening alone proves it."""
    lo, hi = np.array([-1.0]), np.array([1.0])
    engine, stats = make_engine(MIXED, [[0.0, 1.0]], [0.3], lo, hi)
    assert _solve_restores(engine, np.array([0.9]), np.array([1.0])).status == "unsat"
    assert stats.simplex_calls == 0 and stats.relu_splits == 0
    assert _solve_restores(engine, lo, hi).status == "sat"
    # refuted on the whole box already: y <= 0.1 is impossible on [-1, 1] (y >= 0.2 there)
    engine, stats = make_engine(MIXED, [[0.0, 1.0]], [0.1], lo, hi)
    assert _solve_restores(engine, lo, hi).status == "unsat"
    assert stats.simplex_calls == 0


def test_apply_phase_is_a_bound_change_and_reports_conflicts():
    net, rows, rhs, lo, hi = mixed_needs_splits()
    engine, _ = make_engine(net, rows, rhs, lo, hi)
    store, lay = engine.store, engine.layout
    store.push()
    assert engine.apply_phase(0, ACTIVE)
    assert engine.phases()[0] == ACTIVE and store.lower[lay.b[0]] >= 0 and store.upper[lay.a[0]] <= 0
    assert not engine.apply_phase(2, INACTIVE)  # relu 2 is active on the whole box: b >= 1
    store.pop()
    assert engine.phases()[0] == UNFIXED


# ------------------------------------------------------------------ (e) sat assignments are real
def _check_sat(engine: ReluplexEngine, outcome, rows, rhs, lo, hi) -> None:
    assert outcome.status == "sat"
    v = outcome.inputs
    assert np.all(v >= lo) and np.all(v <= hi), "the solution leaves the box it was asked about"
    n_x = engine.chain.input_size
    y = engine.chain.to_network().evaluate(v[:n_x])
    point = np.concatenate([v, y])
    scale = 1.0 + np.abs(rhs) + np.abs(rows) @ np.abs(point)
    assert np.all(rows @ point - rhs <= 1e-7 * scale), rows @ point - rhs


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("options", [{}, {"repair_threshold": 0}, {"network_tightening": False},
                                     {"row_tightening": False, "refine_bounds": False}])
def test_sat_assignments_satisfy_the_rows_through_the_network(seed, options):
    rng = np.random.default_rng(500 + seed)
    sizes = [int(rng.integers(1, 4)), *rng.integers(2, 7, int(rng.integers(1, 4))), int(rng.integers(1, 4))]
    net = random_chain(rng, sizes, cancel=seed % 3 == 0, mantissa_bits=8 if seed % 2 else None)
    planted = planted_counterexample_query(rng, net, num_disjuncts=1)
    query = planted.query
    rows, rhs = _rows_of(query, 0)
    d = query.disjuncts[0]
    engine, _ = make_engine(net, rows, rhs, d.lower, d.upper, **options)
    outcome = engine.solve(d.lower, d.upper, deadline=time.monotonic() + 10)
    assert outcome.status != "unsat", "a planted counterexample exists"
    if outcome.status == "sat":
        _check_sat(engine, outcome, rows, rhs, d.lower, d.upper)


def test_sat_with_auxiliary_input_variables():
    """num_v > n_x: an auxiliary t with t >= |x - 0.5| and t <= 0.1, and |x| >= 0.55 (sat: x in [0.55, 0.6])."""
    rows = np.array([
        [1.0, -1.0, 0.0],   # x - t <= 0.5
        [-1.0, -1.0, 0.0],  # -x - t <= -0.5
        [0.0, 1.0, 0.0],    # t <= 0.1
        [0.0, 0.0, -1.0],   # -y <= -0.55
    ])
    rhs = np.array([0.5, -0.5, 0.1, -0.55])
    lo, hi = np.array([-1.0, 0.0]), np.array([1.0, 1.0])
    engine, _ = make_engine(ABS, rows, rhs, lo, hi, num_v=2)
    outcome = engine.solve(lo, hi, deadline=soon())
    _check_sat(engine, outcome, rows, rhs, lo, hi)
    assert 0.55 - 1e-7 <= outcome.inputs[0] <= 0.6 + 1e-7
    rhs_unsat = rhs.copy()
    rhs_unsat[3] = -0.65  # |x| >= 0.65 is out of reach
    engine, _ = make_engine(ABS, rows, rhs_unsat, lo, hi, num_v=2)
    assert engine.solve(lo, hi, deadline=soon()).status == "unsat"


def test_statistics_count_fixed_relus_and_refactorisations():
    net, rows, rhs, lo, hi = mixed_needs_splits()
    engine, stats = make_engine(net, rows, rhs, lo, hi, refactor_every=1)
    assert np.sum(engine.phases() != UNFIXED) == len(MIXED_FIXED_AT_ROOT)
    assert engine.solve(lo, hi, deadline=soon()).status == "unsat"
    assert stats.pivots > 0 and engine.tableau.refactorisations > 1
    assert stats.fixed_relus >= len(MIXED_FIXED_AT_ROOT), stats
    assert stats.refactorisations >= 1, stats
