"""Maximal delta: the bracket around a known radius, and the CLI on a shipped network, confirmed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from reluverify.onnx_import import load_onnx
from reluverify.onnx_runtime import reference_model
from reluverify.properties.local import LocalRobustness
from reluverify.properties.max_delta import domain_reach, max_delta
from reluverify.properties.inputs import Domain, load_point_and_domain
from reluverify.solver import SolverOptions
from test_properties_oracles import breaks_local, difference_net

REPO = Path(__file__).resolve().parents[1]
POINT = REPO / "networks" / "digits_point0.json"


def test_known_radius_of_the_difference_network(tmp_path):
    """From (0.5, 0.3) the label changes at L-inf radius 0.1 and L1 radius 0.2 exactly."""
    net = difference_net(tmp_path)
    for norm, radius in (("inf", 0.1), ("1", 0.2)):
        result = max_delta(net.network, [0.5, 0.3], precision=1e-3, norm=norm, upper=1.0, timeout=60)
        assert result.converged and result.verdict == "converged"
        assert result.certified <= radius <= result.refuted
        assert result.refuted - result.certified <= 1e-3
        cex = result.counterexample
        assert cex.distance <= result.refuted + 1e-9
        assert breaks_local(net, cex.inputs, 0)
        assert result.probes[0]["delta"] == 1.0


def test_robust_up_to_the_domain_reach(tmp_path):
    net = difference_net(tmp_path)
    domain = Domain(np.array([0.45, -1.0]), np.array([1.0, 0.35]))  # label 0 everywhere inside
    point = np.array([0.5, 0.3])
    result = max_delta(net.network, point, domain=domain, timeout=60)
    assert result.refuted is None and result.counterexample is None
    assert result.certified == result.upper == domain_reach(point, domain, "inf") == 1.3
    assert result.verdict == "robust up to the upper limit"
    assert len(result.probes) == 1


def test_tie_at_the_point_is_reported(tmp_path):
    result = max_delta(difference_net(tmp_path).network, [0.2, 0.2], timeout=60)
    assert result.ties == (0, 1) and result.verdict == "tie" and result.certified is None
    assert result.probes == []


def test_cli_on_a_shipped_network_is_confirmed(tmp_path):
    """`reluverify max-delta` on digits_mlp_small: the counterexample at <= certified + precision
    changes the label under onnxruntime, and Def. 1 is re-proven at the certified delta."""
    network_path = REPO / "networks" / "digits_mlp_small.onnx"
    cex_file = tmp_path / "cex.json"
    precision = 2e-3
    proc = subprocess.run(
        [sys.executable, "-m", "reluverify", "max-delta", str(network_path), "--point", str(POINT),
         "--precision", str(precision), "--json", "--cex-out", str(cex_file)],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    certified, refuted = report["certified_delta"], report["refuted_delta"]
    assert report["converged"] and 0 < certified < refuted <= certified + precision
    # the counterexample, replayed on the ONNX file by onnxruntime
    saved = json.loads(cex_file.read_text())
    arrays = np.load(tmp_path / "cex.npz")
    network = load_onnx(network_path)
    point, domain = load_point_and_domain(POINT, network.input_size)
    x = np.asarray(saved["inputs"])
    np.testing.assert_array_equal(x, arrays["inputs"])
    assert np.abs(x - point).max() <= refuted + 1e-12
    assert domain.contains(x)
    y = reference_model(str(network_path))(x)
    label = report["label"]
    assert label == int(np.argmax(network.evaluate(point)))
    assert np.max(np.delete(y, label)) >= y[label] - 1e-6 * (1 + np.abs(y).max())
    assert saved["refuted_delta"] == refuted and saved["network"]["sha256"] == network.source_sha256
    # and the certified radius is proven again, independently of the search
    again = LocalRobustness(network, point, certified, domain=domain).check(SolverOptions(timeout=60))
    assert again.verdict == "robust"
