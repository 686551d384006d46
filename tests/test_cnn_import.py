"""Convolutional networks imported with structured operators: they match onnxruntime, stay small in
memory, give ReLU chains, export back to ONNX, and the solver agrees with z3 on tiny ones."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from onnx import helper, numpy_helper

from conftest import REPO, benchmark_dir
from onnx_builders import model, save, tensor, value
from z3_agreement import verdicts_agree_with_z3
from reluverify import linear_ops as lo
from reluverify.errors import NetworkError
from reluverify.onnx_export import network_to_onnx
from reluverify.onnx_import import DENSE_LIMIT, load_onnx
from reluverify.onnx_runtime import ReferenceModel, reference_model

LIMITS = [DENSE_LIMIT, 0]  # as imported by default (small: dense), and every value structured


def _agrees(network, path, rng, count=16, tolerance=1e-6, low=-1.0, high=1.0):
    """The IR, its ReLU chain and its ONNX export all match onnxruntime on the file."""
    x = rng.uniform(low, high, size=(count, network.input_size))
    ref = reference_model(str(path))(x)
    scale = max(1.0, float(np.max(np.abs(ref))))
    assert np.max(np.abs(network.evaluate(x) - ref)) <= tolerance * scale
    chain = network.relu_chain()
    y, _ = chain.forward(x)
    assert np.max(np.abs(y - ref)) <= tolerance * scale
    exported = ReferenceModel("<export>", network_to_onnx(chain.to_network()).SerializeToString())
    assert np.max(np.abs(exported(x) - ref)) <= 10 * tolerance * scale
    return chain


# ------------------------------------------------------------------ torch models
class _ResidualCnn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(2)
        self.avg = torch.nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False)
        self.fc = torch.nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv1(x)))
        h = torch.relu(h + self.conv2(h))  # a residual block
        h = self.avg(self.pool(h))
        return self.fc(torch.flatten(h, 1))


class _Conv1dNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv1d(2, 4, 3, stride=2, padding=2, dilation=2, groups=2)
        self.conv2 = torch.nn.Conv1d(4, 3, 2, padding=1)
        self.pool = torch.nn.MaxPool1d(3, stride=2, padding=1)
        self.avg = torch.nn.AvgPool1d(2)
        self.fc = torch.nn.Linear(3 * 2, 2)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = self.avg(self.pool(self.conv2(h)))  # max pooling of a convolution (signed values)
        return self.fc(torch.flatten(h, 1))


def _export(module: torch.nn.Module, shape, path) -> str:
    torch.manual_seed(0)
    for p in module.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    module.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.zeros(shape), buffer, dynamo=False, opset_version=13,
                          do_constant_folding=False)  # keeps BatchNormalization a node of its own
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return str(path)


@pytest.fixture(scope="module")
def torch_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch")
    return {"residual": _export(_ResidualCnn(), (1, 2, 8, 8), folder / "residual.onnx"),
            "conv1d": _export(_Conv1dNet(), (1, 2, 12), folder / "conv1d.onnx")}


@pytest.mark.parametrize("limit", LIMITS)
def test_torch_cnns_match_onnxruntime(torch_models, rng, limit):
    import onnx

    ops = {n.op_type for n in onnx.load(torch_models["residual"]).graph.node}
    assert {"Conv", "BatchNormalization", "Relu", "MaxPool", "AveragePool", "Add", "Flatten", "Gemm"} <= ops
    for name, path in torch_models.items():
        network = load_onnx(path, dense_limit=limit)
        chain = _agrees(network, path, rng)
        structured = [op for op in chain.describe_layers() if op]
        if limit == 0:
            assert any("conv" in op for op in structured), (name, structured)
        else:
            assert not structured  # small networks import dense, as always
    residual = load_onnx(torch_models["residual"], dense_limit=0)
    convs = [w for node in residual.nodes for w in getattr(node, "weights", ()) if isinstance(w, lo.Conv)]
    assert convs and all(lo.shape(w)[0] == 4 * 8 * 8 for w in convs)  # BatchNormalization folded into conv1


# ------------------------------------------------------------ operator attributes
def _conv(name, x, y, out_channels, in_channels, kernel, rng, **attrs):
    w = rng.normal(size=(out_channels, in_channels // attrs.get("group", 1)) + tuple(kernel))
    b = rng.normal(size=out_channels)
    node = helper.make_node("Conv", [x, f"{name}_W", f"{name}_B"], [y], kernel_shape=list(kernel), **attrs)
    return node, [tensor(f"{name}_W", w), tensor(f"{name}_B", b)]


def _case(kind, rng):
    """(nodes, inits, input shape, opset) for one operator variant, ending in a Relu and a Flatten."""
    i64 = lambda name, v: numpy_helper.from_array(np.asarray(v, dtype=np.int64), name)  # noqa: E731
    if kind == "conv-same-upper":
        node, inits = _conv("c", "x", "h", 3, 2, (3, 2), rng, strides=[2, 1], auto_pad="SAME_UPPER")
        return [node], inits, (1, 2, 7, 6), 13
    if kind == "conv-same-lower-grouped":
        node, inits = _conv("c", "x", "h", 4, 2, (2, 3), rng, strides=[2, 2], auto_pad="SAME_LOWER", group=2)
        return [node], inits, (1, 2, 6, 5), 13
    if kind == "conv-valid-asymmetric":
        a, ia = _conv("a", "x", "h0", 3, 2, (3, 3), rng, pads=[0, 2, 1, 0], strides=[2, 2])
        b, ib = _conv("b", "h0", "h", 2, 3, (1, 2), rng, auto_pad="VALID")
        return [a, b], ia + ib, (1, 2, 7, 7), 13
    if kind == "conv1d":
        node, inits = _conv("c", "x", "h", 4, 2, (3,), rng, pads=[2, 1], strides=[2], dilations=[2], group=2)
        return [node], inits, (1, 2, 11), 13
    if kind == "pad-constant":
        node, inits = _conv("c", "p", "h", 2, 2, (2, 2), rng)
        pad = helper.make_node("Pad", ["x", "pads", "fill"], ["p"], mode="constant")
        return [pad, node], inits + [i64("pads", [0, 0, 1, 2, 0, 0, 2, -1]), tensor("fill", 0.5)], (1, 2, 4, 5), 13
    if kind == "pad-reflect-edge":
        node, inits = _conv("c", "q", "h", 2, 2, (2, 2), rng)
        pads = [helper.make_node("Pad", ["x", "p1"], ["p"], mode="reflect"),
                helper.make_node("Pad", ["p", "p2"], ["q"], mode="edge")]
        return pads + [node], inits + [i64("p1", [0, 0, 1, 2, 0, 0, 2, 1]), i64("p2", [0, 0, 0, 1, 0, 0, 1, 0])], \
            (1, 2, 4, 5), 13
    if kind == "avgpool-exclude-pad-ceil":
        node, inits = _conv("c", "x", "c0", 3, 2, (2, 2), rng, pads=[1, 1, 1, 1])
        pool = helper.make_node("AveragePool", ["c0"], ["h"], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1],
                                ceil_mode=1)
        return [node, pool], inits, (1, 2, 6, 6), 13
    if kind == "avgpool-include-pad":
        node, inits = _conv("c", "x", "c0", 3, 2, (2, 2), rng)
        pool = helper.make_node("AveragePool", ["c0"], ["h"], kernel_shape=[3, 3], strides=[2, 1], pads=[1, 1, 1, 1],
                                count_include_pad=1)
        return [node, pool], inits, (1, 2, 7, 6), 13
    if kind == "global-avgpool":
        node, inits = _conv("c", "x", "c0", 3, 2, (2, 2), rng)
        return [node, helper.make_node("GlobalAveragePool", ["c0"], ["h"])], inits, (1, 2, 5, 4), 13
    if kind == "maxpool-of-relu":
        node, inits = _conv("c", "x", "c0", 3, 2, (2, 2), rng, pads=[1, 1, 1, 1])
        nodes = [node, helper.make_node("Relu", ["c0"], ["r0"]),
                 helper.make_node("MaxPool", ["r0"], ["h"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                  dilations=[1, 1])]
        return nodes, inits, (1, 2, 6, 6), 13
    if kind == "maxpool-of-conv-ceil-dilated":
        node, inits = _conv("c", "x", "c0", 2, 2, (2, 2), rng)
        pool = helper.make_node("MaxPool", ["c0"], ["h"], kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 1],
                                ceil_mode=1)
        return [node, pool], inits, (1, 2, 7, 7), 13
    if kind == "concat-branches":
        a, ia = _conv("a", "x", "h0", 2, 2, (3, 3), rng, pads=[1, 1, 1, 1])
        b, ib = _conv("b", "x", "h1", 3, 2, (1, 1), rng)
        cat = helper.make_node("Concat", ["h0", "h1"], ["h"], axis=1)
        return [a, b, cat], ia + ib, (1, 2, 4, 4), 13
    raise ValueError(kind)


CASES = ["conv-same-upper", "conv-same-lower-grouped", "conv-valid-asymmetric", "conv1d", "pad-constant",
         "pad-reflect-edge", "avgpool-exclude-pad-ceil", "avgpool-include-pad", "global-avgpool", "maxpool-of-relu",
         "maxpool-of-conv-ceil-dilated", "concat-branches"]


@pytest.mark.parametrize("kind", CASES)
def test_operator_variants_match_onnxruntime(tmp_path, kind):
    rng = np.random.default_rng(sum(map(ord, kind)))
    nodes, inits, shape, opset = _case(kind, rng)
    nodes = nodes + [helper.make_node("Relu", ["h"], ["r"]), helper.make_node("Flatten", ["r"], ["f"], axis=1)]
    # the flat size of r is found by importing once with a dummy head
    probe = model(nodes, [value("x", shape)], [value("f", [1, None])], inits, opset=opset)
    size = load_onnx(save(probe, tmp_path / "probe.onnx")).output_size
    head = rng.normal(size=(size, 2))
    m = model(nodes + [helper.make_node("MatMul", ["f", "head"], ["y"])], [value("x", shape)], [value("y", [1, 2])],
              inits + [tensor("head", head)], opset=opset)
    path = save(m, tmp_path / f"{kind}.onnx")
    for limit in LIMITS:
        _agrees(load_onnx(path, dense_limit=limit), path, rng, count=8)


def test_batched_convolution_and_matmul_over_the_last_axis(tmp_path, rng):
    """A leading axis of 2 and a MatMul over the last axis of a 4-D tensor: repeated operators."""
    node, inits = _conv("c", "x", "h", 3, 2, (2, 2), rng, pads=[1, 0, 0, 1])
    nodes = [node, helper.make_node("Relu", ["h"], ["r"]), helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 1]),
             helper.make_node("MatMul", ["m", "K"], ["y"])]
    m = model(nodes, [value("x", [2, 2, 4, 4])], [value("y", [2, 3, 2, 5])], inits + [tensor("K", rng.normal(size=(4, 5)))])
    path = save(m, tmp_path / "batched.onnx")
    for limit in LIMITS:
        network = load_onnx(path, dense_limit=limit)
        _agrees(network, path, rng, count=4)
    assert any(isinstance(w, lo.Repeat) for node in network.nodes for w in getattr(node, "weights", ()))


def test_bad_pooling_and_padding_are_clear_errors(tmp_path):
    cases = [
        (helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]), "Indices"),
        (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], storage_order=1), "storage_order"),
        (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2, 2]), "kernel_shape"),
        (helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect"), "reflect pads larger"),
        (helper.make_node("Pad", ["x", "pads"], ["y"], mode="symmetric"), "pad mode"),
        (helper.make_node("Conv", ["x", "W"], ["y"], auto_pad="SAME"), "auto_pad"),
    ]
    for k, (node, fragment) in enumerate(cases):
        outputs = [value(node.output[0], [1])]
        inits = [numpy_helper.from_array(np.array([0, 0, 4, 0, 0, 0, 0, 0], dtype=np.int64), "pads"),
                 tensor("W", np.ones((1, 1, 2, 2)))]
        m = model([node], [value("x", [1, 1, 3, 3])], outputs, inits)
        with pytest.raises(NetworkError, match=fragment):
            load_onnx(save(m, tmp_path / f"bad{k}.onnx"))


# ------------------------------------------------------------------ solver
def _tiny_cnn(tmp_path, rng) -> str:
    """1x3x3 -> conv 2x2x2 -> relu -> maxpool 2x2 -> residual 1x1 conv + add -> relu -> 2 outputs (22 ReLUs)."""
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], kernel_shape=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2]),
        helper.make_node("Conv", ["m", "W2"], ["d"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["d", "m"], ["s"]),
        helper.make_node("Relu", ["s"], ["t"]),
        helper.make_node("Flatten", ["t"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "V", "c0"], ["y"], transB=1),
    ]
    inits = [tensor("W", rng.normal(size=(2, 1, 2, 2))), tensor("B", rng.normal(0, 0.3, size=2)),
             tensor("W2", rng.normal(size=(2, 2, 1, 1))), tensor("V", rng.normal(size=(2, 2))),
             tensor("c0", rng.normal(size=2))]
    return save(model(nodes, [value("x", [1, 1, 3, 3])], [value("y", [1, 2])], inits), tmp_path / "tiny.onnx")


def test_solver_agrees_with_z3_on_a_tiny_cnn(tmp_path):
    rng = np.random.default_rng(5)
    path = _tiny_cnn(tmp_path, rng)
    network = load_onnx(path, dense_limit=0)
    chain = _agrees(network, path, rng)
    assert any(op for op in chain.describe_layers()) and chain.num_relus == 22
    verdicts = verdicts_agree_with_z3(network, rng, 0.3, rounds=3, samples=2000)
    assert len(verdicts) >= 4 and "sat" in verdicts and "unsat" in verdicts, verdicts


# ------------------------------------------------------------------ benchmarks
_PEAK = """
import json, resource, sys, time
from reluverify.onnx_import import load_onnx
start = time.perf_counter()
network = load_onnx(sys.argv[1])
seconds = time.perf_counter() - start
try:  # this process's own high-water mark (ru_maxrss would include the forking parent's)
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mib": peak / 1024}))
"""


def test_benchmark_cnns_import_structured_and_small(rng):
    collins = benchmark_dir("collins_rul_cnn") / "onnx"
    cifar = benchmark_dir("marabou-cifar10") / "nets"
    paths = sorted(collins.glob("*.onnx")) + sorted(cifar.glob("*.onnx"))
    assert len(paths) == 6
    for path in paths:
        network = load_onnx(path)
        chain = _agrees(network, path, rng, count=4)
        structured_bytes = sum(lo.nbytes(w) for w in chain.weights)
        assert structured_bytes < 64 * 2**20, (path.name, structured_bytes)
    # the largest: 800 -> 7200 -> 12800 -> ... used ~15 GiB and 40 s to import as dense maps
    biggest = collins / "NN_rul_full_window_40.onnx"
    env = {"PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", _PEAK, str(biggest)], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["peak_mib"] < 400, report  # numpy and onnx themselves take ~60 MiB of it
    convs = [w for w in load_onnx(biggest).relu_chain().weights if isinstance(w, lo.Conv)]
    assert len(convs) == 4
