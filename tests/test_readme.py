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
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)\n```", text, flags=re.S)
    assert blocks, "the README shows the Python API"
    proc = subprocess.run([sys.executable, "-c", blocks[0]], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("robust 2 ")
