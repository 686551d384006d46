"""The README's "Verify your own model" runs as written, with both of torch's exporters.

The section's Python blocks are the training, one export block per exporter (TorchScript, then the
default dynamo one) and the counterexample replay; its bash block holds the commands. Each exporter's
story runs in a fresh folder: training and export in one Python process, every command as written
(``reluverify ...`` through this checkout's command line, in the test's process), then the replay.
The verify output must be the lines the README shows (their times aside), and the replay must print
the line the README says it prints.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from reluverify.cli import main

pytest.importorskip("torch")
pytest.importorskip("sklearn")

REPO = Path(__file__).resolve().parents[1]


def section() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("\n## Verify your own model\n", 1)[1].split("\n## ", 1)[0]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)\n```", section(), flags=re.S)


def run(argv: list[str], folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=600, env=env)


def test_the_section_has_the_story_it_tells():
    train, torchscript, dynamo, replay = blocks("python")
    assert "dynamo=False" in torchscript and "dynamo" not in dynamo and "Softmax" in train
    commands = blocks("bash")[0].splitlines()
    assert [shlex.split(c)[1] for c in commands] == ["info", "verify", "sweep", "report"]
    assert all("--domain 0:1" in c for c in commands[1:3]) and "--cex-out cex" in commands[1]


@pytest.mark.parametrize("exporter", [1, 2], ids=["torchscript", "dynamo"])
def test_the_story_runs_as_written(tmp_path, monkeypatch, capsys, exporter):
    if exporter == 2:
        pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript (the test extra has it)")
    python = blocks("python")
    trained = run([sys.executable, "-c", python[0] + "\n" + python[exporter]], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (tmp_path / "digits.onnx").is_file() and (tmp_path / "digits_points.json").is_file()

    monkeypatch.chdir(tmp_path)
    outputs = {}
    for command in blocks("bash")[0].splitlines():
        argv = shlex.split(command)
        assert argv[0] == "reluverify"
        status = main(argv[1:])  # in this process: the command line without the interpreter's start
        outputs[argv[1]] = capsys.readouterr()
        assert status == 0, (command, outputs[argv[1]].err[-3000:])
    assert "softmax   the network's final Softmax is dropped" in outputs["info"].out
    assert "note: digits.onnx: the network's final Softmax is dropped" in outputs["sweep"].err
    assert "certified" in outputs["report"].out

    def shown(line: str) -> str:  # a line without its time
        return re.sub(r"\s+[0-9.]+ s$", "", line) if line.startswith("delta ") else line

    expected = re.search(r"```\n(points .*?)\n```", section(), flags=re.S).group(1)
    assert [shown(l) for l in outputs["verify"].out.splitlines()] == [shown(l) for l in expected.splitlines()]
    assert sorted(p.name for p in (tmp_path / "cex").iterdir()) == [
        "point0_delta0.01.json", "point0_delta0.01.npz", "point0_delta0.03.json", "point0_delta0.03.npz"]

    replayed = run([sys.executable, "-c", python[3]], tmp_path)
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    printed = replayed.stdout.strip()
    assert printed in section(), printed  # the line the README says it prints
    other, label = (float(v) for v in re.findall(r"p\(\d\) = ([0-9.]+)", printed))
    assert other >= label
