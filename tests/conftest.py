"""Shared fixtures: where the public benchmarks live, and small network builders."""

from __future__ import annotations

import os
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
