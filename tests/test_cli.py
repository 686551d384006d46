"""The command line: help for every subcommand, info on every benchmark network, clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reluverify.cli import SUBCOMMAND_MODULES, main


def run_cli(*args, check_rc=None):
    proc = subprocess.run([sys.executable, "-m", "reluverify", *map(str, args)], capture_output=True, text=True)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


@pytest.mark.parametrize("command", [m.replace("_", "-") for m in SUBCOMMAND_MODULES])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: reluverify" in capsys.readouterr().out


def test_info_on_every_benchmark_network(acasxu_dir, mnist_dir, test_bench_dir, capsys):
    files = sorted(acasxu_dir.glob("*.onnx")) + sorted(mnist_dir.glob("*.onnx")) + sorted(test_bench_dir.glob("*.onnx"))
    for path in files:
        assert main(["info", str(path), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["max_relative_difference_vs_onnxruntime"] <= 1e-5
        assert report["relus"] == sum(report["relu_chain"])


def test_info_human_output(acasxu_dir):
    proc = run_cli("info", acasxu_dir / "ACASXU_run2a_1_1_batch_2000.onnx", check_rc=0)
    assert "ReLUs     300" in proc.stdout
    assert "5 -> 50 -> 50 -> 50 -> 50 -> 50 -> 50 -> 5" in proc.stdout
    assert "'input'" in proc.stdout


def test_bad_network_gives_one_line_and_nonzero_exit(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage that is not protobuf" * 3)
    proc = run_cli("info", broken)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("reluverify: error: ")
    proc = run_cli("info", tmp_path / "missing.onnx")
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_broken_vnnlib_and_wrong_arity_give_one_line_and_exit_2(tmp_path, test_bench_dir):
    net = test_bench_dir / "test_small.onnx"  # 1 input, 1 output
    broken = tmp_path / "broken.vnnlib"
    broken.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1)\n")
    proc = run_cli("vnnlib", net, broken)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "broken.vnnlib:3" in proc.stderr and "never closed" in proc.stderr
    arity = tmp_path / "arity.vnnlib"
    arity.write_text(
        "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
        "(assert (>= X_0 0)) (assert (<= X_0 1)) (assert (>= X_1 0)) (assert (<= X_1 1)) (assert (>= Y_0 1))\n"
    )
    proc = run_cli("vnnlib", net, arity)
    assert proc.returncode == 2
    assert "declares 2 inputs" in proc.stderr and "network has 1" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_unsupported_operator_through_the_cli(tmp_path):
    from onnx import helper

    from onnx_builders import model, save, value

    path = save(model([helper.make_node("Hardmax", ["x"], ["y"], name="probs")], [value("x", [1, 3])],
                      [value("y", [1, 3])]), tmp_path / "hardmax.onnx")
    proc = run_cli("info", path)
    assert proc.returncode == 2
    assert "unsupported operator 'Hardmax'" in proc.stderr and "probs" in proc.stderr
    assert "Traceback" not in proc.stderr
