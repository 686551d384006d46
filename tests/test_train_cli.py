"""``reluverify train``: a tiny run end to end, its model card, rebuilding from the card, errors."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys

import pytest

from reluverify.cli import build_parser, main


def _sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from reluverify.cli import build_parser\n"
        "try:\n    build_parser().parse_args(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--optimizer" in proc.stdout and "acas-like" in proc.stdout


def _parse_card_command(command: str, out):
    words = shlex.split(command)
    assert words[:2] == ["reluverify", "train"]
    words = words[1:]
    words[words.index("--out") + 1] = str(out)
    return words


def test_tiny_training_run_writes_a_network_a_card_and_rebuilds_bit_for_bit(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = tmp_path / "nets" / "tiny.onnx"
    rc = main(["train", "mlp", "--hidden", "6", "--epochs", "2", "--device", "cpu", "--seed", "3",
               "--no-progress", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "onnxruntime" in printed
    card = json.loads((tmp_path / "nets" / "tiny.json").read_text())
    for key in ("architecture", "data", "optimizer", "seed", "metrics", "command", "onnx_sha256"):
        assert key in card
    assert card["architecture"]["layers"] == [64, 6, 10]
    assert card["optimizer"]["name"] == "nd-adam" and card["seed"] == 3
    assert card["onnx_sha256"] == _sha256(out)
    assert card["export_check"]["max_relative_difference_reluverify"] < 1e-5
    assert 0.0 <= card["metrics"]["test_accuracy"] <= 1.0
    # the card's command, run again, rebuilds the same file
    again = tmp_path / "again.onnx"
    assert main(_parse_card_command(card["command"], again) + ["--no-progress"]) == 0
    assert _sha256(again) == card["onnx_sha256"]
    assert main(["info", str(out)]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["mlp"],
        ["sru", "--optimizer", "sgd", "--lr", "0.2", "--momentum", "0.5", "--epochs", "3"],
        ["acas-like", "--softmax", "bn", "--bn-scale", "1.5", "--samples", "500", "--weight-decay", "0.0001"],
        ["mlp", "--softmax", "none", "--lr-sphere", "0.125", "--hidden", "7,5", "--batch-size", "17", "--seed", "9"],
    ],
)
def test_canonical_command_parses_back_to_the_same_options(argv):
    pytest.importorskip("torch")
    from reluverify.cli.train import canonical_command, options_from_args

    parser = build_parser()
    options = options_from_args(parser.parse_args(["train", *argv, "--out", "x.onnx"]))
    command = canonical_command(options, "x.onnx")
    again = options_from_args(parser.parse_args(shlex.split(command)[1:]))
    assert again == options


def _run(*args):
    return subprocess.run([sys.executable, "-m", "reluverify", "train", *args], capture_output=True, text=True)


def test_user_errors_are_one_line(tmp_path):
    pytest.importorskip("torch")
    proc = _run("mlp", "--out", str(tmp_path / "net.txt"))
    assert proc.returncode == 2 and proc.stderr.startswith("reluverify: error: --out must name an .onnx file")
    assert proc.stderr.count("\n") == 1
    proc = _run("mlp", "--hidden", "3,0", "--out", str(tmp_path / "n.onnx"))
    assert proc.returncode == 2 and "positive" in proc.stderr
    proc = _run("sru", "--hidden", "8,8", "--out", str(tmp_path / "n.onnx"))
    assert proc.returncode == 2 and "1 hidden size(s), got 2" in proc.stderr


def test_cuda_without_a_gpu_is_a_user_error(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    proc = _run("mlp", "--device", "cuda", "--out", str(tmp_path / "n.onnx"))
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    assert proc.stderr.startswith("reluverify: error: --device cuda: ") and proc.stderr.count("\n") == 1
    assert "use --device cpu" in proc.stderr  # the fix
    assert not (tmp_path / "n.onnx").exists()


def test_the_cards_command_names_the_device_auto_chose(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = tmp_path / "auto.onnx"
    assert main(["train", "mlp", "--hidden", "4", "--epochs", "1", "--device", "auto", "--no-progress",
                 "--out", str(out)]) == 0
    card = json.loads((tmp_path / "auto.json").read_text())
    used = "cuda" if torch.cuda.is_available() else "cpu"
    assert card["training"]["device"] == used and card["training"]["device_name"]
    assert card["training"]["seconds"] >= 0 and 0 <= card["metrics"]["test_accuracy"] <= 1
    words = shlex.split(card["command"])
    assert words[words.index("--device") + 1] == used
    assert f"on {used} (" in capsys.readouterr().out
