"""The SQLite results store of a sweep: one row per finished query, written at once.

* **WAL mode** (``journal_mode=WAL``, ``synchronous=NORMAL``): a committed row survives the
  process being killed (SIGKILL included); readers (``reluverify report`` during a sweep) never
  block the writer.
* **One transaction per finished query**: a row is in the database as soon as its query is
  done, so a crash loses nothing that had finished.
* **A UNIQUE key** (:func:`reluverify.sweep.plan.job_key`): a row is inserted only if its key
  has none yet (``ON CONFLICT DO NOTHING``), so resuming, or two sweeps writing the same
  database, never duplicate rows.

The table ``results`` holds one row per finished query. Its columns: the job (network path and
sha256, point index and values, kind, delta, epsilon, norm, decision, domain), the answer
(``verdict`` in the property's words -- ``robust``, ``not robust``,
``tie``, ``unknown``, ``timeout`` -- or ``error``; the solver's verdict, the label, seconds,
statistics JSON, counterexample JSON, reason), how it ran (attempts, backend, worker, started and
finished as UTC ISO timestamps). A row's run (:mod:`reluverify.sweep.runs`: its property and
domain) follows from its kind, norm, decision and domain.

The plan is stored beside the results, so that a report can tell planned from finished: the
table ``planned`` holds the key and run of every query a sweep set out to run, ``runs`` the
property and domain of each run in words (the domain with the file it came from). Both are
created when a database written before them is next opened for writing; read-only, a database
without them has no plan (its report counts what finished).

Every problem opening the store -- a directory, a missing folder, a read-only file or folder, a
file that is not a SQLite database or not a sweep's, a database locked by another process for
longer than ``lock_timeout`` -- is a :class:`StoreError` with a one-line message.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone

from reluverify.errors import ReluverifyError

SCHEMA_VERSION = "1"

COLUMNS = (
    "key", "network", "network_sha256", "point_index", "point", "kind", "delta", "epsilon", "norm", "decision",
    "domain", "verdict", "solver_verdict", "label", "seconds", "statistics", "counterexample", "reason",
    "attempts", "backend", "worker", "started", "finished",
)
JSON_COLUMNS = ("point", "domain", "statistics", "counterexample")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    network TEXT NOT NULL,
    network_sha256 TEXT NOT NULL,
    point_index INTEGER NOT NULL,
    point TEXT NOT NULL,
    kind TEXT NOT NULL,
    delta REAL NOT NULL,
    epsilon REAL,
    norm TEXT NOT NULL,
    decision TEXT,
    domain TEXT,
    verdict TEXT NOT NULL,
    solver_verdict TEXT,
    label INTEGER,
    seconds REAL NOT NULL,
    statistics TEXT,
    counterexample TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL,
    backend TEXT,
    worker TEXT,
    started TEXT,
    finished TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_query ON results (network_sha256, delta, epsilon, point_index);
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY,
    property TEXT NOT NULL,
    domain TEXT NOT NULL,
    planned TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS planned (
    key TEXT PRIMARY KEY,
    run TEXT NOT NULL
);
"""


_TEXT, _INT, _REAL, _NULL = (str,), (int,), (int, float), (type(None),)
_EXPECTED = {
    "key": _TEXT, "network": _TEXT, "network_sha256": _TEXT, "point_index": _INT, "kind": _TEXT, "delta": _REAL,
    "epsilon": _REAL + _NULL, "norm": _TEXT, "decision": _TEXT + _NULL, "verdict": _TEXT,
    "solver_verdict": _TEXT + _NULL, "label": _INT + _NULL, "seconds": _REAL, "reason": _TEXT + _NULL,
    "attempts": _INT, "backend": _TEXT + _NULL, "worker": _TEXT + _NULL, "started": _TEXT + _NULL, "finished": _TEXT,
    "point": (list,), "domain": (list,) + _NULL, "statistics": (dict,) + _NULL, "counterexample": (dict,) + _NULL,
}
"""The Python type of every column of a row as the store writes it (JSON columns decoded)."""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_domain(value) -> bool:
    """A domain as the store writes it: None or ``[lower, upper]``, two lists of finite numbers of one length."""
    if value is None:
        return True
    return (len(value) == 2 and all(isinstance(side, list) for side in value) and len(value[0]) == len(value[1])
            and all(_is_number(v) for side in value for v in side))


