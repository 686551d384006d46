"""Domains, points and labels as every command reads them (issue 32, items 1 and 2).

A domain is always known or loudly absent: ``--domain LO:HI`` (and one ``LO:HI`` per input) in
every command, a points file's ``"domain"`` honoured everywhere with ``--domain`` replacing it, a
warning when no domain cuts the ball, a point outside its domain named with enough digits. Labels
and points come from one reader: ``--labels FILE`` (``.npy``, ``.csv``, ``.json``, ``.npz``), the
same formats and the same one-line errors (naming the file and the entry) in ``verify --point``,
``verify --points``, ``max-delta`` and ``sweep``.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from reluverify.cli import main
from test_properties_oracles import difference_net

WARNING = "reluverify: warning: no input domain"

# difference_net: label 0 where x0 > x1; from (a, b) the label changes within L-inf radius (a - b) / 2.
# From (0.9, 0.1) at delta 0.45 the ball reaches the diagonal (not robust) unless a domain keeps
# x0 >= 0.8 and x1 <= 0.2 (robust).
POINT = [0.9, 0.1]
NARROW = {"lower": [0.8, 0.0], "upper": [1.0, 0.2]}


def cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_error(capsys, *argv) -> str:
    status, _, err = cli(capsys, *argv)
    assert status == 2 and err.startswith("reluverify: error: ") and err.count("\n") == 1, err
    return err


def sweep_verdicts(db) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT point_index, delta, verdict FROM results ORDER BY point_index, delta").fetchall()


@pytest.fixture
def net(tmp_path):
    return difference_net(tmp_path).path


# ------------------------------------------------------------------ item 1: domains
def test_domain_shorthand_in_every_command(net, tmp_path, capsys):
    point = tmp_path / "p.json"
    point.write_text(json.dumps(POINT))
    points = tmp_path / "ps.json"
    points.write_text(json.dumps([POINT, [0.3, 0.6]]))
    status, out, err = cli(capsys, "verify", net, "--point", point, "--delta", "0.45", "--domain", "0.8:1,0:0.2")
    assert status == 0 and out.startswith("robust") and "in the domain" in out and WARNING not in err
    status, out, _ = cli(capsys, "verify", net, "--point", point, "--delta", "0.45", "--domain", "0:1")
    assert status == 0 and out.startswith("not robust")
    status, out, _ = cli(capsys, "verify", net, "--points", points, "--delta", "0.05", "--domain", "0:1")
    assert status == 0 and "balls cut to --domain 0:1" in out and "(2/2)" in out
    status, out, _ = cli(capsys, "verify", net, "--global", "--domain", "0:1", "--delta", "0.05", "--epsilon", "0.5")
    assert status == 0 and out.startswith("robust")
    status, out, err = cli(capsys, "max-delta", net, "--point", point, "--domain=-1:1", "--precision", "0.05")
    assert status == 0 and "in the domain" in out and WARNING not in err
    db = tmp_path / "s.sqlite"
    status, _, err = cli(capsys, "sweep", net, "--points", points, "--delta", "0.45", "--domain", "0.8:1,0:0.2",
                         "--db", db, "--quiet")
    assert status == 2 and "ps.json: point 1: the point is outside the domain: input 0 is 0.3 < 0.8" in err
    status, _, err = cli(capsys, "sweep", net, "--points", point, "--delta", "0.45", "--domain", "0.8:1,0:0.2",
                         "--db", db, "--quiet")
    assert status == 0 and sweep_verdicts(db) == [(0, 0.45, "robust")] and WARNING not in err


@pytest.mark.parametrize("text, fragment", [
    ("0:x", "--domain '0:x': 'x' is not a number"),
    ("1:0", "--domain '1:0': the interval is empty: 1 > 0"),
    ("0:inf", "'inf' is not a finite number"),
    ("0:1,0:1,0:1", "3 intervals for a network with 2 inputs"),
    ("0:1,0-1", "interval 1: '0-1' is not LO:HI"),
    ("0:1:2", "'0:1:2' is not LO:HI"),
    ("unit", "--domain 'unit': no such file, and not LO:HI"),
    ("missing.json", "missing.json: no such file"),
])
def test_bad_domain_forms_are_one_line(net, tmp_path, capsys, text, fragment):
    point = tmp_path / "p.json"
    point.write_text(json.dumps(POINT))
    for argv in (["verify", net, "--point", point, "--delta", "0.1"],
                 ["verify", net, "--points", point, "--delta", "0.1"],
                 ["verify", net, "--global", "--delta", "0.1", "--epsilon", "1"],
                 ["max-delta", net, "--point", point],
                 ["sweep", net, "--points", point, "--delta", "0.1", "--db", tmp_path / "s.sqlite"]):
        assert fragment in one_error(capsys, *argv, f"--domain={text}")


def test_a_points_files_domain_is_honoured_everywhere_and_domain_replaces_it(net, tmp_path, capsys):
    with_domain = tmp_path / "points.json"
    with_domain.write_text(json.dumps({"points": [POINT], "domain": NARROW}))
    status, out, err = cli(capsys, "verify", net, "--points", with_domain, "--delta", "0.45")
    assert status == 0 and "(1/1)" in out and f"balls cut to the domain in {with_domain}" in out and WARNING not in err
    status, out, err = cli(capsys, "verify", net, "--points", with_domain, "--delta", "0.45", "--domain", "0:1")
    assert status == 0 and "(0/1)" in out and "not robust 1" in out
    status, out, _ = cli(capsys, "verify", net, "--point", with_domain, "--delta", "0.45")
    assert status == 0 and out.startswith("robust")
    status, out, _ = cli(capsys, "max-delta", net, "--point", with_domain, "--precision", "0.05")
    assert status == 0 and "refuted   none" in out and "in the domain" in out
    db = tmp_path / "s.sqlite"
    assert cli(capsys, "sweep", net, "--points", with_domain, "--delta", "0.45", "--db", db, "--quiet")[0] == 0
    other = tmp_path / "t.sqlite"
    assert cli(capsys, "sweep", net, "--points", with_domain, "--delta", "0.45", "--db", other, "--quiet",
               "--domain", "0:1")[0] == 0
    assert sweep_verdicts(db) == [(0, 0.45, "robust")] and sweep_verdicts(other) == [(0, 0.45, "not robust")]
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"points": [POINT, [0.5, 0.5]], "domain": NARROW}))
    assert "outside.json: point 1: the point is outside the domain: input 0 is 0.5 < 0.8" in one_error(
        capsys, "verify", net, "--points", outside, "--delta", "0.1")


def test_no_domain_is_a_warning_once_and_recorded_in_json(net, tmp_path, capsys):
    point = tmp_path / "p.csv"
    point.write_text("0.9,0.1\n")
    points = tmp_path / "ps.csv"
    points.write_text("0.9,0.1\n0.2,0.7\n")
    for argv in (["verify", net, "--point", point, "--delta", "0.1", "--json"],
                 ["verify", net, "--point", point, "--delta", "0.1", "--epsilon", "0.5", "--json"],
                 ["verify", net, "--points", points, "--delta", "0.1", "0.2", "--json"],
                 ["max-delta", net, "--point", point, "--precision", "0.1", "--json"]):
        status, out, err = cli(capsys, *argv)
        assert status == 0 and err.count(WARNING) == 1 and err.count("\n") == 1, err
        assert "(give --domain LO:HI)" in err
        report = json.loads(out)
        assert any("no input domain" in w for w in report["warnings"])
        assert (report["parameters"] if "parameters" in report else report)["domain"] is None
    status, out, err = cli(capsys, "sweep", net, "--points", points, "--delta", "0.1", "0.2", "--jobs", "2",
                           "--db", tmp_path / "s.sqlite", "--quiet")
    assert status == 0 and err.count(WARNING) == 1
    status, out, err = cli(capsys, "verify", net, "--point", point, "--delta", "0.1", "--domain", "0:1", "--json")
    assert status == 0 and WARNING not in err and "warnings" not in json.loads(out)


def test_a_point_just_outside_its_domain_is_named_with_its_digits(net, tmp_path, capsys):
    point = tmp_path / "p.json"
    point.write_text(json.dumps({"point": [0.5, 1 + 1e-7], "domain": {"lower": 0, "upper": 1}}))
    err = one_error(capsys, "verify", net, "--point", point, "--delta", "0.1")
    assert "input 1 is 1.0000001 > 1, the domain is [0, 1]" in err
    err = one_error(capsys, "verify", net, "--point", point, "--delta", "0.1", "--domain", "0:0.9999999999999999")
    assert "1.0000001 > 0.9999999999999999" in err


def test_max_delta_says_in_the_domain(net, tmp_path, capsys):
    point, domain = tmp_path / "p.csv", tmp_path / "d.json"
    point.write_text("0.9,0.1\n")
    domain.write_text(json.dumps(NARROW))
    status, out, _ = cli(capsys, "max-delta", net, "--point", point, "--domain", domain, "--precision", "0.05")
    assert status == 0 and "L-inf, in the domain, precision 0.05" in out.splitlines()[1]
    status, out, _ = cli(capsys, "max-delta", net, "--point", point, "--precision", "0.05")
    assert status == 0 and "in the domain" not in out


def test_def3_counterexample_says_what_it_means(net, tmp_path, capsys):
    point = tmp_path / "p.csv"
    point.write_text("0.5,0.3\n")
    status, out, _ = cli(capsys, "verify", net, "--point", point, "--delta", "0.1", "--epsilon", "0.1", "--domain", "0:1")
    assert status == 0 and out.startswith("not robust")
    violated = next(line for line in out.splitlines() if line.startswith("violated"))
    assert "label 0's score is at least eps above its score at the point" in violated \
        or "label 0's score is at least eps below its score at the point" in violated
    assert "scores >=" not in out


# ------------------------------------------------------------------ item 2: labels and file formats
POINTS = [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]  # labels 0, 0, 1
TRUE = [0, 1, 1]  # point 1 is misclassified


def labels_files(tmp_path) -> dict:
    np.save(tmp_path / "labels.npy", np.array(TRUE))
    (tmp_path / "labels.csv").write_text("label\n0\n1\n1\n")
    (tmp_path / "labels.json").write_text(json.dumps(TRUE))
    np.savez(tmp_path / "labels.npz", labels=np.array(TRUE))
    return {suffix: tmp_path / f"labels.{suffix}" for suffix in ("npy", "csv", "json", "npz")}


def test_labels_files_for_verify_points_and_sweep(net, tmp_path, capsys):
    points = tmp_path / "points.json"
    points.write_text(json.dumps({"points": POINTS, "labels": [0, 0, 1], "domain": {"lower": 0, "upper": 1}}))
    status, out, _ = cli(capsys, "verify", net, "--points", points, "--delta", "0.05")
    assert status == 0 and "(3/3)" in out and "misclassified 0" in out
    for suffix, labels in labels_files(tmp_path).items():
        status, out, _ = cli(capsys, "verify", net, "--points", points, "--labels", labels, "--delta", "0.05")
        assert status == 0 and "(2/3)" in out and "misclassified 1" in out, suffix  # --labels replaces 'labels'
        assert f"with their true labels from {labels}" in out
        status, out, _ = cli(capsys, "sweep", net, "--points", points, "--labels", labels, "--delta", "0.05",
                             "--db", tmp_path / f"{suffix}.sqlite")
        assert status == 0 and f"true labels from {labels}" in out, suffix
        assert "delta 0.05    certified robust accuracy  66.7% (2/3)" in out and "misclassified 1" in out


@pytest.mark.parametrize("labels, fragment", [
    ([0, "1", 1], "'labels': entry 1: \"1\" is not a label (labels are integers from 0)"),
    ([0, 2, 1], "'labels': entry 1: 2 is not a label of a network with 2 outputs"),
    ([0, -1, 1], "'labels': entry 1: -1 is not a label"),
    ([0, 0.5, 1], "'labels': entry 1: 0.5 is not a label"),
    ([0, True, 1], "'labels': entry 1: true is not a label"),
    ([0, 1], "2 labels for 3 points"),
    ("01", "'labels': expected a list of labels"),
])
def test_bad_labels_in_a_points_file_are_the_same_error_in_verify_and_sweep(net, tmp_path, capsys, labels, fragment):
    points = tmp_path / "points.json"
    points.write_text(json.dumps({"points": POINTS, "labels": labels}))
    in_verify = one_error(capsys, "verify", net, "--points", points, "--delta", "0.1")
    in_sweep = one_error(capsys, "sweep", net, "--points", points, "--delta", "0.1", "--db", tmp_path / "s.sqlite")
    assert fragment in in_verify and in_verify == in_sweep
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("name, content, fragment", [
    ("labels.csv", "0\n1\n2\n", "labels.csv: entry 2 (line 3): 2 is not a label of a network with 2 outputs"),
    ("labels.csv", "0,1\nx\n", "labels.csv: line 2: 'x' is not a number"),
    ("labels.csv", "0\n1\n", "labels.csv: 2 labels for 3 points"),
    ("labels.json", '{"labels": [0, 1, null]}', "labels.json: 'labels': entry 2: null is not a label"),
    ("labels.json", '{"classes": [0, 1, 1]}', "an object with a 'labels' list"),
    ("labels.txt", "0 1 1", "unknown labels file type '.txt': use .npy, .csv, .json or .npz"),
    ("labels.npz", "not a zip", "not a readable .npz archive"),
])
def test_bad_labels_files_are_one_line_naming_the_entry(net, tmp_path, capsys, name, content, fragment):
    points = tmp_path / "points.csv"
    points.write_text("\n".join(",".join(map(str, p)) for p in POINTS))
    labels = tmp_path / name
    labels.write_text(content)
    for argv in (["verify", net, "--points", points, "--labels", labels, "--delta", "0.1"],
                 ["sweep", net, "--points", points, "--labels", labels, "--delta", "0.1", "--db", tmp_path / "s.sqlite"]):
        assert fragment in one_error(capsys, *argv)
    assert "--labels gives the true labels of many points" in one_error(
        capsys, "verify", net, "--point", tmp_path / "points.csv", "--labels", labels, "--delta", "0.1")


def test_npz_points_and_labels(net, tmp_path, capsys):
    np.savez(tmp_path / "set.npz", points=np.array(POINTS), labels=np.array(TRUE), lower=np.zeros(2), upper=np.ones(2))
    np.savez(tmp_path / "one.npz", np.array(POINTS[0]))
    np.savez(tmp_path / "two.npz", a=np.array(POINTS), b=np.array(TRUE))
    status, out, err = cli(capsys, "verify", net, "--points", tmp_path / "set.npz", "--delta", "0.05")
    assert status == 0 and "(2/3)" in out and "misclassified 1" in out and WARNING not in err
    status, out, _ = cli(capsys, "verify", net, "--point", tmp_path / "one.npz", "--delta", "0.05")
    assert status == 0 and out.startswith("robust")
    assert cli(capsys, "sweep", net, "--points", tmp_path / "set.npz", "--delta", "0.05", "--db",
               tmp_path / "s.sqlite", "--quiet")[0] == 0
    assert len(sweep_verdicts(tmp_path / "s.sqlite")) == 3
    err = one_error(capsys, "verify", net, "--points", tmp_path / "two.npz", "--delta", "0.05")
    assert "two.npz: no array named 'points' among 'a', 'b'" in err


def test_one_reader_of_points_for_every_command(net, tmp_path, capsys):
    """The same files give the same point to --point, --points and sweep; the same bad file the same error."""
    (tmp_path / "header.csv").write_text("# a point\nx0,x1\n0.9,0.1\n")
    (tmp_path / "obj.json").write_text(json.dumps({"points": [POINT]}))
    (tmp_path / "image.json").write_text(json.dumps([[0.9], [0.1]]))
    for name in ("header.csv", "obj.json", "image.json"):
        path = tmp_path / name
        status, out, _ = cli(capsys, "verify", net, "--point", path, "--delta", "0.3", "--domain", "0:1")
        assert status == 0 and out.startswith("robust") and "label 0" in out, name
        status, out, _ = cli(capsys, "verify", net, "--points", path, "--delta", "0.3", "--domain", "0:1")
        assert status == 0 and "(1/1)" in out, name
        db = tmp_path / f"{name}.sqlite"
        assert cli(capsys, "sweep", net, "--points", path, "--delta", "0.3", "--domain", "0:1", "--db", db,
                   "--quiet")[0] == 0
        assert sweep_verdicts(db) == [(0, 0.3, "robust")], name
    bad = tmp_path / "points.json"
    bad.write_text(json.dumps([[0.1, 0.2], [0.3, 0.4, 0.5], [0.6, 0.7]]))
    errors = {one_error(capsys, "verify", net, "--points", bad, "--delta", "0.1"),
              one_error(capsys, "sweep", net, "--points", bad, "--delta", "0.1", "--db", tmp_path / "s.sqlite"),
              one_error(capsys, "verify", net, "--point", bad, "--delta", "0.1")}
    assert errors == {f"reluverify: error: {bad}: point 1: 3 values, the network has 2 inputs\n"}
