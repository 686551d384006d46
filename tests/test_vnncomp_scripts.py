"""The VNN-COMP tool scripts, run as the competition's harness runs them.

A copy of this checkout (its tracked and new files, as a fresh clone has them) is installed with
``install_tool.sh v1`` into its own virtual environment (``--system-site-packages``, so no
package is downloaded; nothing is installed into the interpreter running the tests), then
``prepare_instance.sh`` and ``run_instance.sh`` run every instance of the ``test`` benchmark in
a fresh environment (``env -i``: a minimal PATH and HOME, no PYTHONPATH) from another folder.
Each result file must be the expected verdict, and a ``sat`` file's counterexample must lie in
the specification's input region with outputs (onnxruntime's) that satisfy it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reluverify.benchmark import load_instances
from reluverify.vnncomp import parse_result

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def fresh_env(home: Path) -> dict:
    """What ``env -i`` with a minimal PATH and HOME leaves, plus pip's own settings (its package index)."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    return env


def clone(target: Path) -> Path:
    """The files a fresh clone of this checkout would have (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell which files a fresh clone has")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    """A fresh clone with the tool installed by its install script; (clone, environment, a work folder)."""
    root = tmp_path_factory.mktemp("vnncomp")
    repo = clone(root / "reluverify")
    home = root / "home"
    home.mkdir()
    env = fresh_env(home)
    install_env = {**env, "RELUVERIFY_VENV_OPTIONS": "--system-site-packages --without-pip"}
    proc = subprocess.run(["bash", str(repo / "vnncomp_scripts" / "install_tool.sh"), "v1"], env=install_env,
                          cwd=home, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    work = root / "work"
    work.mkdir()
    return repo, env, work


def script(repo: Path, name: str, *args, env: dict, cwd: Path, timeout: float = 120):
    return subprocess.run(["bash", str(repo / "vnncomp_scripts" / name), *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_install_tool_installs_reluverify_without_torch(tool):
    repo, env, work = tool
    venv = repo / ".vnncomp" / "venv"
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", "import reluverify; print(reluverify.__file__)"],
                          env=env, cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(venv)), "reluverify must come from the tool's environment, not the checkout"
    site = next(venv.glob("lib/python*/site-packages"))
    assert not list(site.glob("torch*")), "install_tool.sh installed torch"
    wrong = script(repo, "install_tool.sh", "v2", env=env, cwd=work)
    assert wrong.returncode == 1 and "'v1'" in wrong.stderr


def check_counterexample(onnx: str, vnnlib: str, x: np.ndarray, y: np.ndarray) -> None:
    """``x`` is in the specification's input region and onnxruntime's ``N(x)`` (close to ``y``) satisfies it."""
    from reluverify.onnx_import import load_onnx
    from reluverify.onnx_runtime import ReferenceModel
    from reluverify.vnnlib import load_query

    query = load_query(load_onnx(onnx), vnnlib)
    assert query.in_region(x, tolerance=1e-9)
    outputs = np.asarray(ReferenceModel(onnx)(x), dtype=np.float64).reshape(-1)
    assert np.allclose(outputs, y, rtol=1e-5, atol=1e-6)
    assert query.satisfied_disjuncts(x, outputs, tolerance=1e-6)


def test_every_instance_of_the_test_benchmark_as_the_harness_runs_it(tool, test_bench_dir):
    repo, env, work = tool
    instances = load_instances(test_bench_dir)
    assert len(instances) == 5 and all(i.expected for i in instances)
    for number, instance in enumerate(instances):
        args = ("v1", "test", instance.onnx, instance.vnnlib)
        prepared = script(repo, "prepare_instance.sh", *args, env=env, cwd=work)
        assert prepared.returncode == 0, prepared.stderr
        results = work / f"result_{number}.txt"
        results.write_text("stale\n")  # a result of an earlier run must not survive
        ran = script(repo, "run_instance.sh", *args, results, int(instance.timeout), env=env, cwd=work,
                     timeout=instance.timeout + 30)
        assert ran.returncode == 0, ran.stderr
        verdict, x, y = parse_result(results.read_text(), str(results))
        assert verdict == instance.expected, f"{instance}: {verdict}\n{ran.stderr}"
        if verdict == "sat":
            check_counterexample(instance.onnx, instance.vnnlib, x, y)


def test_compressed_files_and_a_failing_run(tool, test_bench_dir):
    repo, env, work = tool
    packed = []
    for name in ("test_sat.onnx", "test_prop.vnnlib"):
        target = work / f"{name}.gz"
        target.write_bytes(gzip.compress((test_bench_dir / name).read_bytes()))
        packed.append(target)
    results = work / "gz.txt"
    args = ("v1", "test", packed[0], packed[1])
    assert script(repo, "prepare_instance.sh", *args, env=env, cwd=work).returncode == 0
    ran = script(repo, "run_instance.sh", *args, results, 60, env=env, cwd=work)
    assert ran.returncode == 0, ran.stderr
    verdict, x, y = parse_result(results.read_text())
    assert verdict == "sat"
    check_counterexample(str(test_bench_dir / "test_sat.onnx"), str(test_bench_dir / "test_prop.vnnlib"), x, y)
    # the harness may name the .onnx of a benchmark that ships .onnx.gz
    ran = script(repo, "run_instance.sh", "v1", "test", work / "test_sat.onnx", packed[1], results, 60,
                 env=env, cwd=work)
    assert ran.returncode == 0 and parse_result(results.read_text())[0] == "sat"
    # a broken network is an honest 'unknown', with the reason on stderr
    broken = work / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    ran = script(repo, "run_instance.sh", "v1", "test", broken, test_bench_dir / "test_prop.vnnlib", results, 60,
                 env=env, cwd=work)
    assert ran.returncode == 0 and results.read_text() == "unknown\n"
    assert "reluverify: error" in ran.stderr


def test_prepare_instance_ends_a_leftover_run_and_nothing_else(tool, test_bench_dir):
    repo, env, work = tool
    pgid_file = repo / ".vnncomp" / "run.pgid"

    def group(name: str) -> subprocess.Popen:  # a process group whose command line reads `name`
        return subprocess.Popen(["bash", "-c", f'exec -a "{name}" sleep 600'], start_new_session=True)

    args = ("v1", "test", test_bench_dir / "test_tiny.onnx", test_bench_dir / "test_tiny.vnnlib")
    leftover, stranger = group("reluverify vnnlib leftover"), group("someone else")
    try:
        for process, ended in ((stranger, False), (leftover, True)):
            pgid_file.write_text(f"{process.pid}\n")
            assert script(repo, "prepare_instance.sh", *args, env=env, cwd=work).returncode == 0
            if ended:  # prepare_instance.sh has returned: the group was signalled already
                process.wait(timeout=10)
            assert (process.poll() is not None) == ended
            assert not pgid_file.exists()
    finally:
        for process in (leftover, stranger):
            if process.poll() is None:
                process.kill()
                process.wait()