def _checked_row(path: str, row: dict) -> dict:
    """``row`` with its JSON columns decoded, every value of the type the store writes; a damaged row
    (a value of another type, broken JSON, a non-finite number) is a :class:`StoreError` naming it."""
    where = f"{path}: row {row.get('id')}"
    for name in JSON_COLUMNS:
        if isinstance(row[name], str):
            try:
                row[name] = json.loads(row[name])
            except (ValueError, RecursionError):
                raise StoreError(f"{where}: the column {name} holds broken JSON (a damaged database?)") from None
    for name, types in _EXPECTED.items():
        value = row[name]
        bad = not isinstance(value, types) or isinstance(value, bool)
        if not bad and isinstance(value, float) and not math.isfinite(value):
            bad = True
        if not bad and name == "domain":
            bad = not _is_domain(value)
        if bad:
            shown = repr(value)[:40]
            raise StoreError(f"{where}: the column {name} holds {shown}, which a sweep never writes (a damaged database?)")
    return row


class StoreError(ReluverifyError):
    """The results database cannot be opened or written (one-line message naming the file)."""


def utc_iso(seconds: float | None = None) -> str:
    moment = datetime.now(timezone.utc) if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def _explain(path: str, exc: Exception, lock_timeout: float) -> StoreError:
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return StoreError(f"{path}: the database is locked by another process (waited {lock_timeout:g} s); "
                          "wait for it to finish or use another --db file")
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(f"{path}: the database is read-only (the file or its folder cannot be written); "
                          "use another --db file")
    if "not a database" in lowered or "malformed" in lowered or "file is encrypted" in lowered:
        return StoreError(f"{path}: not a SQLite database (or a damaged one)")
    if "unable to open" in lowered:
        return StoreError(f"{path}: cannot open the database (is its folder writable?)")
    if "disk i/o" in lowered or "full" in lowered:
        return StoreError(f"{path}: cannot write the database ({text})")
    return StoreError(f"{path}: {text}")


