"""`reluverify verify` and `reluverify max-delta`: verdicts, JSON, counterexample files, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reluverify.cli import main
from test_properties_oracles import difference_net, forward, ramp_net

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "networks" / "digits_mlp.onnx"
POINT = REPO / "networks" / "digits_point0.json"


def run(*args):
    return subprocess.run([sys.executable, "-m", "reluverify", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO)


def verify_json(capsys, *args) -> dict:
    assert main(["verify", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_local_robust_and_not_robust_on_a_shipped_network(tmp_path):
    robust = run("verify", DIGITS, "--point", POINT, "--delta", "0.02")
    assert robust.returncode == 0, robust.stderr
    lines = robust.stdout.splitlines()
    assert lines[0] == "robust"
    assert "label 2" in robust.stdout and "splits" in robust.stdout and "time" in robust.stdout
    cex = tmp_path / "cex.json"
    broken = run("verify", DIGITS, "--point", POINT, "--delta", "0.2", "--cex-out", cex,
                 "--vnncomp-out", tmp_path / "result.txt")
    assert broken.returncode == 0, broken.stderr
    assert broken.stdout.splitlines()[0] == "not robust"
    assert "violated  label" in broken.stdout and "scores >= label 2" in broken.stdout
    saved = json.loads(cex.read_text())
    for key in ("inputs", "outputs", "point", "distance", "violated", "network"):
        assert key in saved
    assert saved["violated"]["description"].endswith("scores >= label 2")
    assert len(saved["network"]["sha256"]) == 64 and saved["distance"] <= 0.2 + 1e-12
    arrays = np.load(tmp_path / "cex.npz")
    np.testing.assert_array_equal(arrays["inputs"], saved["inputs"])
    assert float(arrays["distance"]) == saved["distance"]
    text = (tmp_path / "result.txt").read_text()
    assert text.startswith("sat\n((X_0 ") and "(Y_9 " in text and "(X_64 " not in text


def test_json_reports_for_each_property(tmp_path, capsys):
    net = difference_net(tmp_path)
    point = tmp_path / "p.csv"
    point.write_text("0.5,0.3\n")
    local = verify_json(capsys, net.path, "--point", point, "--delta", "0.1", "--norm", "1")
    assert local["verdict"] == "robust" and local["label"] == 0 and local["solver_verdict"] == "unsat"
    assert local["parameters"]["norm"] == "1"
    eps = verify_json(capsys, net.path, "--point", point, "--delta", "0.1", "--epsilon", "0.1")
    assert eps["kind"] == "eps-local-robustness" and eps["verdict"] == "not robust"
    assert eps["counterexample"]["violated"].startswith("label 0's score is at least eps")
    domain = tmp_path / "d.json"
    domain.write_text(json.dumps({"lower": [0, 0], "upper": [1, 1]}))
    glob = verify_json(capsys, net.path, "--global", "--domain", domain, "--delta", "0.05", "--epsilon", "0.5",
                       "--partitions", "3", "--jobs", "2")
    assert glob["kind"] == "global-robustness" and glob["verdict"] == "robust"
    assert glob["subdomain_verdicts"] == ["unsat"] * 3  # the pair screening decides, per sub-domain
    tie_point = tmp_path / "tie.json"
    tie_point.write_text("[0.25, 0.25]")
    tie = verify_json(capsys, net.path, "--point", tie_point, "--delta", "0.1")
    assert tie["verdict"] == "tie" and tie["ties"] == [0, 1] and tie["holds"] is False


def test_global_counterexample_names_its_sub_domain(tmp_path, capsys):
    net = ramp_net(tmp_path, inputs=1)
    domain = tmp_path / "d.npy"
    np.save(domain, np.array([[0.0], [1.0]]))
    cex = tmp_path / "pair"
    report = verify_json(capsys, net.path, "--global", "--domain", domain, "--delta", "0.2", "--epsilon", "1.5",
                         "--partitions", "2", "--cex-out", cex)
    assert report["verdict"] == "not robust"
    sub = report["counterexample"]["subdomain"]
    assert sub in (0, 1) and report["subdomain_verdicts"][sub] == "sat"
    saved = json.loads(cex.read_text())
    x1, x2 = np.array(saved["inputs"]), np.array(saved["point"])
    assert abs(forward(net, x1)[0] - forward(net, x2)[0]) >= 1.5 - 1e-6
    assert (tmp_path / "pair.npz").exists() and report["files"] == [str(cex), str(cex) + ".npz"]


def test_max_delta_human_summary(tmp_path):
    net = difference_net(tmp_path)
    point = tmp_path / "p.npy"
    np.save(point, np.array([0.5, 0.3]))
    proc = run("max-delta", net.path, "--point", point, "--precision", "0.01", "--upper", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "converged"
    assert "certified 0.09" in proc.stdout and "refuted   0.1" in proc.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--point", "{short}", "--delta", "0.1"], "the point has 3 values, the network has 2 inputs"),
        (["--point", "{nan}", "--delta", "0.1"], "is nan (not a finite number)"),
        (["--point", "{outside}", "--delta", "0.1", "--domain", "{domain}"], "outside the domain: input 0 is 1.5"),
        (["--point", "{good}", "--delta", "-1"], "delta must be a finite number >= 0"),
        (["--point", "{good}", "--delta", "0.1", "--epsilon", "nan"], "epsilon must be a finite number >= 0"),
        (["--global", "--delta", "0.1", "--epsilon", "0.1"], "--global needs --domain FILE"),
        (["--global", "--domain", "{domain}", "--delta", "0.1"], "--global needs --epsilon"),
        (["--global", "--domain", "{domain}", "--point", "{good}", "--delta", "0.1", "--epsilon", "1"], "drop --point"),
        (["--delta", "0.1"], "give --point FILE"),
        (["--point", "{good}", "--delta", "0.1", "--partitions", "2"], "--partitions and --subdomain-timeout apply to --global only"),
        (["--global", "--domain", "{domain}", "--delta", "0.1", "--epsilon", "1", "--partitions", "0"],
         "partitions must be an integer >= 1"),
        (["--point", "{missing}", "--delta", "0.1"], "no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, fragment):
    net = difference_net(tmp_path)
    files = {
        "short": tmp_path / "short.json", "nan": tmp_path / "nan.csv", "outside": tmp_path / "outside.json",
        "good": tmp_path / "good.json", "domain": tmp_path / "domain.json", "missing": tmp_path / "missing.npy",
    }
    files["short"].write_text("[1, 2, 3]")
    files["nan"].write_text("0.5,nan\n")
    files["outside"].write_text("[1.5, 0.5]")
    files["good"].write_text("[0.5, 0.2]")
    files["domain"].write_text('{"lower": 0, "upper": 1}')
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    assert main(["verify", net.path, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reluverify: error: ") and err.count("\n") == 1, err
    assert fragment in err


def test_bad_input_in_a_fresh_process_has_no_traceback(tmp_path):
    net = difference_net(tmp_path)
    point = tmp_path / "p.json"
    point.write_text("[0.5, NaN]")
    proc = run("verify", net.path, "--point", point, "--delta", "0.1")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "value 1 of the point is nan" in proc.stderr


def test_max_delta_bad_point_is_exit_2(tmp_path):
    net = difference_net(tmp_path)
    bad = tmp_path / "p.json"
    bad.write_text("[0.1]")
    proc = run("max-delta", net.path, "--point", bad)
    assert proc.returncode == 2 and "the point has 1 values, the network has 2 inputs" in proc.stderr
