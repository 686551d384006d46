"""``reluverify train ... --device cuda``: the three tasks on a GPU, reproducible from the model card's command.

Runs only where torch sees a CUDA device; elsewhere every test is skipped with the reason (a
CPU-only torch build, or no device). The full-size comparison of GPU and CPU training (time and
held-out score of the shipped networks' commands) is ``benchmarks/train_devices.py``.
"""

from __future__ import annotations

import hashlib
import json
import shlex

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from reluverify.cli import main  # noqa: E402
from reluverify.train.trainer import cuda_unavailable_reason  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason=f"no GPU here: {cuda_unavailable_reason()}")

TINY = {  # each task, small enough for a few seconds
    "mlp": ["--hidden", "8", "--epochs", "2"],
    "sru": ["--hidden", "4", "--epochs", "1"],
    "acas-like": ["--hidden", "8,8", "--epochs", "1", "--samples", "4000"],
}


def _sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _train(task, device, out, capsys) -> dict:
    assert main(["train", task, *TINY[task], "--device", device, "--seed", "1", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    return json.loads(out.with_suffix(".json").read_text())


@pytest.mark.parametrize("task", sorted(TINY))
def test_cuda_training_is_recorded_reproducible_and_scores_like_cpu(task, tmp_path, capsys):
    card = _train(task, "cuda", tmp_path / "gpu.onnx", capsys)
    assert card["training"]["device"] == "cuda"
    assert card["training"]["device_name"] == torch.cuda.get_device_name(0)
    assert card["software"]["cuda"] == torch.version.cuda
    assert card["export_check"]["max_relative_difference_reluverify"] < 1e-5
    words = shlex.split(card["command"])
    assert words[words.index("--device") + 1] == "cuda"
    # the card's command rebuilds the same file on the same device
    words[words.index("--out") + 1] = str(tmp_path / "again.onnx")
    assert main([*words[1:], "--no-progress"]) == 0
    capsys.readouterr()
    assert _sha256(tmp_path / "again.onnx") == card["onnx_sha256"]
    # the same options on the CPU: same start, same batches, float rounding apart
    cpu = _train(task, "cpu", tmp_path / "cpu.onnx", capsys)
    assert abs(cpu["metrics"]["test_accuracy"] - card["metrics"]["test_accuracy"]) <= 0.1
