"""`reluverify sweep` end to end: rows, summary, plot, resume (also after SIGKILL), crashes, timeouts, bad input."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from onnx_builders import mlp, random_mlp, save
from reluverify.cli import main
from reluverify.network import file_sha256
from reluverify.sweep.plan import NetworkRef, make_plan
from reluverify.sweep.worker import CRASH_ENV, HANG_ENV, SLOW_ENV

REPO = Path(__file__).resolve().parents[1]
DELTAS = ["0.05", "0.5"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3 -> 12 -> 12 -> 3 ReLU network and 6 points: small deltas robust, large ones not."""
    folder = tmp_path_factory.mktemp("tiny")
    weights, biases = random_mlp(np.random.default_rng(7), [3, 12, 12, 3])
    network = save(mlp(weights, biases), folder / "tiny.onnx")
    points = folder / "points.npy"
    np.save(points, np.random.default_rng(1).uniform(-1, 1, size=(6, 3)))
    return network, str(points)


def sweep_args(tiny, db, *extra):
    network, points = tiny
    return ["sweep", network, "--points", points, "--delta", *DELTAS, "--jobs", "2", "--db", str(db), *extra]


def rows(db) -> list[tuple]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(
            "SELECT key, point_index, delta, verdict, attempts, reason, finished, counterexample FROM results ORDER BY id"
        ).fetchall()
    finally:
        connection.close()


def planned_keys(tiny, deltas=DELTAS) -> list[str]:
    network, points = tiny
    ref = NetworkRef(os.path.abspath(network), file_sha256(network), 3)
    return [job.key for job in make_plan([ref], np.load(points), [float(d) for d in deltas])]


def test_a_sweep_writes_one_row_per_query_prints_a_summary_draws_and_resumes(tiny, tmp_path, capsys):
    db, picture = tmp_path / "r.sqlite", tmp_path / "r.png"
    assert main(sweep_args(tiny, db, "--plot", str(picture))) == 0
    out, err = capsys.readouterr()
    assert "1 network x 6 points x 2 deltas = 12 queries; 0 already in" in err
    assert "robust" in out and "not rob" in out and "all " in out and "ran 12 queries" in out
    first = rows(db)
    assert sorted(r[0] for r in first) == sorted(planned_keys(tiny))
    verdicts = {(r[1], r[2]): r[3] for r in first}
    assert set(verdicts.values()) <= {"robust", "not robust"} and len(set(verdicts.values())) == 2
    for point in range(6):  # a larger ball never turns a violation into robustness
        assert not (verdicts[(point, 0.05)] == "not robust" and verdicts[(point, 0.5)] == "robust")
    for key, point, delta, verdict, attempts, reason, finished, cex in first:
        assert attempts == 1
        if verdict == "not robust":
            import json

            assert json.loads(cex)["distance"] <= delta + 1e-9
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same sweep again runs nothing and changes nothing
    assert main(sweep_args(tiny, db)) == 0
    out, err = capsys.readouterr()
    assert "12 already in" in err and "ran 0 queries" in out
    assert rows(db) == first
    # one more delta: only its 6 queries run
    assert main(sweep_args(tiny, db, "--delta", "0.05", "0.5", "0.2")) == 0
    assert "ran 6 queries" in capsys.readouterr().out
    assert len(rows(db)) == 18


