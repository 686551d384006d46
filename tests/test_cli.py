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
