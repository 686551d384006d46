"""``--max-memory SIZE``: a query that needs more ends with one line naming the limit (exit status 2).

The queries that need more are cheap to make and safe to run: a network with 16,384 inputs, whose
ReLU chain made dense for the solver is a 2 GiB identity map (the import keeps it structured), fails
its first large allocation at once under a 1G limit; the worker-process paths are driven by a task
that asks for 2 GiB. Limits are only
ever set in subprocesses, never in the test process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fuzz_contract import run_cli
from reluverify.memory import parse_size

REPO = Path(__file__).resolve().parents[1]
WIDE = 16_384


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A Relu on 16,384 inputs, and points for it (distinct values: the top score is unique)."""
    folder = tmp_path_factory.mktemp("wide")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "wide",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDE])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, folder / "wide.onnx")
    np.save(folder / "point.npy", np.linspace(0.0, 1.0, WIDE))
    np.save(folder / "points.npy", np.linspace(0.0, 1.0, 2 * WIDE).reshape(2, WIDE))
    return folder


def test_sizes():
    assert parse_size("512M") == 512 * 2**20
    assert parse_size("1G") == parse_size("1g") == parse_size("1GB") == parse_size("1GiB") == 2**30
    assert parse_size("2.5G") == int(2.5 * 2**30)
    assert parse_size("3T") == 3 * 2**40 and parse_size(str(2**30)) == 2**30
    for bad in ("", "G", "1X", "-1G", "1e9", "1 G B", "10M", "1024K"):
        with pytest.raises(ValueError):
            parse_size(bad)


@pytest.mark.parametrize("command", ["verify", "max-delta", "sweep"])
def test_a_query_that_needs_more_ends_with_one_line_naming_the_limit(wide, tmp_path, command):
    argv = {"verify": ["verify", wide / "wide.onnx", "--point", wide / "point.npy", "--delta", "0.1"],
            "max-delta": ["max-delta", wide / "wide.onnx", "--point", wide / "point.npy"],
            "sweep": ["sweep", wide / "wide.onnx", "--points", wide / "points.npy", "--delta", "0.1",
                      "--db", tmp_path / "s.sqlite", "--quiet"]}[command]
    proc = run_cli([*argv, "--max-memory", "1G"], seconds=60)
    assert proc.returncode == 2, proc.stderr
    assert "memory limit 1G" in proc.stderr and "--max-memory" in proc.stderr


def test_a_query_that_fits_is_decided_and_a_limit_too_small_is_refused():
    network, spec = REPO / "networks" / "acas_like.onnx", REPO / "networks" / "acas_like_prop3.vnnlib"
    proc = run_cli(["vnnlib", network, spec, "--timeout", "30", "--max-memory", "2G"], seconds=120)
    assert proc.returncode == 0 and proc.stdout.split("\n", 1)[0] in ("sat", "unsat"), proc.stderr
    proc = run_cli(["vnnlib", network, spec, "--max-memory", "100M"])
    assert proc.returncode == 2 and "--max-memory 100M" in proc.stderr, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "reluverify", "vnnlib", network, spec, "--max-memory", "lots"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "is not a size" in proc.stderr


WORKERS = textwrap.dedent("""
    import sys
    import numpy as np
    from reluverify.memory import set_limit

    def greedy(*args):
        return np.ones(2**28)  # 2 GiB

    set_limit("1G")
    if sys.argv[1] == "runner":  # verify --jobs N: the first worker out of memory ends the run
        from reluverify.errors import MemoryLimitError
        from reluverify.properties import runner
        from reluverify.query import box_query
        from reluverify.network import ReluChain
        from reluverify.solver import SolverOptions

        runner._solve = greedy
        net = ReluChain((np.ones((2, 2)),), (np.zeros(2),)).to_network()
        query = box_query(net, np.zeros(2), np.ones(2), [[(np.array([1.0, 0.0]), -1.0)], [(np.array([0.0, 1.0]), -1.0)]])
        try:
            runner.run_queries([query], SolverOptions(timeout=30).with_jobs(2), split_disjuncts=True)
        except MemoryLimitError as exc:
            print("ERROR", exc)
    else:  # a sweep's worker: its query gets an error row whose reason names the limit
        from reluverify.sweep.backends import LocalBackend
        from reluverify.sweep.plan import Job

        job = Job(key="k", network="n.onnx", network_sha256="0", point_index=0, point=(0.0,), delta=0.1)
        for outcome in LocalBackend(1, timeout=30, retries=0, worker=greedy).run([job], {}):
            print("OUTCOME", outcome.status, outcome.reason)
""")


@pytest.mark.parametrize("path", ["runner", "sweep"])
def test_worker_processes_report_the_limit(path):
    proc = subprocess.run([sys.executable, "-c", WORKERS, path], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    expected = "ERROR out of memory" if path == "runner" else "OUTCOME error out of memory"
    assert proc.stdout.startswith(expected), proc.stdout + proc.stderr
    assert "memory limit 1G (--max-memory)" in proc.stdout


_FAULTS = """
import resource, sys
import numpy as np
from reluverify.memory import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "keep" else None
a = np.ones(2**17)  # 1 MB: above glibc's first mmap threshold
del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    a = np.ones(2**17)  # three 1 MB arrays at a time, freed each round
    b = a * 2.0
    c = a + b
    del a, b, c
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_memory_is_reused_not_faulted_in_again():
    """With the allocator told to keep freed heap, 1 MB temporaries made and freed 50 times fault their
    pages in once, not every time (the bound passes' temporaries on ACAS Xu are this size)."""
    import subprocess

    def faults(mode):
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True).stdout
        took, count = out.split()
        return took, int(count)

    took, kept = faults("keep")
    if took != "True":
        pytest.skip("no glibc mallopt here")
    _, plain = faults("plain")
    assert plain > 10 * kept  # without it, glibc trims the freed arrays and faults them in again (36,821 vs 513)