def test_def3_with_several_epsilons_and_the_l1_norm(tiny, tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert main(sweep_args(tiny, db, "--delta", "0.05", "--epsilon", "0.05,1.0", "--norm", "1", "--quiet")) == 0
    assert capsys.readouterr().out == ""
    connection = sqlite3.connect(db)
    found = connection.execute("SELECT kind, norm, epsilon, verdict FROM results").fetchall()
    connection.close()
    assert len(found) == 12 and {f[:2] for f in found} == {("eps-local-robustness", "1")}
    assert all(v == "robust" for _, _, eps, v in found if eps == 1.0)


def test_a_crashing_worker_is_retried_once_then_an_error_row(tiny, tmp_path, capsys, monkeypatch):
    db = tmp_path / "r.sqlite"
    crashing = planned_keys(tiny)[3]
    monkeypatch.setenv(CRASH_ENV, crashing[:16])
    assert main(sweep_args(tiny, db, "--order", "plan")) == 0
    found = {r[0]: r for r in rows(db)}
    assert len(found) == 12
    row = found[crashing]
    assert row[3] == "error" and row[4] == 2 and "died (exit code 86)" in row[5]
    assert all(r[3] != "error" for key, r in found.items() if key != crashing)
    total = capsys.readouterr().out.splitlines()[-2].split()
    assert total[0] == "all" and total[1] == "12" and total[-3] == "1"  # the error column of the summary
    # --retry error runs it again (now without the crash)
    monkeypatch.delenv(CRASH_ENV)
    assert main(sweep_args(tiny, db, "--retry", "error")) == 0
    assert "1 re-run" in capsys.readouterr().out
    again = {r[0]: r for r in rows(db)}
    assert len(again) == 12 and again[crashing][3] in ("robust", "not robust") and again[crashing][4] == 1


def test_a_query_past_its_timeout_is_killed_and_the_sweep_goes_on(tiny, tmp_path, monkeypatch):
    db = tmp_path / "r.sqlite"
    stuck = planned_keys(tiny)[0]
    monkeypatch.setenv(HANG_ENV, stuck[:16])
    start = time.monotonic()
    assert main(sweep_args(tiny, db, "--timeout", "1", "--kill-grace", "0.5", "--quiet")) == 0
    assert time.monotonic() - start < 60
    found = {r[0]: r for r in rows(db)}
    assert len(found) == 12
    assert found[stuck][3] == "timeout" and "killed after" in found[stuck][5]
    assert all(r[3] in ("robust", "not robust") for key, r in found.items() if key != stuck)


def test_sigkill_of_the_main_process_loses_no_row_and_resume_duplicates_none(tiny, tmp_path):
    db = tmp_path / "r.sqlite"
    env = {**os.environ, SLOW_ENV: "0.4"}
    command = [sys.executable, "-m", "reluverify", *sweep_args(tiny, db, "--quiet")]
    main_process = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline:
        if db.exists():
            try:
                count = len(rows(db))
            except sqlite3.OperationalError:
                count = 0
        if count >= 3:
            break
        time.sleep(0.05)
    workers = _children(main_process.pid)
    main_process.send_signal(signal.SIGKILL)
    main_process.wait()
    assert 3 <= count < 12, main_process.stderr.read().decode()
    before = rows(db)
    assert len(before) >= count
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "workers outlived the killed sweep"
    # resume: the same command finishes the sweep
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after = rows(db)
    keys = [r[0] for r in after]
    assert len(keys) == len(set(keys)) == 12 and sorted(keys) == sorted(planned_keys(tiny))
    assert after[: len(before)] == before  # every row written before the kill is still there, unchanged


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(") ", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


# ------------------------------------------------------------------ bad input: one line, exit 2
def _fails(capsys, args, *needles) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reluverify: error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_malformed_points_file(tiny, tmp_path, capsys):
    network, _ = tiny
    bad = tmp_path / "bad.csv"
    bad.write_text("0.1,0.2,0.3\n0.1,oops,0.3\n")
    _fails(capsys, ["sweep", network, "--points", str(bad), "--delta", "0.1", "--db", str(tmp_path / "r.sqlite")],
           "bad.csv: line 2: 'oops' is not a number")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 5)))
    _fails(capsys, ["sweep", network, "--points", str(wrong), "--delta", "0.1", "--db", str(tmp_path / "r.sqlite")],
           "holds points of 5 values")
    assert not (tmp_path / "r.sqlite").exists()  # nothing created for a sweep that cannot start


def test_bad_options(tiny, tmp_path, capsys):
    db = str(tmp_path / "r.sqlite")
    _fails(capsys, sweep_args(tiny, db, "--jobs", "0"), "--jobs")
    _fails(capsys, sweep_args(tiny, db, "--delta", "x"), "'x' is not a number")
    _fails(capsys, sweep_args(tiny, db, "--delta", "-1"), ">= 0")
    _fails(capsys, sweep_args(tiny, db, "--address", "127.0.0.1:6379"), "--backend ray")
    _fails(capsys, sweep_args(tiny, db, "--plot", str(tmp_path / "no" / "p.png")), "does not exist")
    _fails(capsys, sweep_args(tiny, str(tmp_path / "no" / "r.sqlite")), "does not exist")
    _fails(capsys, sweep_args(tiny, db, "--timeout", "0"), "--timeout")


def test_read_only_and_locked_databases(tiny, tmp_path, capsys):
    from test_sweep_store import _make_read_only

    _fails(capsys, sweep_args(tiny, "/proc/reluverify-sweep.sqlite"), "cannot create the database")
    db = tmp_path / "r.sqlite"
    assert main(sweep_args(tiny, db, "--delta", "0.05", "--quiet")) == 0
    assert "no input domain" in capsys.readouterr().err  # the points carry no domain: a warning, read here
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        _fails(capsys, sweep_args(tiny, db, "--lock-timeout", "0.2"), "locked by another process")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    undo = _make_read_only(db)
    if undo is None:
        pytest.skip("cannot make a file read-only for root here (no chattr)")
    try:
        _fails(capsys, sweep_args(tiny, db), "the database is read-only")
    finally:
        undo()
