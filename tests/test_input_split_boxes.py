"""Input splitting's batch of boxes: every selection keeps the fields of a box together (take,
concatenate, children, the stack), and the payloads a search shares are the boxes it held."""

from __future__ import annotations

import numpy as np
import pytest

from random_queries import random_chain
from reluverify.solver.bounds.deeppoly import deeppoly_bounds
from reluverify.solver.input_split import Boxes, BoxStack, Target
from reluverify.solver.input_split.boxes import Bounded
from reluverify.solver.input_split.problem import Problem
from reluverify.solver.input_split.search import BoxSearch
from reluverify.solver.options import SolverOptions
from reluverify.solver.result import Statistics

N, D, RELUS, PARAMS = 3, 2, 5, 4


def labelled(k: int, start: int = 0) -> Boxes:
    """``k`` boxes whose every field is a function of the box's label ``start + b``, so a box whose
    fields disagree is caught."""
    label = np.arange(start, start + k)
    return Boxes(
        lower=label[:, None] + np.zeros((k, N)),
        upper=label[:, None] + np.ones((k, N)),
        alive=(label[:, None] + np.arange(D)) % 3 != 0,
        depth=label.astype(np.int64),
        node=label[:, None] * 10 + np.arange(D),
        pre_lower=-label[:, None] - np.ones((k, RELUS)),
        pre_upper=label[:, None] + np.ones((k, RELUS)),
        params=(label[:, None, None] + np.zeros((k, D, PARAMS))).astype(np.float32),
        warm=(label[:, None] + np.arange(D)) % 2 == 0,
    )


def labels(boxes: Boxes) -> np.ndarray:
    """The label of each box, checking that every field agrees with it."""
    label = boxes.depth
    for got, want in zip(boxes.arrays(), Boxes.concatenate([labelled(1, int(a)) for a in label]).arrays()):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    return label


def test_take_keeps_every_field_of_a_box_together():
    boxes = labelled(9)
    np.testing.assert_array_equal(labels(boxes.take(np.array([7, 2, 2, 5]))), [7, 2, 2, 5])
    np.testing.assert_array_equal(labels(boxes.take(boxes.depth % 3 == 1)), [1, 4, 7])
    np.testing.assert_array_equal(labels(boxes.take(slice(1, None, 3))), [1, 4, 7])
    assert len(boxes.take(np.zeros(0, dtype=np.int64))) == 0


def test_concatenate_is_in_order():
    joined = Boxes.concatenate([labelled(2), labelled(3, 10), labelled(0, 50)])
    np.testing.assert_array_equal(labels(joined), [0, 1, 10, 11, 12])


def test_children_halve_each_box_and_keep_the_rest_of_it():
    parents = labelled(3)
    dim = np.array([0, 2, 1])
    middle = parents.middle(dim)
    np.testing.assert_array_equal(middle, [0.5, 1.5, 2.5])
    lower_node, upper_node = parents.node + 100, parents.node + 200
    children = parents.children(dim, middle, lower_node, upper_node)
    assert len(children) == 6
    for half, first in ((0, 0), (1, 3)):  # all lower halves, then all upper halves
        kids = children.take(np.arange(first, first + 3))
        np.testing.assert_array_equal(kids.depth, parents.depth + 1)
        np.testing.assert_array_equal(kids.node, (lower_node, upper_node)[half])
        for name in ("alive", "pre_lower", "pre_upper", "params", "warm"):
            np.testing.assert_array_equal(getattr(kids, name), getattr(parents, name))
        for b in range(3):
            expected_lo, expected_hi = parents.lower[b].copy(), parents.upper[b].copy()
            (expected_hi if half == 0 else expected_lo)[dim[b]] = middle[b]
            np.testing.assert_array_equal(kids.lower[b], expected_lo)
            np.testing.assert_array_equal(kids.upper[b], expected_hi)


def test_the_stack_pops_what_was_pushed_last_first_and_grows():
    stack = BoxStack(labelled(0))
    stack.push(labelled(40))
    stack.push(labelled(50, 100))  # past the initial capacity
    assert stack.size == 90
    np.testing.assert_array_equal(labels(stack.pop(20)), np.arange(130, 150))
    np.testing.assert_array_equal(labels(stack.pop(1000)), np.concatenate([np.arange(40), np.arange(100, 130)]))
    assert stack.size == 0 and len(stack.pop(5)) == 0


def test_popped_boxes_are_copies():
    stack = BoxStack(labelled(0))
    stack.push(labelled(4))
    top = stack.pop(2)
    top.alive[:] = False
    top.lower[:] = -7.0
    stack.push(labelled(2, 2))
    np.testing.assert_array_equal(labels(stack.pop(4)), [0, 1, 2, 3])


def test_bounded_take_selects_the_bounds_with_the_boxes():
    rng = np.random.default_rng(0)
    chain = random_chain(rng, [N, 4, 3, 2])
    boxes = labelled(5)
    layer = deeppoly_bounds(chain, boxes.lower, boxes.upper)
    coef, lower = rng.normal(size=(5, 2, N)), rng.normal(size=(5, 2))
    bounded = Bounded(boxes, layer, coef, lower)
    index = np.array([4, 1])
    taken = bounded.take(index)
    np.testing.assert_array_equal(labels(taken.boxes), [4, 1])
    np.testing.assert_array_equal(taken.coef, coef[index])
    np.testing.assert_array_equal(taken.lower, lower[index])
    for got, want in zip(taken.layer.pre_lower + taken.layer.pre_upper, layer.pre_lower + layer.pre_upper):
        np.testing.assert_array_equal(got, want[index])
    np.testing.assert_array_equal(taken.layer.out_lower, layer.out_lower[index])
    np.testing.assert_array_equal(taken.layer.infeasible, layer.infeasible[index])


def _search(chain):
    n, m = chain.input_size, chain.output_size
    targets = [Target(0, np.ones((1, n + m)), np.zeros(1)), Target(1, -np.ones((2, n + m)), np.zeros(2))]
    problem = Problem(chain, targets, SolverOptions(), None)
    return BoxSearch(problem, Statistics(), None, lambda x, k: False, None, None, None)


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_payloads_split_off_and_added_back_are_the_same_boxes(parts):
    rng = np.random.default_rng(1)
    chain = random_chain(rng, [N, 4, 3, 2])
    search = _search(chain)
    held = search.fresh(labelled(11).lower, labelled(11).upper)
    held.depth[:] = np.arange(11)
    held.alive[3, 1] = False
    held.node[:, 0] = np.arange(11) * 3
    search.add(held)
    payloads = search.split_off(parts)
    assert len(payloads) == parts and search.open_count() == 0
    assert sorted(len(p) for p in payloads) == sorted(len(range(k, 11, parts)) for k in range(parts))
    for payload in payloads:
        search.add(payload)
    assert search.open_count() == 11
    back = search.stack.pop(11)
    order = np.argsort(back.depth)
    for got, want in zip(back.take(order).arrays(), held.arrays()):
        np.testing.assert_array_equal(got, want)


def test_a_search_keeps_pre_bounds_and_parameters_only_where_they_are_used():
    rng = np.random.default_rng(2)
    search = _search(random_chain(rng, [N, 4, 3, 2]))
    fresh = search.fresh(np.zeros((2, N)), np.ones((2, N)))
    assert fresh.pre_lower.shape == (2, 7) and np.all(fresh.pre_lower == -np.inf) and np.all(fresh.pre_upper == np.inf)
    assert fresh.params.shape == (2, 2, search.problem.layout.size) and not fresh.warm.any()
    assert fresh.alive.all() and not fresh.depth.any() and not fresh.node.any()
