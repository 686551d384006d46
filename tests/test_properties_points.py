"""Points and domains from .npy, .csv and .json; every bad input is a one-line SpecError."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reluverify.errors import SpecError
from reluverify.properties.ball import ball_region, check_norm, distance, pair_rows
from reluverify.properties.inputs import Domain, check_in_domain, load_domain, load_point, load_point_and_domain


def test_point_formats_round_trip(tmp_path):
    x = np.array([0.25, -1.5, 3.0, 1e-7])
    np.save(tmp_path / "p.npy", x.reshape(2, 2))
    (tmp_path / "p.csv").write_text("0.25, -1.5\n3.0,1e-7\n")
    (tmp_path / "p.json").write_text(json.dumps([[0.25, -1.5], [3.0, 1e-7]]))
    (tmp_path / "q.json").write_text(json.dumps({"point": x.tolist(), "description": "anything"}))
    for name in ("p.npy", "p.csv", "p.json", "q.json"):
        np.testing.assert_array_equal(load_point(tmp_path / name, 4), x)


def test_point_json_may_carry_its_domain(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"point": [0.5, 0.2], "domain": {"lower": 0, "upper": [1, 0.5]}}))
    point, domain = load_point_and_domain(path, 2)
    np.testing.assert_array_equal(domain.lower, [0, 0])
    np.testing.assert_array_equal(domain.upper, [1, 0.5])
    path.write_text(json.dumps({"point": [0.5, 0.7], "domain": {"lower": 0, "upper": [1, 0.5]}}))
    with pytest.raises(SpecError, match="outside the domain: input 1 is 0.7"):
        load_point_and_domain(path, 2)


def test_domain_formats(tmp_path):
    lo, hi = np.array([0.0, -1.0, 2.0]), np.array([1.0, 1.0, 2.5])
    (tmp_path / "d.json").write_text(json.dumps({"lower": lo.tolist(), "upper": hi.tolist()}))
    (tmp_path / "pairs.json").write_text(json.dumps(np.stack([lo, hi], axis=1).tolist()))
    np.save(tmp_path / "rows.npy", np.stack([lo, hi]))
    np.save(tmp_path / "cols.npy", np.stack([lo, hi], axis=1))
    (tmp_path / "d.csv").write_text("0,-1,2\n1,1,2.5\n")
    for name in ("d.json", "pairs.json", "rows.npy", "cols.npy", "d.csv"):
        domain = load_domain(tmp_path / name, 3)
        np.testing.assert_array_equal(domain.lower, lo)
        np.testing.assert_array_equal(domain.upper, hi)
    (tmp_path / "s.json").write_text(json.dumps({"lower": 0, "upper": 1}))
    assert load_domain(tmp_path / "s.json", 5).upper.tolist() == [1.0] * 5


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("short.json", "[1, 2, 3]", "the point has 3 values, the network has 4 inputs"),
        ("nan.json", "[1, NaN, 3, 4]", "value 1 of the point is nan"),
        ("inf.csv", "1,2,inf,4", "value 2 of the point is inf"),
        ("text.csv", "1,2,abc,4", "line 1: 'abc' is not a number"),
        ("broken.json", "[1, 2", "not valid JSON"),
        ("object.json", '{"values": [1, 2, 3, 4]}', "an object with a 'point' list"),
        ("ragged.json", "[[1, 2], [3]]", "point 0: 2 values, the network has 4 inputs"),
        ("words.json", '["a", "b", "c", "d"]', "list of numbers"),
        ("empty.csv", "\n", "holds no points"),
        ("point.txt", "1 2 3 4", "unknown points file type '.txt'"),
    ],
)
def test_bad_points(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SpecError) as info:
        load_point(path, 4)
    message = str(info.value)
    assert fragment in message and "\n" not in message and name in message


def test_missing_and_broken_npy(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_point(tmp_path / "missing.npy", 2)
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(SpecError, match="not a readable .npy array"):
        load_point(tmp_path / "bad.npy", 2)
    with pytest.raises(SpecError, match="is a directory"):
        load_point(tmp_path, 2)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"lower": [0, 0], "upper": [1, -1]}', "domain of input 1 is empty: lower 0 > upper -1"),
        ('{"lower": [0, 0, 0], "upper": [1, 1, 1]}', "domain has 3 inputs, the network has 2"),
        ('{"lower": [0, null], "upper": [1, 1]}', "not a finite number"),
        ('{"low": 0, "high": 1}', "expected the keys 'lower' and 'upper'"),
        ("[[0, 1], [0]]", "list of numbers"),
    ],
)
def test_bad_domains(tmp_path, content, fragment):
    path = tmp_path / "domain.json"
    path.write_text(content)
    with pytest.raises(SpecError) as info:
        load_domain(path, 2)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_point_outside_the_domain_names_the_input():
    domain = Domain(np.zeros(3), np.ones(3))
    with pytest.raises(SpecError, match=r"input 1 is -0.1 < 0, the domain is \[0, 1\] \(2 inputs outside\)"):
        check_in_domain(np.array([0.5, -0.1, 1.5]), domain)


def test_norm_names_and_distances():
    assert check_norm("inf") == check_norm("Linf") == check_norm("L-inf") == "inf"
    assert check_norm("1") == check_norm("L1") == check_norm(1) == "1"
    with pytest.raises(SpecError, match="unknown norm"):
        check_norm("2")
    assert distance([1, 2], [0, 0], "inf") == 2 and distance([1, -2], [0, 0], "1") == 3


def test_l1_region_projects_onto_the_l1_ball():
    """x is in the region (for some t) iff ||x - c||_1 <= delta; the box is the L-inf box."""
    rng = np.random.default_rng(0)
    c, delta = np.array([0.2, -0.3, 0.5]), 0.4
    region = ball_region(c, delta, "1")
    assert region.num_auxiliary == 3 and region.constraints.num_rows == 7
    for _ in range(500):
        x = c + rng.uniform(-delta, delta, 3)
        t = np.abs(x - c)  # the tightest auxiliaries
        v = np.concatenate([x, t])
        inside = bool(region.constraints.holds(v)) and np.all(v >= region.lower) and np.all(v <= region.upper)
        assert inside == (np.abs(x - c).sum() <= delta)
    rows, aux = pair_rows(3, delta, "1")
    assert aux == 3 and rows.matrix.shape == (7, 9)
