"""Networks with several input or output tensors: one flat input vector and one flat output vector.

The input vector is the input tensors' values laid end to end in graph order (each in C order), the
output vector the output tensors' likewise -- VNN-LIB's ``X_0 ...`` and ``Y_0 ...``. The import is
checked against onnxruntime fed tensor by tensor here (not through reluverify's own splitting), a
VNN-LIB query over ``X_i`` / ``Y_j`` against z3 and against onnxruntime, and the two dist_shift
component networks of VNN-COMP 2023 against onnxruntime.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper

from conftest import benchmark_dir
from onnx_builders import int64s, model, save, tensor, value
from reluverify.cli import main
from reluverify.errors import NetworkError, SpecError
from reluverify.onnx_import import load_onnx
from reluverify.onnx_runtime import ReferenceModel, reference_model
from reluverify.solver.z3_encoding import decide_with_z3
from reluverify.vnncomp import parse_result
from reluverify.vnnlib import load_query


def by_hand(path, x: np.ndarray) -> np.ndarray:
    """onnxruntime on ``path`` for flat inputs ``x`` (batch, n), split into the graph's input tensors here
    (float32, a free leading axis as 1) and the outputs concatenated flat: independent of ReferenceModel."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    rows = []
    for row in np.atleast_2d(x):
        feeds, offset = {}, 0
        for i in inputs:
            shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in i.shape)
            size = int(np.prod(shape))
            feeds[i.name] = row[offset: offset + size].reshape(shape).astype(np.float32)
            offset += size
        assert offset == row.size
        rows.append(np.concatenate([np.ravel(y) for y in session.run(None, feeds)]).astype(np.float64))
    return np.array(rows)


def assert_matches(path, rng, samples: int = 32, **load) -> object:
    """The import of ``path`` (``load``: load_onnx's options) gives onnxruntime's outputs, relative difference
    below 1e-6, whether onnxruntime is fed by hand or through ReferenceModel; the network."""
    network = load_onnx(path, **load)
    x = rng.uniform(-2.0, 2.0, size=(samples, network.input_size))
    ours, hand, ref = network.evaluate(x), by_hand(path, x), ReferenceModel(str(path))(x)
    assert ours.shape == hand.shape == ref.shape == (samples, network.output_size)
    scale = max(1.0, float(np.max(np.abs(hand))))
    assert np.max(np.abs(ours - hand)) / scale < 1e-6
    np.testing.assert_array_equal(ref, hand)  # the same float32 run, however it is batched
    np.testing.assert_array_equal(ReferenceModel(str(path))(x[0]), hand[0])  # one point: 1-D in, 1-D out
    return network


def f32(rng, *shape, scale: float = 1.0):
    return (scale * rng.normal(size=shape)).astype(np.float32)


