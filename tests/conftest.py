"""Shared fixtures: where the public benchmarks live, and small network builders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(os.environ.get("RELUVERIFY_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))


def benchmark_dir(name: str) -> Path:
    path = BENCHMARKS / name
    if not path.is_dir():
        pytest.skip(f"benchmark folder {path} is not present")
    return path


@pytest.fixture(scope="session")
def acasxu_dir() -> Path:
    return benchmark_dir("acasxu")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return benchmark_dir("mnistfc")


@pytest.fixture(scope="session")
def test_bench_dir() -> Path:
    return benchmark_dir("test")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(") ", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; shut down after, leaving no process behind."""
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "reluverify[distributed]")')
    before = _descendants(os.getpid())
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    started = _descendants(os.getpid()) - before
    yield ray
    ray.shutdown()
    deadline = time.monotonic() + 20
    while (_descendants(os.getpid()) & started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (_descendants(os.getpid()) & started), "Ray processes outlived ray.shutdown()"
