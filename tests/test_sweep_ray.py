"""The Ray backend: a local Ray instance runs a small sweep, with the same results as the local backend."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "reluverify[distributed]")')

from onnx_builders import mlp, random_mlp, save  # noqa: E402
from reluverify.network import file_sha256  # noqa: E402
from reluverify.sweep.backends import LocalBackend, RayBackend  # noqa: E402
from reluverify.sweep.plan import NetworkRef, make_plan  # noqa: E402
from reluverify.sweep.run import run_sweep  # noqa: E402
from reluverify.sweep.store import ResultStore  # noqa: E402


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray")
    weights, biases = random_mlp(np.random.default_rng(7), [3, 12, 12, 3])
    network = save(mlp(weights, biases), folder / "tiny.onnx")
    points = np.random.default_rng(1).uniform(-1, 1, size=(4, 3))
    ref = NetworkRef(network, file_sha256(network), 3)
    return folder, make_plan([ref], points, [0.05, 0.5]) + make_plan([ref], points[:2], [0.1], [0.2])


def crash_on_point_1(job, settings, data=None):
    """A worker that dies on point 1 (sent to Ray by value: the workers cannot import this test module)."""
    if job["point_index"] == 1:
        os._exit(86)
    from reluverify.sweep.worker import run_job

    return run_job(job, settings, data)


def test_a_sweep_on_ray_matches_the_local_backend(local_ray, plan, tmp_path):
    folder, jobs = plan
    verdicts = {}
    for name, backend in (("local", LocalBackend(jobs=2, timeout=30)), ("ray", RayBackend(timeout=30))):
        with ResultStore(tmp_path / f"{name}.sqlite") as store:
            run = run_sweep(jobs, store, backend, {}, progress=False)
            assert run.ran == len(jobs) == 10
            rows = store.rows()
        assert {r["backend"] for r in rows} == {name}
        verdicts[name] = {r["key"]: r["verdict"] for r in rows}
    assert verdicts["ray"] == verdicts["local"]
    assert set(verdicts["ray"].values()) == {"robust", "not robust"}
    # resuming through Ray runs nothing
    with ResultStore(tmp_path / "ray.sqlite") as store:
        assert run_sweep(jobs, store, RayBackend(timeout=30), {}, progress=False).ran == 0


def test_ray_retries_a_dead_worker_once_then_reports_an_error(local_ray, plan, tmp_path):
    folder, jobs = plan
    jobs = [j for j in jobs if j.epsilon is None and j.delta == 0.05]
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with ResultStore(tmp_path / "r.sqlite") as store:
        run_sweep(jobs, store, RayBackend(timeout=30, worker=crash_on_point_1), {}, order="plan", progress=False)
        rows = {r["point_index"]: r for r in store.rows()}
    assert len(rows) == 4
    assert rows[1]["verdict"] == "error" and rows[1]["attempts"] == 2 and "died" in rows[1]["reason"]
    assert all(rows[i]["verdict"] in ("robust", "not robust") for i in (0, 2, 3))


def hang_on_point_0(job, settings, data=None):
    """A worker stuck on point 0 (sent by value too)."""
    if job["point_index"] == 0:
        time.sleep(600)
    from reluverify.sweep.worker import run_job

    return run_job(job, settings, data)


def test_ray_kills_a_query_past_its_timeout_and_goes_on(local_ray, plan, tmp_path):
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    folder, jobs = plan
    jobs = [j for j in jobs if j.epsilon is None and j.delta == 0.05]
    start = time.monotonic()
    with ResultStore(tmp_path / "r.sqlite") as store:
        backend = RayBackend(timeout=1.0, kill_grace=0.5, worker=hang_on_point_0)
        run_sweep(jobs, store, backend, {}, order="plan", progress=False)
        rows = {r["point_index"]: r for r in store.rows()}
    assert time.monotonic() - start < 60
    assert rows[0]["verdict"] == "timeout" and "killed after" in rows[0]["reason"]
    assert all(rows[i]["verdict"] in ("robust", "not robust") for i in (1, 2, 3))
