"""Sweep plans (stable keys, order, duplicates) and points files (good and malformed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reluverify.errors import SpecError
from reluverify.sweep.plan import EPS_LOCAL, LOCAL, Job, NetworkRef, job_key, make_plan
from reluverify.properties.inputs import read_point_set

NET_A = NetworkRef("/nets/a.onnx", "a" * 64, 3)
NET_B = NetworkRef("/nets/b.onnx", "b" * 64, 3)
POINTS = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])


def test_plan_expands_networks_points_deltas_epsilons_in_order():
    jobs = make_plan([NET_A, NET_B], POINTS, [0.01, 0.02], [None, 0.5], decision="min")
    assert len(jobs) == 2 * 2 * 2 * 2
    first = jobs[0]
    assert (first.network, first.point_index, first.delta, first.epsilon) == ("/nets/a.onnx", 0, 0.01, None)
    assert (jobs[1].delta, jobs[1].epsilon) == (0.01, 0.5)
    assert jobs[-1].network == "/nets/b.onnx" and jobs[-1].point_index == 1
    assert first.kind == LOCAL and jobs[1].kind == EPS_LOCAL
    assert first.decision == "min" and jobs[1].decision is None  # Def. 3 has no label
    assert len({j.key for j in jobs}) == len(jobs)


def test_keys_are_stable_and_depend_on_what_the_query_asks():
    again = make_plan([NET_A, NET_B], POINTS.copy(), [0.01, 0.02], [None, 0.5], decision="min")
    assert [j.key for j in again] == [j.key for j in make_plan([NET_A, NET_B], POINTS, [0.01, 0.02], [None, 0.5],
                                                               decision="min")]
    base = job_key("a" * 64, POINTS[0], 0.01, None, "inf", "max", None)
    moved = NetworkRef("/elsewhere/a.onnx", "a" * 64, 3)  # the file's hash, not its path, names the network
    assert make_plan([moved], POINTS[:1], [0.01])[0].key == base
    assert job_key("c" * 64, POINTS[0], 0.01, None, "inf", "max", None) != base
    assert job_key("a" * 64, POINTS[0] + 1e-12, 0.01, None, "inf", "max", None) != base
    assert job_key("a" * 64, POINTS[0], 0.010000001, None, "inf", "max", None) != base
    assert job_key("a" * 64, POINTS[0], 0.01, None, "1", "max", None) != base
    assert job_key("a" * 64, POINTS[0], 0.01, None, "inf", "min", None) != base
    assert job_key("a" * 64, POINTS[0], 0.01, 0.1, "inf", None, None) != base
    assert job_key("a" * 64, POINTS[0], 0.01, None, "inf", "max", ([0, 0, 0], [1, 1, 1])) != base


def test_duplicates_are_dropped_and_jobs_round_trip_as_plain_data():
    jobs = make_plan([NET_A, NET_A], np.vstack([POINTS, POINTS[:1]]), [0.01, 0.01], [None],
                     domain=([0, 0, 0], [1, 1, 1]))
    assert len(jobs) == 2
    for job in jobs:
        assert Job.from_dict(json.loads(json.dumps(job.to_dict()))) == job


@pytest.mark.parametrize("deltas, epsilons, message", [
    ([], [None], "at least one delta"),
    ([-0.1], [None], ">= 0"),
    ([float("nan")], [None], "finite"),
    (["x"], [None], "not a number"),
    ([0.1], [-1.0], "epsilon"),
])
def test_bad_parameters_are_spec_errors(deltas, epsilons, message):
    with pytest.raises(SpecError, match=message):
        make_plan([NET_A], POINTS, deltas, epsilons)


def test_points_of_the_wrong_size_for_a_network():
    with pytest.raises(SpecError, match="has 5 inputs"):
        make_plan([NET_A, NetworkRef("/nets/c.onnx", "c" * 64, 5)], POINTS, [0.1])


# ------------------------------------------------------------------ points files
def read_points(path, size):
    return read_point_set(path, size).points


def test_points_from_npy_csv_and_json(tmp_path):
    np.save(tmp_path / "p.npy", POINTS)
    np.save(tmp_path / "one.npy", POINTS[0])
    np.save(tmp_path / "images.npy", np.arange(12.0).reshape(2, 3, 2))
    (tmp_path / "p.csv").write_text("# two points\nx0,x1,x2\n0.1,0.2,0.3\n\n0.4, 0.5, 0.6,\n")
    (tmp_path / "p.json").write_text(json.dumps(POINTS.tolist()))
    (tmp_path / "obj.json").write_text(json.dumps({"points": [[[0.1], [0.2], [0.3]]]}))
    (tmp_path / "flat.json").write_text(json.dumps([0.1, 0.2, 0.3]))
    np.testing.assert_array_equal(read_points(tmp_path / "p.npy", 3), POINTS)
    np.testing.assert_array_equal(read_points(tmp_path / "one.npy", 3), POINTS[:1])
    assert read_points(tmp_path / "images.npy", 6).shape == (2, 6)
    np.testing.assert_array_equal(read_points(tmp_path / "p.csv", 3), POINTS)
    np.testing.assert_array_equal(read_points(tmp_path / "p.json", 3), POINTS)
    np.testing.assert_array_equal(read_points(tmp_path / "obj.json", 3), POINTS[:1])
    np.testing.assert_array_equal(read_points(tmp_path / "flat.json", 3), POINTS[:1])


@pytest.mark.parametrize("name, content, message", [
    ("bad.csv", "0.1,0.2,0.3\n0.4,abc,0.6\n", r"line 2: 'abc' is not a number"),
    ("short.csv", "0.1,0.2,0.3\n0.4,0.5\n", "line 2: 2 values, the network has 3 inputs"),
    ("nan.csv", "0.1,0.2,0.3\n0.4,nan,0.6\n", "line 2: value 1 of the point is nan"),
    ("empty.csv", "\n# nothing\n", "holds no points"),
    ("bad.json", "[[0.1, 0.2, 0.3], [0.4, 0.5", "not valid JSON"),
    ("ragged.json", "[[0.1, 0.2, 0.3], [0.4, [0.5], 0.6, 7]]", "point 1"),
    ("words.json", '[["a", "b", "c"]]', "point 0"),
    ("object.json", '{"y": [1, 2, 3]}', "'points'"),
    ("long.json", "[0.1, 0.2, 0.3, 0.4]", "the point has 4 values, the network has 3 inputs"),
    ("empty.json", "[]", "holds no points"),
    ("p.txt", "0.1,0.2,0.3\n", "unknown points file type"),
])
def test_malformed_points_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SpecError, match=message) as info:
        read_points(path, 3)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_malformed_npy_points(tmp_path):
    (tmp_path / "broken.npy").write_bytes(b"not numpy at all")
    np.save(tmp_path / "wide.npy", np.zeros((4, 5)))
    np.save(tmp_path / "inf.npy", np.array([[0.0, np.inf, 0.0]]))
    with pytest.raises(SpecError, match="not a readable .npy"):
        read_points(tmp_path / "broken.npy", 3)
    with pytest.raises(SpecError, match=r"shape \(4, 5\) holds points of 5 values"):
        read_points(tmp_path / "wide.npy", 3)
    with pytest.raises(SpecError, match="point 0: value 1 of the point is inf"):
        read_points(tmp_path / "inf.npy", 3)
    with pytest.raises(SpecError, match="no such file"):
        read_points(tmp_path / "missing.npy", 3)
    with pytest.raises(SpecError, match="is a directory"):
        read_points(tmp_path, 3)
