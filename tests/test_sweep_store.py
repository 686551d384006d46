"""The SQLite results store: WAL, one row per key, clear errors for unusable paths."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import threading

import pytest

from reluverify.sweep.store import COLUMNS, ResultStore, StoreError


def row(key: str, verdict: str = "robust", **extra) -> dict:
    base = {
        "key": key, "network": "/nets/a.onnx", "network_sha256": "a" * 64, "point_index": 0, "point": [0.1, 0.2],
        "kind": "local-robustness", "delta": 0.01, "epsilon": None, "norm": "inf", "decision": "max", "domain": None,
        "verdict": verdict, "solver_verdict": "unsat", "label": 1, "seconds": 0.5, "statistics": {"boxes": 3},
        "counterexample": None, "reason": "", "attempts": 1, "backend": "local", "worker": "host:1",
        "started": "2026-01-01T00:00:00.000+00:00", "finished": "2026-01-01T00:00:01.000+00:00",
    }
    base.update(extra)
    return base


def test_rows_are_written_once_per_key_in_wal_mode(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        assert store.record(row("k1", counterexample={"inputs": [1.0, 2.0]}))
        assert store.record(row("k2", "not robust"))
        assert not store.record(row("k1", "timeout"))  # the key already has its row: nothing changes
        # another connection sees the committed rows at once (a crash now would keep them)
        other = sqlite3.connect(path)
        assert other.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        other.close()
    with ResultStore(path, readonly=True) as store:
        rows = store.rows()
        assert [r["key"] for r in rows] == ["k1", "k2"]
        assert rows[0]["verdict"] == "robust" and rows[0]["counterexample"] == {"inputs": [1.0, 2.0]}
        assert rows[0]["statistics"] == {"boxes": 3} and rows[0]["point"] == [0.1, 0.2]
        assert set(COLUMNS) <= set(rows[0])
        assert store.verdicts(["k2", "k3"]) == {"k2": "not robust"}


def test_delete_lets_a_key_be_written_again(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.record(row("k1", "error"))
        assert store.delete(["k1", "missing"]) == 1
        assert store.record(row("k1", "robust"))
        assert store.verdicts() == {"k1": "robust"}


def test_concurrent_writers_never_duplicate_rows(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultStore(path).close()

    def write(offset: int) -> None:
        with ResultStore(path) as store:
            for i in range(40):
                store.record(row(f"k{(i + offset) % 50}"))

    threads = [threading.Thread(target=write, args=(o,)) for o in (0, 10, 20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with ResultStore(path, readonly=True) as store:
        keys = [r["key"] for r in store.rows()]
    assert len(keys) == len(set(keys)) == 50


def _error(path, **options) -> str:
    with pytest.raises(StoreError) as info:
        ResultStore(path, **options)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_paths_that_cannot_hold_a_database(tmp_path):
    assert "is a directory" in _error(tmp_path)
    assert "does not exist" in _error(tmp_path / "no" / "r.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database file at all, just text" * 100)
    assert "not a SQLite database" in _error(tmp_path / "junk.sqlite")
    other = tmp_path / "other.sqlite"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    assert "not a reluverify sweep" in _error(other)
    assert "no such file" in _error(tmp_path / "missing.sqlite", readonly=True)
    # /proc accepts no new files, not even from root
    assert "cannot create the database" in _error("/proc/reluverify-test.sqlite")


def _make_read_only(path) -> callable:
    """Make ``path`` unwritable even for root (chattr +i), or by mode for other users; None if impossible."""
    if os.geteuid() != 0:
        os.chmod(path, 0o444)
        return lambda: os.chmod(path, 0o644)
    if shutil.which("chattr") is None:
        return None
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    if done.returncode != 0:
        return None
    return lambda: subprocess.run(["chattr", "-i", str(path)], capture_output=True)


def test_a_read_only_database_is_a_clear_error(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        store.record(row("k1"))
    undo = _make_read_only(path)
    if undo is None:
        pytest.skip("cannot make a file read-only for root here (no chattr)")
    try:
        assert "read-only" in _error(path)
        with ResultStore(path, readonly=True) as store:  # reading still works
            assert store.verdicts() == {"k1": "robust"}
    finally:
        undo()


def test_a_locked_database_is_a_clear_error_after_the_lock_timeout(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        message = _error(path, lock_timeout=0.2)
        assert "locked by another process" in message and "0.2 s" in message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    ResultStore(path, lock_timeout=0.2).close()  # free again
