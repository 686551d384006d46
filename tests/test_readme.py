"""The README's Quick start works as written, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)
    assert len(blocks) == 2, "the Quick start has exactly two commands"
    return [b.strip() for b in blocks]


def test_first_command_runs_a_real_verification():
    install, _, command = quick_start_commands()[0].partition(" && ")
    assert install == "pip install ."
    argv = shlex.split(command)
    assert argv[0] == "reluverify"
    proc = subprocess.run([sys.executable, "-m", "reluverify", *argv[1:]], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n", 1)[0] in ("unsat", "sat", "robust", "not robust")


def test_ci_runs_the_readme_test_command():
    install, _, test = quick_start_commands()[1].partition(" && ")
    ci = (REPO / ".ci" / "run").read_text()
    assert install.replace("pip install", "python3 -m pip install --quiet") in ci
    assert test in ci


def test_python_example_runs_as_written():
    section = (REPO / "README.md").read_text().split("### Python API", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)\n```", section, flags=re.S)
    assert blocks, "the README shows the Python API"
    proc = subprocess.run([sys.executable, "-c", blocks[0]], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("robust 2 ")


def test_sweep_example_gives_the_table_it_shows(tmp_path):
    text = (REPO / "README.md").read_text()
    section = text.split("### `reluverify sweep`", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```\n(.*?)\n```", section, flags=re.S).group(1)
    command = next(line[2:] for line in block.splitlines() if line.startswith("$ reluverify sweep"))
    shown = [line.split() for line in block.splitlines() if line.startswith("digits_mlp.onnx")]
    argv = shlex.split(command)[1:]
    argv[argv.index("--db") + 1] = str(tmp_path / "sweep.sqlite")
    argv[argv.index("--plot") + 1] = str(tmp_path / "sweep.png")
    proc = subprocess.run([sys.executable, "-m", "reluverify", *argv, "--timeout", "120"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    printed = [line.split() for line in proc.stdout.splitlines() if line.startswith("digits_mlp.onnx")]
    # the verdict counts match the README (the seconds may differ)
    assert [row[:12] for row in printed] == [row[:12] for row in shown]
    assert (tmp_path / "sweep.png").stat().st_size > 0
    report = subprocess.run([sys.executable, "-m", "reluverify", "report", str(tmp_path / "sweep.sqlite"), "--radii"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert "certified" in report.stdout


def test_verify_without_a_point_prints_the_certified_robust_accuracy_it_shows():
    text = (REPO / "README.md").read_text()
    section = text.split("### `reluverify verify`", 1)[1].split("\n### ", 1)[0]
    block = next(b for b in re.findall(r"```\n(.*?)\n```", section, flags=re.S) if b.startswith("$ reluverify"))
    lines = block.splitlines()
    command = lines[0][2:]
    assert command == "reluverify verify networks/digits_mlp.onnx --delta 0.01 0.02 0.05"
    proc = subprocess.run([sys.executable, "-m", "reluverify", *shlex.split(command)[1:]], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr

    def without_seconds(line: str) -> str:  # the time at the end of a delta line may differ
        return re.sub(r"\s+[0-9.]+ s$", "", line) if line.startswith("delta ") else line

    assert [without_seconds(l) for l in proc.stdout.splitlines()] == [without_seconds(l) for l in lines[1:]]
