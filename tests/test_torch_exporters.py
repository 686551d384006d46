"""Both of torch's ONNX exporters give files that import and verify: the TorchScript one
(``dynamo=False``) and the default one of torch 2.9 and later (``dynamo=True``, which needs onnxscript
and writes the weights to ``NAME.onnx.data`` beside the file), with or without a final Softmax or
LogSoftmax, for a small MLP and a small CNN."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reluverify.onnx_import import load_onnx  # noqa: E402
from reluverify.onnx_runtime import ReferenceModel  # noqa: E402
from reluverify.properties.local import LocalRobustness  # noqa: E402
from reluverify.solver import SolverOptions  # noqa: E402
from reluverify.train.trainer import one_thread  # noqa: E402

nn = torch.nn
FINALS = {None: None, "Softmax": lambda: nn.Softmax(dim=1), "LogSoftmax": lambda: nn.LogSoftmax(dim=-1)}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_thread():
        yield


def mlp() -> tuple[object, tuple[int, ...]]:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)), (1, 8, 8)


def cnn() -> tuple[object, tuple[int, ...]]:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64, 10)), (1, 1, 8, 8)


def export(logits_model, final, shape, dynamo: bool, path) -> str:
    """``logits_model`` followed by ``final``, exported by the chosen exporter (eval mode)."""
    if dynamo:
        pytest.importorskip("onnxscript", reason="torch's dynamo exporter needs onnxscript (the test extra has it)")
    layers = [logits_model] + ([FINALS[final]()] if final else [])
    model = nn.Sequential(*layers).eval()
    torch.onnx.export(model, (torch.rand(*shape),), str(path), dynamo=dynamo, input_names=["x"], output_names=["y"])
    return str(path)


def check(path, logits_model, final, shape) -> None:
    """The import is the logits of the torch model, and Def. 1 is decided with counterexamples that
    break the file's own label."""
    network = load_onnx(path, drop_final_softmax=True)
    assert network.final_softmax == final
    assert network.input_shape == shape and network.output_size == 10
    x = np.random.default_rng(0).uniform(0, 1, (8, network.input_size)).astype(np.float32)
    with torch.no_grad():
        expected = logits_model.eval()(torch.from_numpy(x).reshape(-1, *shape[1:])).double().numpy()
    np.testing.assert_allclose(network.evaluate(x), expected, rtol=1e-5, atol=1e-5)
    verdicts = set()
    for delta in (0.001, 0.5):
        result = LocalRobustness(network, x[0], delta, domain=(0.0, 1.0)).check(SolverOptions(timeout=60))
        verdicts.add(result.verdict)
        assert bool(result.notes) == (final is not None)
        if result.counterexample is not None:
            scores = ReferenceModel(path)(result.counterexample.inputs)  # the file's outputs
            other = int(result.counterexample.violated.split()[1])
            assert scores[other] >= scores[result.label] - 1e-5
    assert verdicts == {"robust", "not robust"}


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("final", list(FINALS), ids=["logits", "softmax", "logsoftmax"])
def test_an_exported_mlp_imports_and_verifies(tmp_path, dynamo, final):
    model, shape = mlp()
    path = export(model, final, shape, dynamo, tmp_path / "mlp.onnx")
    check(path, model, final, shape)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_an_exported_cnn_with_log_softmax_imports_and_verifies(tmp_path, dynamo):
    model, shape = cnn()
    with torch.no_grad():  # running statistics that are not the identity
        model.train()(torch.rand(32, *shape[1:]))
    path = export(model, "LogSoftmax", shape, dynamo, tmp_path / "cnn.onnx")
    check(path, model, "LogSoftmax", shape)