# ------------------------------------------------------------------ graphs with several tensors
def two_inputs_concat(rng, batch="N"):
    """x (batch, 3) and z (batch, 2, 2): Concat(x, Flatten(z)) -> Gemm -> Relu -> Gemm -> y (batch, 2)."""
    nodes = [
        helper.make_node("Flatten", ["z"], ["zf"], axis=1),
        helper.make_node("Concat", ["x", "zf"], ["c"], axis=1),
        helper.make_node("Gemm", ["c", "W0", "B0"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W1", "B1"], ["y"], transB=1),
    ]
    inits = [tensor("W0", f32(rng, 6, 7)), tensor("B0", f32(rng, 6, scale=0.1)),
             tensor("W1", f32(rng, 2, 6)), tensor("B1", f32(rng, 2, scale=0.1))]
    return model(nodes, [value("x", [batch, 3]), value("z", [batch, 2, 2])], [value("y", [batch, 2])], inits)


def two_inputs_add_and_gemm():
    """x (1, 4) and z (4,) of different ranks: Relu(x + z) and Gemm(x) + MatMul(z) added, y (1, 3)."""
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Add", ["x", "z"], ["s"]),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("Gemm", ["r", "W0", "B0"], ["a"], transB=1),
        helper.make_node("MatMul", ["z", "W1"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["y"]),
    ]
    inits = [tensor("W0", f32(rng, 3, 4)), tensor("B0", f32(rng, 3)), tensor("W1", f32(rng, 4, 3))]
    return model(nodes, [value("x", [1, 4]), value("z", [4])], [value("y", [1, 3])], inits)


def shared_input_branches(rng):
    """x (1, 3) feeds two branches (Gemm -> Relu each, added); z (1, 1, 2) enters the second; y (1, 4)."""
    nodes = [
        helper.make_node("Gemm", ["x", "A", "a"], ["ha"], transB=1),
        helper.make_node("Relu", ["ha"], ["ra"]),
        helper.make_node("Reshape", ["z", "flat"], ["zf"]),
        helper.make_node("Concat", ["zf", "x"], ["zx"], axis=1),
        helper.make_node("Gemm", ["zx", "B", "b"], ["hb"], transB=1),
        helper.make_node("Relu", ["hb"], ["rb"]),
        helper.make_node("Sub", ["ra", "rb"], ["y"]),
    ]
    inits = [tensor("A", f32(rng, 4, 3)), tensor("a", f32(rng, 4)), tensor("B", f32(rng, 4, 5)),
             tensor("b", f32(rng, 4)), int64s("flat", [1, 2])]
    return model(nodes, [value("x", [1, 3]), value("z", [1, 1, 2])], [value("y", [1, 4])], inits)


def several_outputs(rng, count: int):
    """x (1, 4) -> h = Relu(Gemm x) (1, 5) -> y = Gemm h (1, 2); outputs y and h (h also read inside), and
    for ``count`` 3 the input x itself, Transposed (4, 1)."""
    nodes = [
        helper.make_node("Gemm", ["x", "W0", "B0"], ["pre"], transB=1),
        helper.make_node("Relu", ["pre"], ["h"]),
        helper.make_node("Gemm", ["h", "W1", "B1"], ["y"], transB=1),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
    ]
    inits = [tensor("W0", f32(rng, 5, 4)), tensor("B0", f32(rng, 5)), tensor("W1", f32(rng, 2, 5)),
             tensor("B1", f32(rng, 2))]
    outputs = [value("y", [1, 2]), value("h", [1, 5]), value("xt", [4, 1])][:count]
    return model(nodes, [value("x", [1, 4])], outputs, inits)


def test_two_inputs_of_different_shapes_feeding_concat_and_gemm(tmp_path, rng):
    path = save(two_inputs_concat(rng), tmp_path / "concat.onnx")
    network = assert_matches(path, rng)
    assert network.input_size == 7 and network.output_size == 2
    assert network.input_names == ("x", "z") and network.input_shapes == ((1, 3), (1, 2, 2))
    assert network.input_offsets == (0, 3, 7)
    assert network.input_name == "x, z" and network.input_shape == (7,)  # several: joined names, flat shape
    assert network.output_names == ("y",) and network.output_shapes == ((1, 2),)
    assert network.output_name == "y" and network.output_shape == (1, 2)  # one tensor: as before
    assert_matches(path, rng, dense_limit=0)  # each input a structured index map of the input node


def test_fixed_leading_axis_runs_point_by_point(tmp_path, rng):
    path = save(two_inputs_concat(rng, batch=1), tmp_path / "fixed.onnx")
    assert not ReferenceModel(path).batchable
    assert_matches(path, rng, samples=5)


def test_two_inputs_of_different_ranks_add_and_gemm(tmp_path, rng):
    path = save(two_inputs_add_and_gemm(), tmp_path / "add.onnx")
    network = assert_matches(path, rng)
    assert network.input_shapes == ((1, 4), (4,)) and network.input_size == 8


def test_an_input_read_by_two_branches(tmp_path, rng):
    path = save(shared_input_branches(rng), tmp_path / "branches.onnx")
    network = assert_matches(path, rng)
    assert network.num_relus == 8 and network.input_offsets == (0, 3, 5)
    network.relu_chain()  # still a ReLU network the solver takes


@pytest.mark.parametrize("count", [2, 3])
def test_several_outputs_one_of_them_read_inside(tmp_path, rng, count):
    path = save(several_outputs(rng, count), tmp_path / f"out{count}.onnx")
    network = assert_matches(path, rng)
    assert network.output_names == ("y", "h", "xt")[:count]
    assert network.output_shapes == ((1, 2), (1, 5), (4, 1))[:count]
    assert network.output_size == (7, 11)[count - 2] and network.output_shape == (network.output_size,)
    assert network.output_name == ", ".join(network.output_names)
    assert network.num_relus == 5  # h is computed once, whatever reads it


def test_an_output_that_does_not_depend_on_the_input(tmp_path, rng):
    m = several_outputs(rng, 2)
    m.graph.node.append(helper.make_node("Constant", [], ["c"], value=tensor("cv", [[1.5, -2.0]])))
    m.graph.output.append(value("c", [1, 2]))
    path = save(m, tmp_path / "constant.onnx")
    network = assert_matches(path, rng)
    np.testing.assert_array_equal(network.evaluate(np.zeros(4))[-2:], [1.5, -2.0])  # part of the bias
    only = helper.make_graph([helper.make_node("Constant", [], ["c"], value=tensor("cv", [1.0])),
                              helper.make_node("Identity", ["c"], ["d"])], "g", [value("x", [1])],
                             [value("c", [1]), value("d", [1])])
    constant = helper.make_model(only, opset_imports=[helper.make_opsetid("", 13)])
    constant.ir_version = 8
    with pytest.raises(NetworkError, match="none of the graph outputs 'c', 'd' depends on the input"):
        load_onnx(save(constant, tmp_path / "c.onnx"))


def test_an_unused_input_keeps_its_place(tmp_path, rng):
    m = several_outputs(rng, 1)
    m.graph.input.insert(0, value("unused", [1, 2]))
    path = save(m, tmp_path / "unused.onnx")
    network = assert_matches(path, rng)
    assert network.input_names == ("unused", "x") and network.input_offsets == (0, 2, 6)


def test_initializers_listed_as_inputs_are_not_inputs(tmp_path, rng):
    m = two_inputs_concat(rng)
    m.graph.input.insert(1, helper.make_tensor_value_info("W0", TensorProto.FLOAT, [6, 7]))
    m.ir_version = 3  # files of IR version < 4 list their initializers as graph inputs
    m.opset_import[0].version = 9
    network = assert_matches(save(m, tmp_path / "listed.onnx"), rng)
    assert network.input_names == ("x", "z")


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("dim, shown", [("H", "'H'"), (None, "unknown"), (0, "0")])
def test_a_free_dimension_past_the_batch_axis_is_one_line(tmp_path, rng, dim, shown):
    m = two_inputs_concat(rng)
    d = m.graph.input[1].type.tensor_type.shape.dim[2]
    d.Clear()
    if isinstance(dim, str):
        d.dim_param = dim
    elif dim is not None:
        d.dim_value = dim
    with pytest.raises(NetworkError) as error:
        load_onnx(save(m, tmp_path / "dynamic.onnx"))
    message = str(error.value)
    assert "\n" not in message
    assert f"input 'z' of shape ('N', 2, {shown if dim is not None else repr('?')})" in message
    assert f"dynamic or unknown dimension ({shown}) on axis 2" in message
    assert "only the leading (batch) axis may be free" in message


def test_repeated_input_name_is_refused(tmp_path, rng):
    m = two_inputs_concat(rng)
    m.graph.input[1].name = "x"
    with pytest.raises(NetworkError, match="declares the input 'x' more than once"):
        load_onnx(save(m, tmp_path / "twice.onnx"))


def test_no_output_is_refused(tmp_path, rng):
    m = two_inputs_concat(rng)
    del m.graph.output[:]
    with pytest.raises(NetworkError, match="declares no output tensor"):
        load_onnx(save(m, tmp_path / "none.onnx"))


# ------------------------------------------------------------------ VNN-LIB over X_i and Y_j
def tiny_two_by_two(rng):
    """x (1, 2) and z (1,): h = Relu(W [x, z] + b) (1, 4); outputs u = Gemm h (1, 1) and v = Gemm h (1, 2)."""
    nodes = [
        helper.make_node("Unsqueeze", ["z", "axes"], ["z2"]),
        helper.make_node("Concat", ["x", "z2"], ["c"], axis=1),
        helper.make_node("Gemm", ["c", "W", "b"], ["pre"], transB=1),
        helper.make_node("Relu", ["pre"], ["h"]),
        helper.make_node("Gemm", ["h", "U", "bu"], ["u"], transB=1),
        helper.make_node("Gemm", ["h", "V", "bv"], ["v"], transB=1),
    ]
    inits = [tensor("W", f32(rng, 4, 3)), tensor("b", f32(rng, 4, scale=0.3)), tensor("U", f32(rng, 1, 4)),
             tensor("bu", [0.1]), tensor("V", f32(rng, 2, 4)), tensor("bv", [0.0, -0.1]), int64s("axes", [0])]
    return model(nodes, [value("x", [1, 2]), value("z", [1])], [value("u", [1, 1]), value("v", [1, 2])], inits)


def spec_text(lower, upper, c, threshold) -> str:
    """X in [lower, upper] and c . Y <= threshold (the counterexample), in VNN-LIB with one term per Y_j."""
    lines = [f"(declare-const X_{i} Real)" for i in range(len(lower))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(len(c))]
    for i, (lo, hi) in enumerate(zip(lower, upper)):
        lines += [f"(assert (>= X_{i} {float(lo)!r}))", f"(assert (<= X_{i} {float(hi)!r}))"]
    terms = " ".join(f"(* {float(w)!r} Y_{j})" for j, w in enumerate(c))
    lines.append(f"(assert (<= (+ {terms}) {float(threshold)!r}))")
    return "\n".join(lines) + "\n"


def test_vnnlib_over_two_inputs_and_two_outputs_agrees_with_z3_and_onnxruntime(tmp_path, rng):
    path = save(tiny_two_by_two(rng), tmp_path / "tiny.onnx")
    network = assert_matches(path, rng)
    assert (network.input_size, network.output_size) == (3, 3)
    lower, upper = np.array([-1.0, -0.5, 0.0]), np.array([1.0, 0.5, 2.0])
    c = np.array([1.0, -1.0, 0.5])  # Y_0 from u, Y_1 and Y_2 from v: the condition spans both outputs
    samples = rng.uniform(lower, upper, size=(20000, 3))
    values = by_hand(path, samples) @ c
    spread = float(np.ptp(values))
    verdicts = {}
    for threshold in (float(values.min()) + 1e-3, float(values.min()) - 0.5 * spread):
        spec = tmp_path / f"spec_{len(verdicts)}.vnnlib"
        spec.write_text(spec_text(lower, upper, c, threshold))
        z3 = decide_with_z3(load_query(network, spec), timeout_s=60).verdict
        out = tmp_path / f"result_{len(verdicts)}.txt"
        main(["vnnlib", str(path), str(spec), "--timeout", "60", "--out", str(out), "--quiet"])
        verdict, x, y = parse_result(out.read_text())
        assert verdict == z3, (threshold, verdict, z3)
        verdicts[verdict] = threshold
        if verdict == "sat":  # the counterexample, replayed by hand on the file, meets the condition
            assert x.shape == (3,) and y.shape == (3,)
            assert np.all(lower <= x) and np.all(x <= upper)
            replayed = by_hand(path, x)[0]
            np.testing.assert_allclose(y, replayed, rtol=0, atol=1e-6)
            assert replayed @ c <= threshold + 1e-5
    assert set(verdicts) == {"sat", "unsat"}


def test_vnnlib_size_mismatch_names_the_tensors(tmp_path, rng):
    path = save(tiny_two_by_two(rng), tmp_path / "tiny.onnx")
    spec = tmp_path / "wrong.vnnlib"
    spec.write_text(spec_text([0.0, 0.0], [1.0, 1.0], [1.0, 0.0, 0.0], 0.0))
    with pytest.raises(SpecError, match=r"declares 2 inputs .* has 3 \(2 in 'x' \+ 1 in 'z'\)"):
        load_query(load_onnx(path), spec)


def test_a_written_counterexample_says_how_its_vectors_split(tmp_path, rng):
    from reluverify.api import Verifier
    from reluverify.properties.export import write_counterexample

    path = save(tiny_two_by_two(rng), tmp_path / "tiny.onnx")
    spec = tmp_path / "any.vnnlib"
    spec.write_text(spec_text([-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], 1e6))  # every point
    result = Verifier(path, timeout=30).vnnlib(spec)
    assert result.verdict == "sat"
    written, _ = write_counterexample(result, tmp_path / "cex.json")
    payload = json.loads(open(written).read())
    assert payload["network"]["input_tensors"] == [{"name": "x", "shape": [1, 2], "first": 0},
                                                   {"name": "z", "shape": [1], "first": 2}]
    assert [t["name"] for t in payload["network"]["output_tensors"]] == ["u", "v"]
    np.testing.assert_array_equal(payload["outputs"], by_hand(path, np.array(payload["inputs"]))[0])


def test_info_lists_every_tensor(tmp_path, rng, capsys):
    path = save(tiny_two_by_two(rng), tmp_path / "tiny.onnx")
    assert main(["info", path]) == 0
    text = capsys.readouterr().out
    assert "inputs    2 tensors, 3 values in all, in this order" in text
    assert "'x' shape (1, 2) (2 values: X_0..X_1)" in text and "'z' shape (1,) (1 values: X_2..X_2)" in text
    assert "'u' shape (1, 1) (1 values: Y_0..Y_0)" in text and "'v' shape (1, 2) (2 values: Y_1..Y_2)" in text
    assert main(["info", path, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input"] == {"name": "x, z", "shape": [3], "size": 3}
    assert report["inputs"] == [{"name": "x", "shape": [1, 2], "size": 2, "first": 0},
                                {"name": "z", "shape": [1], "size": 1, "first": 2}]
    assert [t["first"] for t in report["outputs"]] == [0, 1]
    assert report["max_relative_difference_vs_onnxruntime"] < 1e-6


# ------------------------------------------------------------------ the dist_shift components
@pytest.mark.parametrize("name, inputs, outputs", [
    ("mnist_generator", (("input", (1, 1, 28, 28)), ("onnx::Concat_1", (1, 8))), (("output", (1, 1, 28, 28)),)),
    ("mnist_prior", (("input", (1, 1, 28, 28)),), (("output", (1, 8)), ("22", (1, 8)))),
])
def test_dist_shift_components_import_and_match_onnxruntime(name, inputs, outputs):
    path = benchmark_dir("breadth/dist_shift") / "onnx" / f"{name}.onnx"
    network = load_onnx(path)
    assert tuple(zip(network.input_names, network.input_shapes)) == inputs
    assert tuple(zip(network.output_names, network.output_shapes)) == outputs
    x = np.random.default_rng(0).uniform(0.0, 1.0, size=(8, network.input_size))
    ours, hand, ref = network.evaluate(x), by_hand(path, x), reference_model(str(path))(x)
    np.testing.assert_array_equal(ref, hand)
    assert np.max(np.abs(ours - hand)) / max(1.0, float(np.max(np.abs(hand)))) < 1e-6