def _check_path(path: str, create: bool) -> None:
    if os.path.isdir(path):
        raise StoreError(f"{path}: is a directory, not a database file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise StoreError(f"{path}: the folder {folder} does not exist")
    if not os.path.exists(path):
        if not create:
            raise StoreError(f"{path}: no such file")
        try:  # create it ourselves: a read-only folder or file system gets a clear message
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the database: {exc.strerror}") from None


class ResultStore:
    """A sweep's results database (see the module docstring); use as a context manager."""

    def __init__(self, path: str | os.PathLike, lock_timeout: float = 10.0, readonly: bool = False) -> None:
        self.path = os.fspath(path)
        self.readonly = readonly
        self.lock_timeout = float(lock_timeout)
        _check_path(self.path, create=not readonly)
        try:
            if readonly:
                uri = "file:" + os.path.abspath(self.path) + "?mode=ro"
                self.connection = sqlite3.connect(uri, uri=True, timeout=self.lock_timeout, isolation_level=None)
            else:
                self.connection = sqlite3.connect(self.path, timeout=self.lock_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise _explain(self.path, exc, self.lock_timeout) from None
        try:
            self._prepare()
        except sqlite3.Error as exc:
            self.connection.close()
            raise _explain(self.path, exc, self.lock_timeout) from None
        except StoreError:
            self.connection.close()
            raise

    def _prepare(self) -> None:
        c = self.connection
        c.row_factory = sqlite3.Row
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "results" not in tables:
            raise StoreError(f"{self.path}: a SQLite database, but not a reluverify sweep's (no 'results' table)")
        if self.readonly:
            if "results" not in tables:
                raise StoreError(f"{self.path}: not a reluverify sweep database (no 'results' table)")
            self._check_columns()
            return
        mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch the database to WAL mode (journal mode {mode})")
        c.execute("PRAGMA synchronous=NORMAL")
        # take the write lock now: a read-only or locked database fails here, before any query runs
        c.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            c.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        self._check_columns()

    def _check_columns(self) -> None:
        have = {r[1] for r in self.connection.execute("PRAGMA table_info(results)")}
        missing = [name for name in COLUMNS if name not in have]
        if missing:
            raise StoreError(f"{self.path}: the 'results' table lacks the columns {', '.join(missing)}: "
                             "not a reluverify sweep database of this version")

    # ------------------------------------------------------------ writing
    def record(self, row: dict) -> bool:
        """Insert one finished query in its own transaction; False when its key already had a row."""
        values = []
        for name in COLUMNS:
            value = row.get(name)
            if name in JSON_COLUMNS and value is not None:
                value = json.dumps(value)
            values.append(value)
        placeholders = ", ".join("?" for _ in COLUMNS)
        sql = f"INSERT INTO results ({', '.join(COLUMNS)}) VALUES ({placeholders}) ON CONFLICT(key) DO NOTHING"
        try:
            with self._transaction():
                cursor = self.connection.execute(sql, values)
        except sqlite3.Error as exc:
            raise _explain(self.path, exc, self.lock_timeout) from None
        return cursor.rowcount == 1

    def record_plan(self, runs: dict[str, dict], planned) -> None:
        """Store a sweep's plan: ``runs`` maps each run to its ``property`` and ``domain`` in words, ``planned``
        holds ``(key, run)`` per query; what is there already is kept (one transaction)."""
        now = utc_iso()
        try:
            with self._transaction():
                self.connection.executemany(
                    "INSERT OR IGNORE INTO runs (run, property, domain, planned) VALUES (?, ?, ?, ?)",
                    [(run, info["property"], info["domain"], now) for run, info in runs.items()])
                self.connection.executemany("INSERT OR IGNORE INTO planned (key, run) VALUES (?, ?)",
                                            [(key, run) for key, run in planned])
        except sqlite3.Error as exc:
            raise _explain(self.path, exc, self.lock_timeout) from None

    def delete(self, keys) -> int:
        """Remove the rows of ``keys`` (to run them again); returns how many were removed."""
        keys = list(keys)
        removed = 0
        try:
            with self._transaction():
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    cursor = self.connection.execute(
                        f"DELETE FROM results WHERE key IN ({', '.join('?' for _ in chunk)})", chunk
                    )
                    removed += cursor.rowcount
        except sqlite3.Error as exc:
            raise _explain(self.path, exc, self.lock_timeout) from None
        return removed

    @contextmanager
    def _transaction(self):
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (waits up to ``lock_timeout`` for the write lock)."""
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    # ------------------------------------------------------------ reading
    def verdicts(self, keys=None) -> dict[str, str]:
        """``key -> verdict`` for every row (or for ``keys`` only)."""
        try:
            rows = self.connection.execute("SELECT key, verdict FROM results").fetchall()
        except sqlite3.Error as exc:
            raise _explain(self.path, exc, self.lock_timeout) from None
        found = {r[0]: r[1] for r in rows}
        if keys is None:
            return found
        return {k: found[k] for k in keys if k in found}

    def rows(self, keys=None) -> list[dict]:
        """Every row as a dict (JSON columns decoded), in insertion order; only ``keys`` if given."""
        try:
            cursor = self.connection.execute(f"SELECT id, {', '.join(COLUMNS)} FROM results ORDER BY id")
            records = cursor.fetchall()
        except sqlite3.Error as exc:
            raise _explain(self.path, exc, self.lock_timeout) from None
        wanted = None if keys is None else set(keys)
        out = []
        for record in records:
            row = dict(record)
            if wanted is not None and row["key"] not in wanted:
                continue
            out.append(_checked_row(self.path, row))
        return out

    def plan(self) -> tuple[dict[str, str], dict[str, dict]]:
        """The stored plan: ``key -> run`` of every planned query, and ``run -> {"property", "domain", "planned"}``;
        empty for a database written before plans were stored. A damaged value is a :class:`StoreError`."""
        planned: dict[str, str] = {}
        runs: dict[str, dict] = {}
        try:
            tables = {r[0] for r in self.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "planned" in tables:
                for key, run in self.connection.execute("SELECT key, run FROM planned"):
                    if not isinstance(key, str) or not isinstance(run, str):
                        raise StoreError(f"{self.path}: the table planned holds {(key, run)!r:.40}, which a sweep "
                                         "never writes (a damaged database?)")
                    planned[key] = run
            if "runs" in tables:
                for record in self.connection.execute("SELECT run, property, domain, planned FROM runs"):
                    if not all(isinstance(v, str) for v in record):
                        raise StoreError(f"{self.path}: the table runs holds {tuple(record)!r:.40}, which a sweep "
                                         "never writes (a damaged database?)")
                    runs[record[0]] = {"property": record[1], "domain": record[2], "planned": record[3]}
        except sqlite3.Error as exc:
            raise _explain(self.path, exc, self.lock_timeout) from None
        return planned, runs

    def count(self) -> int:
        return int(self.connection.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    # ------------------------------------------------------------ closing
    def close(self) -> None:
        """Close; a writer first folds the WAL into the main file (so the file alone is complete)."""
        if self.connection is None:
            return
        try:
            if not self.readonly:
                try:
                    self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    pass  # another process is using the database: its own close will fold it
        finally:
            self.connection.close()
            self.connection = None

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
