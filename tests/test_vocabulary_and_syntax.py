"""One vocabulary and one syntax: verdict words, --delta forms, several deltas at a point, exit status for CI,
Verifier.certified_accuracy, and one-line argument errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from reluverify.cli import main
from test_properties_oracles import difference_net

REPO = Path(__file__).resolve().parents[1]

# difference_net: label 0 where x0 > x1; from (a, b) the label changes within L-inf radius (a - b) / 2
POINT = [0.6, 0.4]  # label 0, radius 0.1
POINTS = [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]  # radii 0.4, 0.1, 0.3; labels 0, 0, 1
TRUE = [0, 1, 1]  # point 1 is misclassified


def run(*args):
    return subprocess.run([sys.executable, "-m", "reluverify", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO)


@pytest.fixture
def net(tmp_path):
    return difference_net(tmp_path)


@pytest.fixture
def point(tmp_path):
    path = tmp_path / "point.json"
    path.write_text(json.dumps(POINT))
    return path


@pytest.fixture
def labelled(tmp_path):
    path = tmp_path / "points.json"
    path.write_text(json.dumps({"points": POINTS, "labels": TRUE}))
    return path


def one_error_line(capsys, argv, *fragments) -> str:
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("reluverify: error: ") and err.count("\n") == 1, err
    assert "usage:" not in err and "usage:" not in captured.out
    for fragment in fragments:
        assert fragment in err, err
    return err


# ------------------------------------------------------------------ one vocabulary
def test_a_vnnlib_specification_answers_sat_or_unsat_in_the_api_the_text_and_the_json(test_bench_dir, capsys):
    from reluverify import Verifier

    spec = test_bench_dir / "test_prop.vnnlib"
    for name, verdict, holds in (("test_sat.onnx", "sat", False), ("test_unsat.onnx", "unsat", True)):
        network = test_bench_dir / name
        api = Verifier(network).vnnlib(spec)
        assert api.verdict == verdict and api.holds is holds and api.to_dict()["verdict"] == verdict
        assert api.summary().splitlines()[0] == verdict
        assert main(["vnnlib", str(network), str(spec), "--quiet"]) == 0
        assert capsys.readouterr().out.splitlines()[0] == verdict
        assert main(["vnnlib", str(network), str(spec), "--json", "--quiet"]) == 0
        assert json.loads(capsys.readouterr().out)["verdict"] == verdict


def test_a_robustness_property_answers_in_the_same_words_in_the_api_the_text_and_the_json(net, point, capsys):
    from reluverify import Verifier

    for delta, verdict in ((0.05, "robust"), (0.2, "not robust")):
        assert Verifier(net.path).local_robustness(str(point), delta).verdict == verdict
        assert main(["verify", net.path, "--point", str(point), "--delta", str(delta), "--quiet"]) == 0
        assert capsys.readouterr().out.splitlines()[0] == verdict
        assert main(["verify", net.path, "--point", str(point), "--delta", str(delta), "--json", "--quiet"]) == 0
        assert json.loads(capsys.readouterr().out)["verdict"] == verdict


def test_the_meaning_of_sat_is_stated_in_vnnlib_help_and_the_readme(capsys):
    with pytest.raises(SystemExit) as info:
        main(["vnnlib", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "sat = the specification's condition can be met: a counterexample exists (the property is violated)" in text
    assert "unsat = it cannot (the property holds)" in text
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "`sat` -- the condition can be met: a counterexample exists" in readme
    assert "`unsat` -- it cannot: the property holds" in readme


# ------------------------------------------------------------------ one syntax for --delta
@pytest.mark.parametrize("forms", [["0.05,0.2"], ["0.05", "0.2"], ["0.05,", "0.2"]])
def test_verify_at_a_point_takes_every_form_of_delta(net, point, capsys, forms):
    assert main(["verify", net.path, "--point", str(point), "--delta", *forms, "--json", "--quiet"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["parameters"]["delta"] for r in results] == [0.05, 0.2]
    assert [r["verdict"] for r in results] == ["robust", "not robust"]


def test_verify_at_many_points_and_sweep_take_the_comma_form_too(net, labelled, tmp_path, capsys):
    assert main(["verify", net.path, "--points", str(labelled), "--delta", "0.05,0.2", "0.35", "--json"]) == 0
    assert [a["delta"] for a in json.loads(capsys.readouterr().out)["accuracy"]] == [0.05, 0.2, 0.35]
    db = tmp_path / "s.sqlite"
    assert main(["sweep", net.path, "--points", str(labelled), "--delta", "0.05,0.2", "0.35", "--db", str(db),
                 "--quiet"]) == 0
    import sqlite3

    with sqlite3.connect(db) as connection:
        deltas = sorted({row[0] for row in connection.execute("SELECT delta FROM results")})
    assert deltas == [0.05, 0.2, 0.35]


@pytest.mark.parametrize("command", ["point", "points", "sweep"])
def test_a_bad_delta_is_one_line_naming_it_in_every_command(net, point, labelled, tmp_path, capsys, command):
    argv = {
        "point": ["verify", net.path, "--point", point],
        "points": ["verify", net.path, "--points", labelled],
        "sweep": ["sweep", net.path, "--points", labelled, "--db", tmp_path / "s.sqlite"],
    }[command]
    one_error_line(capsys, [*argv, "--delta", "0.1,abc"], "argument --delta", "'abc' is not a number")
    one_error_line(capsys, [*argv, "--delta", "0.1", "-0.5"], "delta must be a finite number >= 0, got -0.5")
    one_error_line(capsys, [*argv, "--delta", "inf"], "delta must be a finite number >= 0")


# ------------------------------------------------------------------ several deltas at one point
def test_several_deltas_at_one_point_one_line_each_and_counterexamples_per_delta(net, point, tmp_path, capsys):
    folder = tmp_path / "cex"
    assert main(["verify", net.path, "--point", str(point), "--delta", "0.05", "0.2", "0.35",
                 "--cex-out", str(folder), "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("delta ")]
    assert len(lines) == 3
    assert lines[0].split()[2] == "robust" and "not robust" in lines[1] and "not robust" in lines[2]
    assert "violated label 1 scores >= label 0" in lines[1] and "label 0" in out.splitlines()[0]
    assert sorted(p.name for p in folder.iterdir()) == [
        "point0_delta0.2.json", "point0_delta0.2.npz", "point0_delta0.35.json", "point0_delta0.35.npz"]
    saved = json.loads((folder / "point0_delta0.35.json").read_text())
    assert saved["parameters"]["delta"] == 0.35 and saved["distance"] <= 0.35 + 1e-12


def test_several_epsilons_at_one_point_and_several_deltas_on_a_domain(net, point, tmp_path, capsys):
    assert main(["verify", net.path, "--point", str(point), "--delta", "0.1", "--epsilon", "0.05,0.5", "--json",
                 "--quiet"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["parameters"]["epsilon"], r["verdict"]) for r in results] == [(0.05, "not robust"), (0.5, "robust")]
    domain = tmp_path / "domain.json"
    domain.write_text(json.dumps({"lower": [0, 0], "upper": [1, 1]}))
    # y0 = x0 - x1 moves by at most 2 * delta: robust for eps 0.5 up to delta 0.25
    assert main(["verify", net.path, "--global", "--domain", str(domain), "--delta", "0.05,0.3", "--epsilon", "0.5",
                 "--json", "--quiet"]) == 0
    assert [r["verdict"] for r in json.loads(capsys.readouterr().out)] == ["robust", "not robust"]


def test_what_writes_one_answer_refuses_several_deltas(net, point, tmp_path, capsys):
    one_error_line(capsys, ["verify", net.path, "--point", point, "--delta", "0.05,0.2", "--proof", tmp_path / "p.npz"],
                   "give one --delta")
    one_error_line(capsys, ["verify", net.path, "--points", point, "--delta", "0.05", "--epsilon", "0.1,0.2"],
                   "several --epsilon values apply to one --point or --global")


# ------------------------------------------------------------------ exit status for CI
def test_fail_on_violation_at_a_point(net, point, tmp_path):
    tie = tmp_path / "tie.json"
    tie.write_text("[0.5, 0.5]")
    cases = [
        (["--point", point, "--delta", "0.05"], 0),
        (["--point", point, "--delta", "0.2"], 1),
        (["--point", point, "--delta", "0.05,0.2"], 1),
        (["--point", tie, "--delta", "0.05"], 1),
    ]
    for args, status in cases:
        assert run("verify", net.path, *args, "--quiet").returncode == 0  # without the flag nothing changes
        proc = run("verify", net.path, *args, "--quiet", "--fail-on-violation")
        assert proc.returncode == status, (args, proc.stderr)


def test_fail_on_violation_over_many_points_counts_misclassified_points(net, labelled, tmp_path, capsys):
    assert main(["verify", net.path, "--points", str(labelled), "--delta", "0.05", "--fail-on-violation"]) == 1
    correct = tmp_path / "correct.json"
    correct.write_text(json.dumps({"points": POINTS, "labels": [0, 0, 1]}))
    assert main(["verify", net.path, "--points", str(correct), "--delta", "0.05", "--fail-on-violation"]) == 0
    assert main(["verify", net.path, "--points", str(correct), "--delta", "0.2", "--fail-on-violation"]) == 1
    assert main(["verify", net.path, "--points", str(correct), "--delta", "0.2"]) == 0


def test_fail_on_violation_for_vnnlib_and_sweep(test_bench_dir, net, labelled, tmp_path):
    spec = test_bench_dir / "test_prop.vnnlib"
    assert run("vnnlib", test_bench_dir / "test_sat.onnx", spec, "--fail-on-violation").returncode == 1
    assert run("vnnlib", test_bench_dir / "test_unsat.onnx", spec, "--fail-on-violation").returncode == 0
    assert run("vnnlib", test_bench_dir / "test_sat.onnx", spec).returncode == 0
    db = tmp_path / "s.sqlite"
    sweep = ["sweep", net.path, "--points", labelled, "--db", db, "--quiet"]
    assert run(*sweep, "--delta", "0.05", "--fail-on-violation").returncode == 0
    assert run(*sweep, "--delta", "0.05", "0.2").returncode == 0
    assert run(*sweep, "--delta", "0.05", "0.2", "--fail-on-violation").returncode == 1  # rows already there


def test_verdict_status_rules():
    from reluverify.cli.common import verdict_status

    def status(verdicts, violation=False, unknown=False, violated=False):
        return verdict_status(verdicts, SimpleNamespace(fail_on_violation=violation, fail_on_unknown=unknown),
                              violated=violated)

    assert status(["not robust", "sat", "timeout"]) == 0  # without the flags: 0 whatever the verdicts
    assert status(["robust", "unknown", "timeout"], violation=True) == 0
    assert status(["robust", "unknown"], unknown=True) == 1 and status(["error"], unknown=True) == 1
    assert status(["robust", "tie"], violation=True) == 1 and status(["sat"], violation=True) == 1
    assert status(["robust"], violation=True, violated=True) == 1
    assert status(["unsat", "robust"], violation=True, unknown=True) == 0


# ------------------------------------------------------------------ certified accuracy in the API
def test_certified_accuracy_gives_the_numbers_verify_prints(net, labelled, capsys):
    from reluverify import Verifier

    assert main(["verify", net.path, "--points", str(labelled), "--delta", "0.05", "0.2", "0.35", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["accuracy"]
    verifier = Verifier(net.path)
    from_file = verifier.certified_accuracy(labelled, deltas=[0.05, 0.2, 0.35])
    from_arrays = verifier.certified_accuracy(np.array(POINTS), TRUE, [0.05, 0.2, 0.35], jobs=2)
    for result in (from_file, from_arrays):
        assert [e.to_dict()["verdicts"] for e in result.per_delta] == [a["verdicts"] for a in cli]
        assert [(e.certified, e.total, e.misclassified) for e in result.per_delta] == \
            [(a["certified"], a["total"], a["misclassified"]) for a in cli]
    entry = from_arrays.at(0.2)
    assert (entry.certified, entry.robust, entry.not_robust, entry.misclassified, entry.unknown, entry.total) == \
        (2, 2, 1, 1, 0, 3)
    assert entry.accuracy == pytest.approx(2 / 3)
    assert [p.certified for p in from_arrays.points if p.delta == 0.2] == [True, False, True]
    assert "certified robust accuracy  66.7% (2/3)" in from_arrays.summary().splitlines()[1]
    json.dumps(from_arrays.to_dict())
    unlabelled = verifier.certified_accuracy(np.array(POINTS), deltas=0.2, epsilon=None)
    assert unlabelled.at(0.2).certified == 2 and not unlabelled.labels_known


def test_certified_accuracy_on_an_in_memory_network_and_bad_labels():
    from reluverify import Verifier
    from reluverify.errors import SpecError
    from reluverify.network import ReluChain

    chain = ReluChain((np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([[1.0, -1.0], [0.0, 0.0]])),
                      (np.zeros(2), np.zeros(2)))
    verifier = Verifier(chain.to_network())
    result = verifier.certified_accuracy(POINTS, [0, 0, 1], deltas=[0.05, 0.2], domain=(0, 1))
    assert [e.certified for e in result.per_delta] == [3, 2]
    with pytest.raises(SpecError, match=r"labels: entry 2 is 2; a label is an integer 0 \.\. 1"):
        verifier.certified_accuracy(POINTS, [0, 0, 2], deltas=0.1)
    with pytest.raises(SpecError, match="labels: entry 1 is 'x'"):
        verifier.certified_accuracy(POINTS, [0, "x", 1], deltas=0.1)
    with pytest.raises(SpecError, match="2 labels for 3 points"):
        verifier.certified_accuracy(POINTS, [0, 0], deltas=0.1)
    with pytest.raises(TypeError, match="needs deltas"):
        verifier.certified_accuracy(POINTS)


# ------------------------------------------------------------------ argument errors in one line
@pytest.mark.parametrize("argv, fragment", [
    (["verify", "net.onnx"], "the following arguments are required: --delta"),
    (["verify", "net.onnx", "--delta", "0.1", "--norm", "2"], "argument --norm: invalid choice: '2'"),
    (["vnnlib", "net.onnx"], "the following arguments are required: spec"),
    (["sweep", "net.onnx", "--delta", "0.1"], "the following arguments are required: --points, --db"),
    (["max-delta", "net.onnx", "--point", "p.json", "--precision", "x"], "argument --precision: invalid float value"),
    (["report"], "the following arguments are required"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    (["verify", "net.onnx", "--delta", "0.1", "--bogus"], "unrecognized arguments: --bogus (see reluverify verify --help)"),
    (["max-eps", "net.onnx", "extra", "--delta", "0.1"], "unrecognized arguments: extra (see reluverify max-eps --help)"),
    (["--bogus"], "unrecognized arguments: --bogus (see reluverify --help)"),
])
def test_argument_errors_are_one_line_and_exit_2(capsys, argv, fragment):
    one_error_line(capsys, argv, fragment)


def test_argument_errors_in_a_fresh_process_are_one_line():
    proc = run("verify", "net.onnx", "--delta", "0.1", "--bogus")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "usage:" not in proc.stderr
    assert proc.stderr.startswith("reluverify: error: unrecognized arguments: --bogus")


def test_partitions_guidance_is_in_the_help_and_the_readme(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "makes a proof slower" in text and "use --subdomain-timeout instead" in text
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "**Which to use.** Start with neither." in readme and "| `--domain`, eps | one query |" in readme
