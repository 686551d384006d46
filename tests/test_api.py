"""The Python API: the documented example runs as written; Verifier mirrors the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reluverify.errors import SpecError
from reluverify.network import ReluChain
from test_properties_oracles import breaks_local, difference_net

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "api_example.py"


def test_the_documented_example_runs_as_written():
    proc = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("robust 2 ")
    assert lines[1] == "robust"
    assert lines[2].startswith("not robust - label ") and lines[2].endswith("scores >= label 2")
    assert lines[3].startswith("distance ")
    assert lines[4] == "robust"
    assert lines[5].startswith("certified 0.0") and "counterexample at 0.0" in lines[5]
    assert lines[6].startswith("robust ")
    assert "(10/10)" in lines[7] and "(9/10)" in lines[8] and lines[9] == "9 9 1 0 0 10 0.9"


def test_package_import_stays_light_and_exports_the_verifier():
    code = (
        "import sys, reluverify; assert 'reluverify.solver.decide' not in sys.modules; "
        "assert 'reluverify.api' not in sys.modules; from reluverify import Verifier; print(Verifier.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "Verifier", proc.stderr


def test_one_network_several_properties(tmp_path):
    from reluverify import Verifier

    net = difference_net(tmp_path)
    verifier = Verifier(net.path, timeout=30)
    assert "2 inputs" in repr(verifier)
    local = verifier.local_robustness([0.5, 0.3], 0.05)
    assert local.verdict == "robust" and local.holds is True and local.label == 0 and local.seconds >= 0
    broken = verifier.local_robustness(np.array([0.5, 0.3]), 0.15, norm="1")
    assert broken.holds is True  # L1 radius 0.15 < 0.2
    broken = verifier.local_robustness([0.5, 0.3], 0.15)
    assert broken.holds is False and breaks_local(net, broken.counterexample.inputs, 0)
    assert set(broken.to_dict()) >= {"verdict", "counterexample", "statistics", "seconds", "label"}
    json.dumps(broken.to_dict())  # plain data
    eps = verifier.eps_robustness([0.5, 0.3], 0.01, 0.5)
    assert eps.verdict == "robust"
    glob = verifier.global_robustness({"lower": 0, "upper": 1}, 0.05, 0.5, partitions=2, jobs=2)
    # decided by the pair screening's bounds (no query needed), reported per sub-domain
    assert glob.verdict == "robust" and glob.subdomain_verdicts == ["unsat", "unsat"]
    search = verifier.max_delta([0.5, 0.3], precision=1e-2, upper=0.5)
    assert search.certified <= 0.1 <= search.refuted
    # points and domains from files, and a point's own domain
    point = tmp_path / "p.json"
    point.write_text(json.dumps({"point": [0.5, 0.3], "domain": {"lower": [0.45, -1], "upper": [1, 0.35]}}))
    assert verifier.local_robustness(point, 0.3).verdict == "robust"  # clipped by the file's domain
    assert verifier.local_robustness(point, 0.3, domain=([0, 0], [1, 1])).verdict == "not robust"
    with pytest.raises(SpecError, match="the point has 3 values"):
        verifier.local_robustness([0.1, 0.2, 0.3], 0.1)


def test_in_memory_network_and_decision_min():
    from reluverify import Verifier

    chain = ReluChain((np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([[1.0, -1.0], [0.0, 0.0]])),
                      (np.zeros(2), np.zeros(2)))
    verifier = Verifier(chain.to_network(), decision="min")
    result = verifier.local_robustness([0.5, 0.3], 0.15)  # y = (0.2, 0): label 1 is the lowest
    assert result.label == 1 and result.verdict == "not robust"
    assert len(result.network["sha256"]) == 64 and result.network["hash_of"].startswith("float64 weights")
    with pytest.raises(TypeError):
        Verifier(42)


def test_vnnlib_mirrors_the_cli(test_bench_dir):
    from reluverify import Verifier

    sat = Verifier(test_bench_dir / "test_sat.onnx").vnnlib(test_bench_dir / "test_prop.vnnlib")
    assert sat.verdict == "sat" and sat.solver_verdict == "sat" and sat.counterexample is not None
    assert sat.holds is False
    unsat = Verifier(test_bench_dir / "test_unsat.onnx").vnnlib(test_bench_dir / "test_prop.vnnlib")
    assert unsat.verdict == "unsat" and unsat.holds is True


@pytest.mark.parametrize("timeout", [-1, 0, float("nan"), float("inf"), "soon"])
def test_a_meaningless_timeout_or_jobs_is_refused_by_the_api(timeout):
    from reluverify import Verifier

    net = ReluChain((np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([[1.0, -1.0], [0.0, 0.0]])),
                    (np.zeros(2), np.zeros(2))).to_network()
    with pytest.raises(SpecError, match="timeout must be"):
        Verifier(net, timeout=timeout)
    with pytest.raises(SpecError, match="timeout must be"):
        Verifier(net).local_robustness([0.5, 0.3], 0.1, timeout=timeout)
    for jobs in (0, -2, 1.5, True):
        with pytest.raises(SpecError, match="jobs must be an integer"):
            Verifier(net, jobs=jobs)
    assert Verifier(net, timeout=None).local_robustness([0.5, 0.3], 0.01, timeout=None).verdict in ("robust", "not robust")
