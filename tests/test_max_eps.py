"""``reluverify max-eps`` and ``Verifier.max_eps``: the bracket of eps*(delta), its outputs and its errors.

The ramp ``y = clip(10 (x_0 - 0.5), -1, 1)`` on ``[0, 1]`` has ``eps*(delta) = min(10 delta, 2)``
(two points across the steep part), known exactly, so the bracket is checked against it.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from reluverify.api import Verifier
from reluverify.cli import main
from reluverify.solver.pair_attack import within
from test_properties_oracles import ramp_net


@pytest.fixture
def ramp(tmp_path):
    return ramp_net(tmp_path, k=10.0, inputs=2)


def test_the_bracket_holds_the_ramps_exact_threshold_and_stops_at_the_gap(ramp, tmp_path, capsys):
    out_csv, out_png = tmp_path / "eps.csv", tmp_path / "eps.png"
    status = main(["max-eps", ramp.path, "--global", "--domain", "0:1", "--delta", "0.02,0.05", "0.3",
                   "--gap", "0.01", "--timeout", "20", "--quiet", "--csv", str(out_csv), "--plot", str(out_png)])
    text = capsys.readouterr().out
    assert status == 0
    assert "domain    --domain 0:1" in text and "gap reached" in text
    rows = list(csv.DictReader(out_csv.open()))
    assert [float(r["delta"]) for r in rows] == [0.02, 0.05, 0.3]
    for row, exact in zip(rows, [0.2, 0.5, 2.0]):
        lower, upper = float(row["lower"]), float(row["upper"])
        assert lower <= exact + 1e-6 <= upper + 2e-6 and upper - lower <= 0.01 * lower + 1e-9
        assert row["status"] == "gap"
    assert out_png.stat().st_size > 1000


def test_json_names_the_pair_onnxruntime_confirmed(ramp, capsys):
    assert main(["max-eps", ramp.path, "--domain", "0:1", "--delta", "0.05", "--timeout", "20", "--json",
                 "--quiet"]) == 0
    payload = json.loads(capsys.readouterr().out)
    bracket = payload["brackets"][0]
    pair = bracket["pair"]
    x1, x2 = np.array(pair["x1"]), np.array(pair["x2"])
    assert np.abs(x2 - x1).max() <= 0.05 and np.all((x1 >= 0) & (x1 <= 1) & (x2 >= 0) & (x2 <= 1))
    assert pair["outputs2"][0] - pair["outputs1"][0] >= bracket["lower"] - 1e-12
    assert payload["kind"] == "max-eps" and payload["domain_source"] == "--domain 0:1"


def test_the_domain_comes_from_the_model_card(capsys):
    assert main(["max-eps", "networks/digits_mlp.onnx", "--delta", "0.01", "--timeout", "3", "--gap", "0.5",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "domain    the model card networks/digits_mlp.json" in text and "eps* in [" in text


@pytest.mark.parametrize("argv, fragment", [
    (["--delta", "0.1"], "max-eps needs a domain"),
    (["--domain", "0:1", "--delta", "0.1", "--gap", "-1"], "--gap must be a number >= 0"),
    (["--domain", "0:1", "--delta", "0.1", "--timeout", "0"], "--timeout: must be a finite number of seconds > 0"),
    (["--domain", "0:1", "--delta", "-0.1"], "delta"),
    (["--domain", "0:1", "--delta", "0.1", "--csv", "/no/such/folder/x.csv"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(ramp, capsys, argv, fragment):
    assert main(["max-eps", ramp.path, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("reluverify: error:") and fragment in err


def test_the_api_gives_the_same_bracket(ramp):
    result = Verifier(ramp.path).max_eps([[0, 0], [1, 1]], [0.05, 0.1], gap=0.01, timeout=20)
    assert [b.delta for b in result.brackets] == [0.05, 0.1]
    for bracket, exact in zip(result.brackets, [0.5, 1.0]):
        assert bracket.lower <= exact + 1e-6 <= bracket.upper + 2e-6
        assert bracket.gap <= 0.01 and bracket.status == "gap"
    assert "eps* in [" in result.summary()


def test_a_pair_is_moved_within_the_radius_as_float64_computes_it():
    rng = np.random.default_rng(0)
    x1 = rng.uniform(0.0, 1.0, (1000, 5))
    delta = 0.01
    for norm in ("inf", "1"):
        d = delta * rng.choice([-1.0, 1.0], (1000, 5)) / (1.0 if norm == "inf" else 5.0)
        x2 = within(x1, x1 + d, np.zeros(5), np.ones(5), delta, norm)
        gap = np.abs(x2 - x1).max(axis=1) if norm == "inf" else np.abs(x2 - x1).sum(axis=1)
        assert np.all(gap <= delta) and np.all((x2 >= 0) & (x2 <= 1))
        assert np.abs(x2 - np.clip(x1 + d, 0.0, 1.0)).max() < 1e-9  # only a rounding step moved it


def test_a_delta_wider_than_the_domain_is_cut_to_it(ramp, capsys):
    assert main(["max-eps", ramp.path, "--domain", "0:1", "--delta", "1e308", "--timeout", "10", "--json",
                 "--quiet"]) == 0
    bracket = json.loads(capsys.readouterr().out)["brackets"][0]
    assert bracket["lower"] <= 2.0 + 1e-6 <= bracket["upper"] + 2e-6  # every pair of [0, 1]: eps* = 2
    assert 0.0 <= bracket["settled"] <= 1.0
