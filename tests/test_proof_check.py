"""Certificates of unsat answers (docs/certificates.md): the solver writes them, the independent checker
(reluverify/proof_check.py) accepts them, and rejects each kind of tampering with a reason; --exact on sat."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from random_queries import chain_to_onnx, random_chain, random_query, robust_query
from reluverify.cli import main
from reluverify.errors import ReluverifyError
from reluverify.exact import exact_check, exact_outputs
from reluverify.onnx_import import load_onnx
from reluverify.proof_check import ProofFileError, check, check_files, read_archive, sha256
from reluverify.solver import SolverOptions, solve
from reluverify.vnnlib import load_query
from reluverify.vnnlib_export import write_vnnlib

ACAS = "ACASXU_run2a_1_1_batch_2000.onnx"


def prove(network, spec, proof, **options) -> tuple:
    """Solve with a proof; write the certificate; the solver's result and the checker's."""
    query = load_query(load_onnx(network), spec)
    result = solve(query, SolverOptions(proof=True, timeout=60, **options))
    assert result.verdict == "unsat", result.reason
    result.certificate.write(proof, sha256(network), sha256(spec))
    return result, check_files(network, spec, proof)


def random_instance(seed: int, folder: Path):
    """A random small network (ONNX, float64) and a random query on it written as VNN-LIB (or None)."""
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(1, 6)), *[int(rng.integers(2, 9)) for _ in range(int(rng.integers(1, 4)))],
             int(rng.integers(1, 4))]
    chain = random_chain(rng, sizes, cancel=bool(rng.random() < 0.3), huge=bool(rng.random() < 0.2),
                         tiny=bool(rng.random() < 0.2))
    network = chain_to_onnx(chain, folder / f"net{seed}.onnx")
    query = robust_query(rng, chain) if seed % 3 == 0 else random_query(rng, chain)
    try:
        return network, write_vnnlib(query, folder / f"spec{seed}.vnnlib")
    except ReluverifyError:  # e.g. a lone empty disjunct
        return None


def rewrite(proof, out, header=None, **arrays) -> Path:
    """A copy of the certificate ``proof`` with some arrays (and header fields) replaced."""
    archive = read_archive(proof)
    if header:
        text = json.loads(archive["header"].tobytes().decode())
        text.update(header)
        archive["header"] = np.frombuffer(json.dumps(text).encode(), dtype=np.uint8)
    archive.update(arrays)
    with open(out, "wb") as handle:
        np.savez_compressed(handle, **archive)
    return out


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("network,spec", [("test_nano.onnx", "test_nano.vnnlib"), ("test_tiny.onnx", "test_tiny.vnnlib"),
                                          ("test_small.onnx", "test_small.vnnlib"), ("test_unsat.onnx", "test_prop.vnnlib")])
def test_every_unsat_test_benchmark_gets_a_valid_certificate(test_bench_dir, tmp_path, network, spec):
    _, checked = prove(test_bench_dir / network, test_bench_dir / spec, tmp_path / "proof.npz")
    assert checked.valid, checked.reason


@pytest.fixture(scope="module")
def acas(acasxu_dir, tmp_path_factory):
    """ACAS Xu 1_1 property 4 (input splitting, 50 bound leaves): network, spec, certificate."""
    folder = tmp_path_factory.mktemp("acas")
    network, spec = folder / ACAS, folder / "prop_4.vnnlib"
    shutil.copy(acasxu_dir / ACAS, network)
    shutil.copy(acasxu_dir / "prop_4.vnnlib", spec)
    result, checked = prove(network, spec, folder / "proof.npz")
    assert checked.valid, checked.reason
    assert checked.leaves == result.certificate.num_leaves > 1
    return network, spec, folder / "proof.npz"


def test_acasxu_property_3_input_splitting(acasxu_dir, tmp_path):
    _, checked = prove(acasxu_dir / ACAS, acasxu_dir / "prop_3.vnnlib", tmp_path / "proof.npz")
    assert checked.valid and checked.leaves > 100, checked.reason


@pytest.fixture(scope="module")
def mnist(mnist_dir, tmp_path_factory):
    """MNIST 256x2 property 0 eps 0.03 (relu-bab: root bounds with interm rows, slopes, 9 trees)."""
    proof = tmp_path_factory.mktemp("mnist") / "proof.npz"
    network, spec = mnist_dir / "mnist-net_256x2.onnx", mnist_dir / "prop_0_0.03.vnnlib"
    _, checked = prove(network, spec, proof)
    assert checked.valid, checked.reason
    return network, spec, proof


def test_relu_bab_certificate_has_slopes_and_interm_rows(mnist):
    archive = read_archive(mnist[2])
    header = json.loads(archive["header"].tobytes().decode())
    assert {t["bounds_at"] for t in header["trees"]} == {"root"}
    assert archive["d0_sparse_alpha"].size and archive["d0_interm_layer"].size


def test_random_networks_both_strategies(tmp_path):
    """Random small networks (cancelling units, huge and tiny weights, constant inputs, empty disjuncts):
    every unsat answer, by input splitting or relu-bab, gets a certificate the checker accepts."""
    unsat = 0
    for seed in [*range(12), 131, 172, 178, 179]:  # 131, 178: LP leaves that need every infeasible row
        instance = random_instance(seed, tmp_path)
        if instance is None:
            continue
        query = load_query(load_onnx(instance[0]), instance[1])
        for strategy in ("auto", "relu-bab"):
            result = solve(query, SolverOptions(proof=True, timeout=20, strategy=strategy))
            if result.verdict != "unsat":
                continue
            proof = tmp_path / f"proof{seed}{strategy}.npz"
            result.certificate.write(proof, sha256(instance[0]), sha256(instance[1]))
            checked = check_files(*instance, proof)
            assert checked.valid, (seed, strategy, checked.reason)
            unsat += 1
    assert unsat >= 10


# ---------------------------------------------------------------- mutations
def assert_rejected(network, spec, proof, *words):
    checked = check_files(network, spec, proof)
    assert not checked.valid
    for word in words:
        assert word in checked.reason, checked.reason
    return checked


def test_a_removed_leaf_is_rejected(acas, tmp_path):
    network, spec, proof = acas
    a = read_archive(proof)
    keep = np.arange(1, a["d0_leaf_node"].size)
    bad = rewrite(proof, tmp_path / "bad.npz", **{f"d0_{k}": a[f"d0_{k}"][keep] for k in
                                                 ("leaf_node", "leaf_kind", "weights", "gamma")})
    assert_rejected(network, spec, bad, f"leaf node {a['d0_leaf_node'][0]} has no evidence")


def test_a_moved_split_value_is_rejected(acas, tmp_path):
    network, spec, proof = acas
    a = read_archive(proof)
    value = a["d0_value"].copy()
    value[1] += 0.01  # one half only: the children no longer cover their parent
    assert_rejected(network, spec, rewrite(proof, tmp_path / "one.npz", d0_value=value), "not the two halves of one split")
    # both halves of the root's split moved to the box's edge: the lower half is the whole box, and the
    # evidence of its leaves, made for smaller boxes, no longer refutes them
    q = load_query(load_onnx(network), spec)
    value = a["d0_value"].copy()
    value[1:3] = q.disjuncts[0].upper[a["d0_index"][1]]
    checked = assert_rejected(network, spec, rewrite(proof, tmp_path / "both.npz", d0_value=value), "is not positive")
    assert checked.node is not None and checked.path


def test_perturbed_weights_are_rejected(acas, tmp_path):
    network, spec, proof = acas
    a = read_archive(proof)
    weights = a["d0_weights"].copy()
    weights[3] = 0.0  # non-negative, but the leaf's combination of rows now proves nothing
    checked = assert_rejected(network, spec, rewrite(proof, tmp_path / "zero.npz", d0_weights=weights),
                              "bound evidence: bound", "leaf node")
    assert checked.node == int(a["d0_leaf_node"][3])
    weights = -a["d0_weights"]
    assert_rejected(network, spec, rewrite(proof, tmp_path / "neg.npz", d0_weights=weights), "weights entry is negative")


def test_perturbed_slopes_are_rejected(mnist, tmp_path):
    network, spec, proof = mnist
    a = read_archive(proof)
    alpha = a["d8_sparse_alpha"].copy()
    alpha[0] = 1.5
    assert_rejected(network, spec, rewrite(proof, tmp_path / "range.npz", d8_sparse_alpha=alpha), "outside [0, 1]")
    # slopes in range but flipped (alpha -> 1 - alpha), and the intermediate rows' slopes too: bounds too weak
    interm = {f"d{d}_interm_alpha": 1.0 - a[f"d{d}_interm_alpha"] for d in range(9)}
    bad = rewrite(proof, tmp_path / "flip.npz", **interm,
                  **{f"d{d}_sparse_alpha": 1.0 - a[f"d{d}_sparse_alpha"] for d in range(9)})
    assert_rejected(network, spec, bad, "bound evidence: bound", "is not positive")


def test_zeroed_farkas_multipliers_are_rejected(tmp_path):
    network, spec = random_instance(172, tmp_path)
    result, checked = prove(network, spec, tmp_path / "proof.npz", strategy="relu-bab")
    assert checked.valid, checked.reason
    a = read_archive(tmp_path / "proof.npz")
    assert a["d0_farkas_value"].size
    bad = rewrite(tmp_path / "proof.npz", tmp_path / "bad.npz", d0_farkas_value=np.zeros_like(a["d0_farkas_value"]))
    assert_rejected(network, spec, bad, "LP (Farkas) evidence: minimum")
    rows = a["d0_farkas_row"] + 1000
    assert_rejected(network, spec, rewrite(tmp_path / "proof.npz", tmp_path / "rows.npz", d0_farkas_row=rows),
                    "beyond the leaf's LP")


def test_a_changed_network_is_rejected(acas, tmp_path):
    network, spec, proof = acas
    model = onnx.load(str(network))
    last = next(i for i in model.graph.initializer if numpy_helper.to_array(i).shape == (50, 5))  # the output layer
    last.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(last), last.name))
    changed = tmp_path / "changed.onnx"
    onnx.save(model, str(changed))
    assert_rejected(changed, spec, proof, "network_sha256", "ONNX file's SHA-256")
    rehashed = rewrite(proof, tmp_path / "rehashed.npz", header={"network_sha256": sha256(changed)})
    assert_rejected(changed, spec, rehashed, "leaf node", "is not positive")


def test_a_changed_spec_is_rejected(acas, tmp_path):
    network, spec, proof = acas
    text = spec.read_text()
    tightened = tmp_path / "tightened.vnnlib"
    tightened.write_text(text + "\n; a comment changes the hash\n")
    assert_rejected(network, tightened, proof, "spec_sha256", "VNN-LIB file's SHA-256")
    # the counterexample condition relaxed to one that holds (Y_0 <= Y_j + 1000): the same tree, re-hashed,
    # no longer refutes its leaves
    relaxed = re.sub(r"\(<= Y_0 (Y_\d)\)", r"(<= Y_0 (+ \1 1000.0))", text)
    assert relaxed.count("1000.0") == 4
    changed = tmp_path / "changed.vnnlib"
    changed.write_text(relaxed)
    rehashed = rewrite(proof, tmp_path / "rehashed.npz", header={"spec_sha256": sha256(changed)})
    assert_rejected(network, changed, rehashed, "is not positive")


def test_a_made_up_proof_of_a_sat_instance_is_rejected(test_bench_dir, tmp_path):
    network, spec = test_bench_dir / "test_sat.onnx", test_bench_dir / "test_prop.vnnlib"
    query = load_query(load_onnx(network), spec)
    rows, extra = query.disjuncts[0].constraints.num_rows, query.input_constraints.num_rows
    header = {"format": "reluverify-certificate", "version": 1, "network_sha256": sha256(network),
              "spec_sha256": sha256(spec), "num_inputs": query.num_inputs,
              "num_network_inputs": query.num_network_inputs, "num_outputs": query.num_outputs,
              "disjuncts": 1, "trees": [{"disjunct": 0, "prefix": "d0_", "bounds_at": "leaf"}]}
    arrays = {"parent": np.array([-1]), "kind": np.zeros(1, np.int8), "index": np.array([-1]), "value": np.zeros(1),
              "leaf_node": np.array([0]), "leaf_kind": np.zeros(1, np.int8),
              "weights": np.ones((1, rows), np.float32), "gamma": np.zeros((1, extra), np.float32)}
    proof = tmp_path / "false.npz"
    np.savez(proof, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **{f"d0_{k}": v for k, v in arrays.items()})
    assert_rejected(network, spec, proof, "leaf node 0 (the root)", "is not positive")


def test_header_and_file_errors(acas, tmp_path):
    network, spec, proof = acas
    assert_rejected(network, spec, rewrite(proof, tmp_path / "v.npz", header={"version": 2}), "version")
    with pytest.raises(ProofFileError, match="not a certificate"):
        read_archive(spec)
    result = check(load_query(load_onnx(network), spec), {}, "", "")
    assert not result.valid and "header" in result.reason


# ---------------------------------------------------------------- --exact
def test_exact_outputs_match_float_evaluation(rng):
    chain = random_chain(rng, [4, 6, 5, 3])
    x = rng.uniform(-1, 1, 4)
    ints, e = exact_outputs(chain, x)
    assert np.allclose([float(v) / 2.0**e for v in ints], chain.evaluate(x[None])[0], rtol=1e-12, atol=1e-12)


def test_exact_check_of_a_sat_answer(test_bench_dir, tmp_path, capsys):
    network, spec = test_bench_dir / "test_sat.onnx", test_bench_dir / "test_prop.vnnlib"
    assert main(["vnnlib", str(network), str(spec), "--exact", "--json", "--quiet", "--proof", str(tmp_path / "p.npz")]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["verdict"] == "sat" and payload["exact"] is True
    assert payload["exact_check"]["max_residual"] <= 0
    assert payload["proof"]["certificate"] is None and not (tmp_path / "p.npz").exists()
    query = load_query(load_onnx(network), spec)
    point = np.array(payload["counterexample"]["inputs"])
    d = payload["counterexample"]["disjunct"]
    # the same point moved outside the box is not a counterexample, exactly
    moved = point.copy()
    moved[0] = query.upper[0] + 1.0
    assert not exact_check(query, moved, d).holds


# ---------------------------------------------------------------- command line
def test_check_proof_command(acas, tmp_path, capsys):
    network, spec, proof = acas
    assert main(["check-proof", str(network), str(spec), str(proof)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "valid"
    bad = rewrite(proof, tmp_path / "bad.npz", d0_weights=np.zeros_like(read_archive(proof)["d0_weights"]))
    assert main(["check-proof", str(network), str(spec), str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("invalid: disjunct 0, leaf node") and len(out.splitlines()) == 1
    assert main(["check-proof", str(network), str(spec), str(bad), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["valid"] is False and payload["node"] is not None
    assert main(["check-proof", str(network), str(spec), str(spec)]) == 2
    assert main(["check-proof", str(network), str(spec), str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "reluverify: error:" in err


def test_vnnlib_proof_then_check_proof(test_bench_dir, tmp_path, capsys):
    network, spec, proof = test_bench_dir / "test_unsat.onnx", test_bench_dir / "test_prop.vnnlib", tmp_path / "p.npz"
    assert main(["vnnlib", str(network), str(spec), "--proof", str(proof), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("unsat") and "wrote the certificate" in out
    assert main(["check-proof", str(network), str(spec), str(proof)]) == 0


def test_verify_proof_writes_the_query_beside_the_certificate(tmp_path, capsys):
    repo = Path(__file__).resolve().parents[1]
    network, point = repo / "networks" / "digits_mlp.onnx", repo / "networks" / "digits_point0.json"
    proof = tmp_path / "cert.npz"
    assert main(["verify", str(network), "--point", str(point), "--delta", "0.02", "--proof", str(proof), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("robust") and str(tmp_path / "cert.vnnlib") in out
    assert main(["check-proof", str(network), str(tmp_path / "cert.vnnlib"), str(proof)]) == 0
    capsys.readouterr()
    assert main(["verify", str(network), "--point", str(point), "--delta", "0.02", "--norm", "1", "--json",
                 "--proof", str(tmp_path / "l1.npz"), "--quiet"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["proof"]["certificate"] is None and "no certificate is available" in payload["proof"]["note"]
    assert not (tmp_path / "l1.npz").exists()


def test_python_api_proof(test_bench_dir, tmp_path):
    from reluverify import Verifier

    network, spec = test_bench_dir / "test_unsat.onnx", test_bench_dir / "test_prop.vnnlib"
    result = Verifier(network).vnnlib(spec, proof=tmp_path / "p.npz")
    assert result.verdict == "unsat" and result.proof["leaves"] >= 1
    assert result.to_dict()["proof"]["certificate"] == str(tmp_path / "p.npz")
    assert check_files(network, spec, tmp_path / "p.npz").valid
