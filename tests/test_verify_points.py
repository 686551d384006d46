"""`reluverify verify NETWORK.onnx --delta D [D ...]` without --point: certified robust accuracy over many points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reluverify.cli import main
from reluverify.errors import SpecError
from reluverify.sweep.accuracy import network_labels, robust_accuracy
from reluverify.sweep.evaluation import from_card
from reluverify.properties.inputs import read_point_set
from test_properties_oracles import difference_net

REPO = Path(__file__).resolve().parents[1]

# difference_net: label 0 where x0 > x1, and the label changes within L-inf radius |x0 - x1| / 2
POINTS = [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]  # radii 0.4, 0.1, 0.3; labels 0, 0, 1
TRUE = [0, 1, 1]  # point 1 is misclassified


def run(*args):
    return subprocess.run([sys.executable, "-m", "reluverify", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO)


@pytest.fixture
def labelled(tmp_path):
    net = difference_net(tmp_path)
    points = tmp_path / "points.json"
    points.write_text(json.dumps({"points": POINTS, "labels": TRUE}))
    return net, points


def test_points_file_gives_one_line_per_delta_and_counts_misclassified_points_against(labelled, capsys):
    net, points = labelled
    assert main(["verify", net.path, "--points", str(points), "--delta", "0.05", "0.2", "0.35", "--verbose"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("delta ")]
    assert len(lines) == 3
    assert "certified robust accuracy  66.7% (2/3)" in lines[0] and "robust 3, misclassified 1" in lines[0]
    assert "(2/3)" in lines[1] and "robust 2, not robust 1" in lines[1]
    assert "(1/3)" in lines[2] and "robust 1, not robust 2" in lines[2]
    assert "with their true labels" in out
    per_point = [line for line in out.splitlines() if line.startswith("  point ")]
    assert len(per_point) == 9
    assert "label 0 (true 1)" in per_point[1] and "misclassified" in per_point[1]


def test_json_and_counterexample_folder(labelled, capsys, tmp_path):
    net, points = labelled
    folder = tmp_path / "cex"
    assert main(["verify", net.path, "--points", str(points), "--delta", "0.2", "0.35", "--json",
                 "--cex-out", str(folder)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [a["certified"] for a in report["accuracy"]] == [2, 1]
    assert report["accuracy"][1]["certified_robust_accuracy"] == pytest.approx(1 / 3)
    assert report["points"]["labels"] is True and report["points"]["count"] == 3
    refuted = [p for p in report["per_point"] if p["verdict"] == "not robust"]
    assert {(p["point_index"], p["delta"]) for p in refuted} == {(1, 0.2), (1, 0.35), (2, 0.35)}
    written = sorted(Path(f).name for f in report["files"])
    assert written == sorted(f"point{i}_delta{d:g}.{ext}" for i, d in [(1, 0.2), (1, 0.35), (2, 0.35)]
                             for ext in ("json", "npz"))
    cex = json.loads((folder / "point2_delta0.35.json").read_text())
    assert cex["format"] == "reluverify-counterexample" and cex["verdict"] == "not robust"
    x = np.array(cex["inputs"])
    assert np.max(np.abs(x - np.array(POINTS[2]))) <= 0.35 + 1e-9
    assert x[0] >= x[1]  # the label left 1


def test_no_labels_means_robust_over_total(tmp_path, capsys):
    net = difference_net(tmp_path)
    points = tmp_path / "points.csv"
    points.write_text("\n".join(",".join(map(str, p)) for p in POINTS) + "\n")
    assert main(["verify", net.path, "--points", str(points), "--delta", "0.05", "--epsilon", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "no labels" in out and "(Def. 3)" in out and "(3/3)" in out and "misclassified" not in out


def test_the_sweeps_worker_pool_runs_the_points_with_jobs_and_timeout(labelled, monkeypatch, capsys):
    from reluverify.sweep import backends

    seen = {}
    original = backends.LocalBackend.__init__

    def spy(self, jobs=1, timeout=60.0, **kwargs):
        seen.update(jobs=jobs, timeout=timeout)
        original(self, jobs, timeout=timeout, **kwargs)

    monkeypatch.setattr(backends.LocalBackend, "__init__", spy)
    net, points = labelled
    assert main(["verify", net.path, "--points", str(points), "--delta", "0.2", "--jobs", "2", "--timeout", "7"]) == 0
    assert seen == {"jobs": 2, "timeout": 7.0}
    assert "(2/3)" in capsys.readouterr().out


def test_without_points_the_error_names_the_three_ways(tmp_path):
    net = difference_net(tmp_path)
    proc = run("verify", net.path, "--delta", "0.1")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    for option in ("--point FILE", "--points FILE", "--global --domain FILE"):
        assert option in proc.stderr
    Path(net.path).with_suffix(".json").write_text(json.dumps({"name": "a card without points"}))
    proc = run("verify", net.path, "--delta", "0.1")
    assert proc.returncode == 2 and "names no evaluation points" in proc.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--point", "{points}", "--points", "{points}", "--delta", "0.1"], "not both"),
        (["--point", "{point}", "--delta", "0.1", "0.2", "--vnncomp-out", "x.txt"], "give one --delta"),
        (["--point", "{point}", "--delta", "0.1", "--verbose"], "--verbose applies to many points"),
        (["--points", "{points}", "--delta", "0.1", "--vnncomp-out", "x.txt"], "use it with --point FILE"),
        (["--points", "{points}", "--delta", "-0.1"], "delta must be a finite number >= 0"),
        (["--points", "{bad_labels}", "--delta", "0.1"], "2 labels for 3 points"),
    ],
)
def test_bad_input_is_one_line(labelled, tmp_path, capsys, args, fragment):
    net, points = labelled
    point = tmp_path / "p.json"
    point.write_text("[0.5, 0.2]")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"points": POINTS, "labels": [0, 1]}))
    files = {"points": points, "point": point, "bad_labels": bad}
    assert main(["verify", net.path, *[a.format(**files) for a in args]]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_robust_accuracy_counts():
    rows = [
        {"point_index": 0, "delta": 0.1, "epsilon": None, "verdict": "robust", "label": 0, "seconds": 1.0},
        {"point_index": 1, "delta": 0.1, "epsilon": None, "verdict": "robust", "label": 0, "seconds": 1.0},
        {"point_index": 2, "delta": 0.1, "epsilon": None, "verdict": "timeout", "label": 1, "seconds": 5.0},
        {"point_index": 0, "delta": 0.01, "epsilon": None, "verdict": "robust", "label": 0, "seconds": 1.0},
    ]
    table, outcomes = robust_accuracy(rows[:3], [0, 0, 1], [0, 1, 1])
    (acc,) = table
    assert (acc.total, acc.certified, acc.misclassified, acc.counts) == (3, 1, 1, {"robust": 2, "timeout": 1})
    assert acc.seconds == 7.0 and [o.certified for o in outcomes] == [True, False, False]
    table, _ = robust_accuracy(rows, [0, 0, 1])  # labels unknown: robust / total, deltas in order
    assert [(a.delta, a.certified, a.total) for a in table] == [(0.01, 1, 1), (0.1, 2, 3)]
    assert network_labels(np.array([[1.0, 2.0], [3.0, 3.0], [0.0, -1.0]])) == [1, None, 0]
    assert network_labels(np.array([[1.0, 2.0]]), "min") == [0]


def test_labels_reader(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"points": POINTS, "labels": TRUE}))
    assert read_point_set(good, 2).labels.tolist() == TRUE
    csv = tmp_path / "x.csv"
    csv.write_text("0.9,0.1\n")
    assert read_point_set(csv, 2).labels is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"points": POINTS, "labels": [0, "1", 1]}))
    with pytest.raises(SpecError, match="'labels': entry 1: \"1\" is not a label"):
        read_point_set(bad, 2)


def test_a_card_that_names_its_points_badly_is_a_one_line_error(tmp_path):
    net = difference_net(tmp_path)
    card = Path(net.path).with_suffix(".json")
    card.write_text(json.dumps({"evaluation_points": {"file": "missing.json"}}))
    with pytest.raises(SpecError, match="not beside the card"):
        from_card(net.path, 2)
    (tmp_path / "p.json").write_text(json.dumps({"points": POINTS}))
    card.write_text(json.dumps({"evaluation_points": {"file": "p.json", "decision": "median"}}))
    with pytest.raises(SpecError, match="unknown decision rule"):
        from_card(net.path, 2)
    card.write_text(json.dumps({"evaluation_points": {"file": "p.json", "domain": {"lower": [0, 0, 0], "upper": [1, 1, 1]}}}))
    with pytest.raises(SpecError, match="3 inputs, the network has 2"):
        from_card(net.path, 2)
    card.write_text(json.dumps({"evaluation_points": {"file": "p.json", "decision": "min"}}))
    found = from_card(net.path, 2)
    assert found.decision == "min" and found.labels is None and found.points.shape == (3, 2)
