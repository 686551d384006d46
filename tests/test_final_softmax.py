"""A final Softmax or LogSoftmax: dropped for Def. 1 (with a note), refused with one line for score
differences; VNN-LIB and a Softmax anywhere else compute it (the nonlinear engine).

The graphs are built here with onnx.helper: a ReLU MLP whose logits go through a last Softmax or
LogSoftmax, and the same MLP without it (the logits network, the reference for verdicts).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import helper, numpy_helper

from onnx_builders import model, random_mlp, save, tensor, value
from reluverify.cli import main
from reluverify.errors import NetworkError, QueryError, SpecError
from reluverify.network import softmax_refusal
from reluverify.onnx_import import load_onnx
from reluverify.onnx_runtime import ReferenceModel, reference_for
from reluverify.properties.eps_local import EpsLocalRobustness
from reluverify.properties.global_robustness import GlobalRobustness
from reluverify.properties.local import LocalRobustness
from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.solver import SolverOptions
from reluverify.vnnlib import load_query

REPO = Path(__file__).resolve().parents[1]
OPTIONS = SolverOptions(timeout=60)
SIZES = (6, 12, 10, 4)


def classifier(weights, biases, final=None, axis=None, opset=13, flat=False, extra_reader=False, shape=None):
    """A Gemm/Relu MLP with logits ``logits``, then ``final`` (Softmax, LogSoftmax or None) into ``y``.

    ``flat``: the logits are reshaped to ``(classes,)`` first; ``shape``: reshaped to that shape
    instead; ``extra_reader``: another node reads the final operator's output too.
    """
    nodes, inits, current = [], [], "x"
    for i, (w, b) in enumerate(zip(weights, biases)):
        inits += [tensor(f"W{i}", w), tensor(f"B{i}", b)]
        nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"B{i}"], [f"h{i}"], transB=1))
        current = f"h{i}"
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
            current = f"r{i}"
    classes = weights[-1].shape[0]
    out_shape = [1, classes]
    if flat or shape:
        out_shape = [classes] if flat else list(shape)
        inits.append(numpy_helper.from_array(np.array(out_shape, dtype=np.int64), "out_shape"))
        nodes.append(helper.make_node("Reshape", [current, "out_shape"], ["logits"]))
    else:
        nodes.append(helper.make_node("Identity", [current], ["logits"]))
    if final is None:
        nodes.append(helper.make_node("Identity", ["logits"], ["y"]))
    else:
        attrs = {} if axis is None else {"axis": axis}
        nodes.append(helper.make_node(final, ["logits"], ["y"], name="final", **attrs))
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["y"], ["unused"]))
    return model(nodes, [value("x", [1, weights[0].shape[1]])], [value("y", out_shape)], inits, opset=opset)


@pytest.fixture
def nets(tmp_path):
    """Per final operator: the file ending in it and the same MLP without it (the logits)."""
    weights, biases = random_mlp(np.random.default_rng(3), SIZES)
    paths = {final: save(classifier(weights, biases, final), tmp_path / f"{final}.onnx")
             for final in ("Softmax", "LogSoftmax", None)}
    return paths


# ------------------------------------------------------------------ the importer
@pytest.mark.parametrize("final", ["Softmax", "LogSoftmax"])
def test_a_final_softmax_is_kept_unless_the_caller_drops_it(nets, final):
    kept = load_onnx(nets[final])  # the file's own outputs (as VNN-LIB reads them)
    assert kept.final_softmax is None and kept.output_name == "y"
    network = load_onnx(nets[final], drop_final_softmax=True)
    logits = load_onnx(nets[None])
    assert network.final_softmax == final and logits.final_softmax is None
    assert network.output_name == "logits" and network.output_shape == (1, SIZES[-1])
    x = np.random.default_rng(0).uniform(-1, 1, (32, SIZES[0]))
    np.testing.assert_array_equal(network.evaluate(x), logits.evaluate(x))
    np.testing.assert_allclose(kept.evaluate(x), ReferenceModel(nets[final])(x), rtol=1e-5, atol=1e-6)
    # onnxruntime on the file itself reads the same logits, and its own outputs give the same labels
    np.testing.assert_allclose(reference_for(network)(x), ReferenceModel(nets[None])(x), rtol=0, atol=1e-6)
    probabilities = ReferenceModel(nets[final])(x)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), network.evaluate(x).argmax(axis=1))


@pytest.mark.parametrize("opset, axis, flat", [(11, 1, False), (11, -1, False), (13, None, True), (13, 0, True),
                                               (18, 1, False)])
def test_the_class_axis_of_a_batch_or_a_vector_qualifies_in_any_opset(tmp_path, opset, axis, flat):
    weights, biases = random_mlp(np.random.default_rng(4), SIZES)
    path = save(classifier(weights, biases, "LogSoftmax", axis, opset, flat), tmp_path / "n.onnx")
    network = load_onnx(path, drop_final_softmax=True)
    assert network.final_softmax == "LogSoftmax"
    x = np.random.default_rng(1).uniform(-1, 1, (4, SIZES[0]))
    np.testing.assert_allclose(network.evaluate(x), reference_for(network)(x), atol=1e-5)


@pytest.mark.parametrize("case", ["axis 0", "3-D", "opset 11 default axis of a vector", "read by another node",
                                  "in the middle"])
def test_a_softmax_anywhere_else_is_traced_and_matches_onnxruntime(tmp_path, case):
    weights, biases = random_mlp(np.random.default_rng(5), SIZES)
    if case == "axis 0":
        graph = classifier(weights, biases, "Softmax", axis=0)
    elif case == "3-D":
        graph = classifier(weights, biases, "Softmax", shape=(1, 2, 2))
    elif case == "opset 11 default axis of a vector":
        graph = classifier(weights, biases, "Softmax", opset=11, flat=True)
    elif case == "read by another node":
        graph = classifier(weights, biases, "Softmax", extra_reader=True)
    else:
        graph = classifier(weights, biases, None)
        first_relu = next(n for n in graph.graph.node if n.op_type == "Relu")
        first_relu.op_type = "Softmax"
    path = save(graph, tmp_path / "n.onnx")
    x = np.random.default_rng(6).uniform(-3, 3, (16, SIZES[0]))
    if case.startswith("opset 11"):  # an invalid graph (onnxruntime refuses it too): one line
        for drop in (False, True):
            with pytest.raises(NetworkError, match="node 'final' .Softmax.: axis 1 does not fit a rank-1 tensor$"):
                load_onnx(path, drop_final_softmax=drop)
        return
    for drop in (False, True):
        network = load_onnx(path, drop_final_softmax=drop)
        assert network.final_softmax is None and "exp" in network.activation_counts
        np.testing.assert_allclose(network.evaluate(x), ReferenceModel(path)(x), rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ the properties
@pytest.mark.parametrize("final", ["Softmax", "LogSoftmax"])
def test_def1_verdicts_and_counterexamples_are_those_of_the_logits(nets, final):
    network = load_onnx(nets[final], drop_final_softmax=True)
    logits = load_onnx(nets[None])
    rng = np.random.default_rng(11)
    verdicts = set()
    for _ in range(4):
        point = rng.uniform(-1, 1, SIZES[0])
        for delta in (0.01, 0.3, 1.0):
            result = LocalRobustness(network, point, delta).check(OPTIONS)
            reference = LocalRobustness(logits, point, delta).check(OPTIONS)
            assert (result.verdict, result.label) == (reference.verdict, reference.label)
            verdicts.add(result.verdict)
            assert result.notes and final in result.notes[0] and result.to_dict()["notes"] == result.notes
            assert f"note      the network's final {final} is dropped" in result.summary()
            assert result.network["final_softmax"] == final
            cex = result.counterexample
            if cex is None:
                continue
            # confirmed on the file: its logits by onnxruntime, and its own outputs break the label too
            np.testing.assert_allclose(cex.outputs, ReferenceModel(nets[None])(cex.inputs), atol=1e-6)
            other = int(cex.violated.split()[1])
            scores = ReferenceModel(nets[final])(cex.inputs)
            assert scores[other] >= scores[result.label] - 1e-6 * (1 + abs(scores[result.label]))
    assert verdicts == {"robust", "not robust"}


def test_score_differences_and_vnnlib_are_refused_with_one_line(nets, tmp_path):
    network = load_onnx(nets["Softmax"], drop_final_softmax=True)
    point = np.zeros(SIZES[0])
    refusal = softmax_refusal("Softmax")
    with pytest.raises(SpecError, match=r"^the network ends in Softmax: export the logits"):
        EpsLocalRobustness(network, point, 0.1, 0.2)
    with pytest.raises(SpecError) as error:
        GlobalRobustness(network, (np.full(SIZES[0], -1.0), np.ones(SIZES[0])), 0.1, 0.2)
    assert str(error.value) == refusal
    spec = tmp_path / "spec.vnnlib"
    spec.write_text("\n".join([f"(declare-const X_{i} Real)" for i in range(SIZES[0])]
                              + [f"(declare-const Y_{i} Real)" for i in range(SIZES[-1])]
                              + [f"(assert (<= X_{i} 1))\n(assert (>= X_{i} -1))" for i in range(SIZES[0])]
                              + ["(assert (>= Y_1 Y_0))"]))
    load_query(network, spec)  # a comparison of two scores: the Softmax keeps it, the logits answer it
    spec.write_text(spec.read_text().replace("(assert (>= Y_1 Y_0))", "(assert (>= Y_1 0.5))"))
    with pytest.raises(SpecError, match="the network ends in Softmax"):
        load_query(network, spec)
    # the one boundary between properties and the solver refuses any row but a comparison of two scores
    n, m = SIZES[0], SIZES[-1]
    lower, upper = -np.ones(n), np.ones(n)

    def query(coefficients, rhs):
        row = np.concatenate([np.zeros(n), coefficients])[None, :]
        return Query((network,), lower, upper, (Disjunct(lower, upper, LinearConstraints(row, np.array([rhs]))),))

    query(np.eye(m)[1] - np.eye(m)[0], 0.0)
    query(2.0 * (np.eye(m)[0] - np.eye(m)[3]), 0.0)
    for coefficients, rhs in ((np.eye(m)[0], 0.5), (np.eye(m)[1] - np.eye(m)[0], 0.1),
                              (np.eye(m)[1] - 2 * np.eye(m)[0], 0.0)):
        with pytest.raises(QueryError, match="the network ends in Softmax"):
            query(coefficients, rhs)


# ------------------------------------------------------------------ the command line
def run(*args):
    return subprocess.run([sys.executable, "-m", "reluverify", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def test_commands_note_the_dropped_softmax_and_refuse_the_rest(nets, tmp_path, capsys):
    path = nets["LogSoftmax"]
    rng = np.random.default_rng(2)
    points = rng.uniform(-1, 1, (3, SIZES[0]))
    (tmp_path / "point.json").write_text(json.dumps({"point": points[0].tolist()}))
    (tmp_path / "points.json").write_text(json.dumps({"points": points.tolist(), "labels": [0, 1, 2]}))
    note = "note      the network's final LogSoftmax is dropped"

    assert main(["verify", path, "--point", str(tmp_path / "point.json"), "--delta", "0.05"]) == 0
    assert note in capsys.readouterr().out
    assert main(["verify", path, "--point", str(tmp_path / "point.json"), "--delta", "0.05", "--json"]) == 0
    assert "LogSoftmax" in json.loads(capsys.readouterr().out)["notes"][0]
    assert main(["verify", path, "--points", str(tmp_path / "points.json"), "--delta", "0.01", "0.5"]) == 0
    assert note in capsys.readouterr().out
    assert main(["verify", path, "--points", str(tmp_path / "points.json"), "--delta", "0.01", "--json"]) == 0
    assert "LogSoftmax" in json.loads(capsys.readouterr().out)["notes"][0]
    assert main(["max-delta", path, "--point", str(tmp_path / "point.json"), "--precision", "0.05"]) == 0
    assert note in capsys.readouterr().out
    assert main(["info", path]) == 0
    printed = capsys.readouterr().out
    assert "output    'logits'" in printed and "softmax   the network's final LogSoftmax is dropped" in printed
    assert main(["verify", path, "--point", str(tmp_path / "point.json"), "--delta", "0.05",
                 "--proof", str(tmp_path / "cert.npz")]) == 0
    assert "proof     no certificate for a network whose final LogSoftmax is dropped" in capsys.readouterr().out
    result = tmp_path / "result.txt"  # a VNN-COMP result states the file's outputs, not the logits
    assert main(["verify", path, "--point", str(tmp_path / "point.json"), "--delta", "5", "--vnncomp-out",
                 str(result)]) == 0
    text = result.read_text()
    x, y = ([float(v) for v in re.findall(rf"\({name}_\d+ ([^)]+)\)", text)] for name in ("X", "Y"))
    assert text.startswith("sat") and np.allclose(y, ReferenceModel(path)(np.array(x)), atol=1e-6)
    capsys.readouterr()

    swept = run("sweep", path, "--points", tmp_path / "points.json", "--delta", "0.01", "--db", tmp_path / "s.sqlite")
    assert swept.returncode == 0, swept.stderr
    assert "note: " in swept.stderr and "final LogSoftmax is dropped" in swept.stderr

    spec = tmp_path / "spec.vnnlib"
    spec.write_text("\n".join([f"(declare-const X_{i} Real)" for i in range(SIZES[0])]
                              + [f"(declare-const Y_{i} Real)" for i in range(SIZES[-1])]
                              + [f"(assert (<= X_{i} 1))\n(assert (>= X_{i} -1))" for i in range(SIZES[0])]
                              + ["(assert (>= Y_1 Y_0))"]))
    refusals = [
        ("verify", path, "--point", tmp_path / "point.json", "--delta", "0.05", "--epsilon", "0.1"),
        ("verify", path, "--points", tmp_path / "points.json", "--delta", "0.05", "--epsilon", "0.1"),
        ("verify", path, "--global", "--domain", tmp_path / "domain.json", "--delta", "0.05", "--epsilon", "0.1"),
        ("sweep", path, "--points", tmp_path / "points.json", "--delta", "0.05", "--epsilon", "0.1",
         "--db", tmp_path / "s2.sqlite"),
    ]
    # VNN-LIB reads the file's outputs: the LogSoftmax is computed, not dropped, and the answer is the logits'
    answers = [run("vnnlib", file, spec, "--json") for file in (path, nets[None])]
    assert [a.returncode for a in answers] == [0, 0], [a.stderr for a in answers]
    kept, logits = (json.loads(a.stdout) for a in answers)
    assert kept["verdict"] == logits["verdict"] == "sat"
    x = np.array(kept["counterexample"]["inputs"])
    scores = ReferenceModel(path)(x)
    assert scores[1] >= scores[0] - 1e-6
    np.testing.assert_allclose(kept["counterexample"]["outputs"], scores, atol=1e-6)  # the file's outputs
    # a constraint that is not a comparison of two outputs: the LogSoftmax is computed, not dropped
    spec.write_text(spec.read_text().replace("(assert (>= Y_1 Y_0))", "(assert (>= Y_1 -0.5))"))
    answer = run("vnnlib", path, spec, "--json")
    assert answer.returncode == 0, answer.stderr
    found = json.loads(answer.stdout)
    if found["verdict"] == "sat":
        assert ReferenceModel(path)(np.array(found["counterexample"]["inputs"]))[1] >= -0.5 - 1e-6
    else:
        assert found["verdict"] in ("unsat", "unknown", "timeout")
    (tmp_path / "domain.json").write_text(json.dumps({"lower": [-1] * SIZES[0], "upper": [1] * SIZES[0]}))
    for args in refusals:
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("reluverify: error: ")
        assert lines[0].endswith(softmax_refusal("LogSoftmax")), lines[0]


def test_the_api_checks_def1_and_refuses_the_rest(nets):
    from reluverify import Verifier

    verifier = Verifier(nets["Softmax"], timeout=60)
    point = np.random.default_rng(8).uniform(-1, 1, SIZES[0])
    result = verifier.local_robustness(point, delta=0.01)
    assert result.verdict in ("robust", "not robust") and "final Softmax is dropped" in result.notes[0]
    search = verifier.max_delta(point, precision=0.05)
    assert "final Softmax is dropped" in search.to_dict()["notes"][0]
    with pytest.raises(SpecError, match="the network ends in Softmax"):
        verifier.eps_robustness(point, delta=0.01, epsilon=0.1)
