"""ONNX export: files that onnxruntime and reluverify's importer evaluate exactly as torch does."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from reluverify.onnx_import import load_onnx  # noqa: E402
from reluverify.train.export import ExportMismatch, check_export, export_onnx  # noqa: E402
from reluverify.train.models import ReluMLP, SRUClassifier  # noqa: E402
from reluverify.train.trainer import one_thread  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_thread():
        yield


def _unit_box(n):
    return np.zeros(n), np.ones(n)


def _with_batch_statistics(model, inputs):
    """Give a logit batch norm non-trivial running statistics, then switch to eval mode."""
    model.train()
    with torch.no_grad():
        for _ in range(20):
            model.logits(inputs)
    return model.eval()


def test_mlp_export_is_a_relu_chain_matching_torch(tmp_path):
    torch.manual_seed(0)
    model = ReluMLP((64, 32, 32, 10))
    path = export_onnx(model, tmp_path / "mlp.onnx")
    check = check_export(model, path, _unit_box(64))
    assert check.onnxruntime < 1e-5 and check.reluverify < 1e-5
    network = load_onnx(path)
    assert network.relu_chain().layer_sizes == (32, 32)
    assert network.input_shape == (1, 64) and network.output_shape == (1, 10)
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert ops == {"Gemm", "Relu"}


def test_cost_outputs_and_logit_batch_norm_are_folded_into_the_last_layer(tmp_path):
    torch.manual_seed(1)
    model = _with_batch_statistics(ReluMLP((5, 7, 7, 5), logit_bn_scale=2.5, costs=True), 3 * torch.randn(256, 5))
    assert torch.allclose(model(torch.ones(1, 5)), -model.logits(torch.ones(1, 5)))
    path = export_onnx(model, tmp_path / "acas.onnx")
    check_export(model, path, (-np.ones(5), np.ones(5)))
    assert load_onnx(path).relu_chain().layer_sizes == (7, 7)


def test_sru_export_unrolls_and_loads(tmp_path):
    torch.manual_seed(2)
    for hidden in (8, 12):  # identity highway and projected highway
        model = SRUClassifier(steps=8, features=8, hidden=hidden, classes=10)
        with torch.no_grad():
            model.sru.bias.normal_()
        path = export_onnx(model, tmp_path / f"sru{hidden}.onnx")
        check = check_export(model, path, _unit_box(64))
        assert check.onnxruntime < 1e-5 and check.reluverify < 1e-5
        network = load_onnx(path)
        assert network.input_shape == (1, 8, 8)
        # 8 forget gates and one highway gate; one product per state update and one for h_T
        assert network.activation_counts == {"sigmoid": 9 * hidden, "product": 9 * hidden}
        ops = {node.op_type for node in onnx.load(path).graph.node}
        assert ops <= {"MatMul", "Add", "Split", "Gather", "Mul", "Sigmoid", "Sub", "Gemm"}


def test_export_is_byte_for_byte_reproducible(tmp_path):
    torch.manual_seed(3)
    model = SRUClassifier(steps=4, features=2, hidden=3, classes=2)
    first = export_onnx(model, tmp_path / "a.onnx")
    second = export_onnx(model, tmp_path / "b.onnx")
    assert open(first, "rb").read() == open(second, "rb").read()


def test_a_wrong_export_is_caught(tmp_path):
    torch.manual_seed(4)
    model, other = ReluMLP((6, 4, 3)), ReluMLP((6, 4, 3))
    path = export_onnx(other, tmp_path / "other.onnx")
    with pytest.raises(ExportMismatch, match="differs from torch"):
        check_export(model, path, _unit_box(6))


def test_unknown_models_are_refused(tmp_path):
    with pytest.raises(TypeError, match="no ONNX export"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")
