"""The local backend: worker crash (retried once, then error), kill on timeout, exceptions, early stop."""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import pytest

from reluverify.sweep.backends import LocalBackend
from reluverify.sweep.plan import NetworkRef, make_plan
from reluverify.sweep.run import outcome_row, run_sweep
from reluverify.sweep.store import ResultStore

NET = NetworkRef("/nets/fake.onnx", "f" * 64, 2)


def jobs(count: int):
    return make_plan([NET], np.arange(2.0 * count).reshape(count, 2), [0.1])


def fake_answer(job: dict) -> dict:
    return {"verdict": "robust", "solver_verdict": "unsat", "label": 0, "seconds": 0.0, "statistics": {},
            "counterexample": None, "reason": "", "worker": f"test:{os.getpid()}"}


def crash_on_point_1(job, settings, data=None):
    if job["point_index"] == 1:
        os._exit(86)
    return fake_answer(job)


def killed_on_point_1(job, settings, data=None):
    if job["point_index"] == 1:
        os.kill(os.getpid(), 9)  # as a user's kill -9 or the OOM killer would
    return fake_answer(job)


def crash_first_attempt(job, settings, data=None):
    marker = os.path.join(settings["folder"], f"tried-{job['point_index']}")
    if job["point_index"] == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(86)
    return fake_answer(job)


def hang_on_point_0(job, settings, data=None):
    if job["point_index"] == 0:
        with open(os.path.join(settings["folder"], "hung.pid"), "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(600)
    return fake_answer(job)


def raise_on_point_2(job, settings, data=None):
    if job["point_index"] == 2:
        raise ValueError("a point the property rejects\nsecond line")
    return fake_answer(job)


def run(worker, count, tmp_path, **backend_options):
    backend = LocalBackend(jobs=2, worker=worker, **backend_options)
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_sweep(jobs(count), store, backend, {"folder": str(tmp_path)}, order="plan", progress=False)
        rows = {r["point_index"]: r for r in store.rows()}
    return summary, rows


@pytest.mark.parametrize("worker, code", [(crash_on_point_1, "86"), (killed_on_point_1, "-9")])
def test_a_crashing_worker_is_retried_once_then_reported_as_error(tmp_path, worker, code):
    summary, rows = run(worker, 4, tmp_path)
    assert summary.ran == 4 and len(rows) == 4
    assert rows[1]["verdict"] == "error" and rows[1]["attempts"] == 2
    assert f"died (exit code {code})" in rows[1]["reason"] and "2 attempts" in rows[1]["reason"]
    assert all(rows[i]["verdict"] == "robust" and rows[i]["attempts"] == 1 for i in (0, 2, 3))


def test_a_worker_that_dies_once_succeeds_on_the_retry(tmp_path):
    summary, rows = run(crash_first_attempt, 3, tmp_path)
    assert rows[0]["verdict"] == "robust" and rows[0]["attempts"] == 2
    assert rows[1]["attempts"] == rows[2]["attempts"] == 1


def test_a_query_past_its_timeout_is_killed_and_the_sweep_goes_on(tmp_path):
    start = time.monotonic()
    summary, rows = run(hang_on_point_0, 4, tmp_path, timeout=0.5, kill_grace=0.5)
    assert time.monotonic() - start < 30  # not the 600 s the worker would sleep
    assert rows[0]["verdict"] == "timeout" and "killed after" in rows[0]["reason"]
    assert 1.0 <= rows[0]["seconds"] < 5
    assert [rows[i]["verdict"] for i in (1, 2, 3)] == ["robust"] * 3
    pid = int((tmp_path / "hung.pid").read_text())
    assert not _alive(pid)


def test_an_exception_in_the_worker_is_an_error_row_with_one_line(tmp_path):
    summary, rows = run(raise_on_point_2, 3, tmp_path)
    assert rows[2]["verdict"] == "error" and rows[2]["attempts"] == 1
    assert rows[2]["reason"] == "ValueError: a point the property rejects"


def test_outcome_rows_carry_the_job_and_the_answer():
    from reluverify.sweep.backends import JobOutcome

    job = jobs(1)[0]
    out = JobOutcome(job, "ok", fake_answer(job.to_dict()), 1.5, "", 1, 1000.0, 1001.5, "local", "h:1")
    r = outcome_row(out)
    assert r["key"] == job.key and r["verdict"] == "robust" and r["seconds"] == 1.5
    assert r["started"].startswith("1970-01-01T00:16:40") and r["finished"].endswith("+00:00")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ------------------------------------------------------------------ early stop of one property
def test_the_first_violation_stops_the_other_disjuncts_within_a_second(tmp_path, monkeypatch):
    """run_queries (disjuncts in parallel): the sat disjunct ends the property, the others are killed at once."""
    from reluverify.network import ReluChain
    from reluverify.properties import runner
    from reluverify.query import box_query
    from reluverify.solver.options import SolverOptions
    from reluverify.solver.result import SAT, Counterexample, Result

    chain = ReluChain((np.eye(2), np.eye(2)), (np.zeros(2), np.zeros(2)))
    row = np.array([1.0, 0.0])
    query = box_query(chain.to_network(), [0.0, 0.0], [1.0, 1.0], [[(row, 5.0)], [(row, 6.0)], [(row, 7.0)]])

    def fake_solve(q, options, *rest):
        rhs = float(q.disjuncts[0].constraints.rhs[0])
        if rhs != 5.0:  # the slow disjuncts: would run for a minute
            with open(tmp_path / f"slow-{os.getpid()}", "w"):
                pass
            time.sleep(60)
        time.sleep(0.5)
        cex = Counterexample(np.zeros(2), np.zeros(2), np.zeros(2), 0, 0.0, 1e-6)
        (tmp_path / "found").write_text(repr(time.time()))
        return Result(SAT, counterexample=cex)

    monkeypatch.setattr(runner, "_solve", fake_solve)
    start = time.monotonic()
    outcome = runner.run_queries([query], SolverOptions(timeout=120).with_jobs(3), split_disjuncts=True)
    returned = time.time()
    assert outcome.verdict == SAT and outcome.counterexample.disjunct == 0
    assert time.monotonic() - start < 10
    assert returned - float((tmp_path / "found").read_text()) < 1.0
    slow = [int(p.name.split("-")[1]) for p in tmp_path.glob("slow-*")]
    assert len(slow) == 2 and not any(_alive(pid) for pid in slow)
    assert multiprocessing.active_children() == []


def test_workers_die_with_their_parent(tmp_path):
    """A worker started by the local backend is killed when the main process dies (SIGKILL included)."""
    import signal
    import subprocess
    import sys

    script = f"""
import os, sys, time
import numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
from test_sweep_backends import jobs
from reluverify.sweep.backends import LocalBackend

def sleeper(job, settings, data=None):
    open(os.path.join({str(tmp_path)!r}, f"worker-{{os.getpid()}}"), "w").close()
    time.sleep(600)

for _ in LocalBackend(jobs=2, worker=sleeper).run(jobs(3), {{}}):
    pass
"""
    main = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("worker-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
    assert len(workers) == 2
    main.send_signal(signal.SIGKILL)
    main.wait()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
