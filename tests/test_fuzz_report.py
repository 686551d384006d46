"""Fuzzing ``reluverify report`` on damaged SQLite files.

A sweep database is written with the real store, then damaged on the byte level (truncated,
bytes overwritten, pages zeroed, junk appended, junk write-ahead log beside it, replaced by junk)
or on the SQL level (rows whose values have the wrong type, are missing, are out of range or are
broken JSON; tables or columns missing; a database of something else). ``reluverify report``
(summary, ``--radii``, ``--rows``, ``--json``, ``--csv``, sometimes ``--plot``) must print a
report or one clean ``reluverify: error:`` line with exit status 2 (:mod:`fuzz_contract`).
"""

from __future__ import annotations

import shutil
import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from fuzz_contract import fuzz_settings, run_cli, run_main
from reluverify.sweep.store import COLUMNS, ResultStore
from test_sweep_store import row

VERDICTS = ["robust", "not robust", "tie", "unknown", "timeout", "error"]


def _write_sweep(path) -> None:
    with ResultStore(path) as store:
        for point in range(4):
            for k, delta in enumerate((0.01, 0.02, 0.05)):
                store.record(row(f"k{point}-{delta}", VERDICTS[(point + k) % len(VERDICTS)], point_index=point,
                                 delta=delta, seconds=0.1 * (point + 1)))
        store.record(row("eps", "robust", kind="eps-local-robustness", epsilon=0.5, decision=None, delta=0.01))


ODD_VALUES = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=8), st.binary(max_size=8),
                       st.sampled_from(["{", "[1, 2", "null", "{\"boxes\": \"x\"}", "[[1], 2]", "robust", "1e999"]))


@st.composite
def damaged_databases(draw, folder):
    path = folder / "sweep.sqlite"
    _write_sweep(path)
    kind = draw(st.sampled_from(["value", "value", "value", "drop", "schema", "truncate", "overwrite", "zero_page",
                                 "append", "wal", "junk", "empty", "other_table"]))
    if kind in ("value", "drop", "schema", "other_table"):
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            if kind == "value":  # a copy of the table without constraints, then odd values in it
                connection.execute("CREATE TABLE loose AS SELECT * FROM results")
                connection.execute("DROP TABLE results")
                connection.execute("ALTER TABLE loose RENAME TO results")
                for _ in range(draw(st.integers(1, 4))):
                    column = draw(st.sampled_from(COLUMNS))
                    where = draw(st.sampled_from(["", " WHERE rowid = 1", " WHERE rowid % 2 = 0"]))
                    connection.execute(f"UPDATE results SET {column} = ?{where}", (draw(ODD_VALUES),))
            elif kind == "drop":
                connection.execute("CREATE TABLE loose AS SELECT * FROM results")
                connection.execute("DROP TABLE results")
                keep = [c for c in COLUMNS if c != draw(st.sampled_from(COLUMNS))]
                connection.execute(f"CREATE TABLE results AS SELECT {', '.join(keep)} FROM loose")
            elif kind == "schema":
                connection.execute(draw(st.sampled_from(["DROP TABLE results", "DROP TABLE meta",
                                                         "DELETE FROM results", "ALTER TABLE results RENAME TO old"])))
            else:
                connection.execute("DROP TABLE results")
                connection.execute("CREATE TABLE results (x INTEGER)")
                connection.execute("INSERT INTO results VALUES (1)")
        finally:
            connection.close()
        return path
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[: draw(st.integers(0, len(data) - 1))])
    elif kind == "overwrite":
        at = draw(st.integers(0, len(data) - 1))
        junk = draw(st.binary(min_size=1, max_size=64))
        path.write_bytes(data[:at] + junk + data[at + len(junk):])
    elif kind == "zero_page":
        page = draw(st.integers(0, max(0, len(data) // 4096 - 1)))
        path.write_bytes(data[: page * 4096] + bytes(4096) + data[(page + 1) * 4096:])
    elif kind == "append":
        path.write_bytes(data + draw(st.binary(min_size=1, max_size=5000)))
    elif kind == "wal":
        (folder / "sweep.sqlite-wal").write_bytes(draw(st.binary(min_size=1, max_size=5000)))
    elif kind == "junk":
        path.write_bytes(draw(st.binary(min_size=1, max_size=5000)))
    else:
        path.write_bytes(b"")
    return path


FLAGS = st.lists(st.sampled_from(["--radii", "--rows", "--json", "--csv"]), unique=True, max_size=3)


@fuzz_settings(150)
@given(st.data(), FLAGS)
def test_report_on_damaged_databases(tmp_path_factory, data, flags):
    folder = tmp_path_factory.mktemp("db")
    path = data.draw(damaged_databases(folder))
    argv = ["report", path]
    for flag in flags:
        argv += [flag, folder / "rows.csv"] if flag == "--csv" else [flag]
    run_main(argv)


@fuzz_settings(8, deadline_s=30)
@given(st.data())
def test_report_plot_on_damaged_databases(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("plot")
    path = data.draw(damaged_databases(folder))
    run_main(["report", path, "--plot", folder / "sweep.png"])


def test_damaged_database_through_the_command_line(tmp_path):
    path = tmp_path / "sweep.sqlite"
    _write_sweep(path)
    shutil.copy(path, tmp_path / "copy.sqlite")
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\xff" * 2000 + data[2100:])
    proc = run_cli(["report", path])
    assert proc.returncode in (0, 2)
    connection = sqlite3.connect(tmp_path / "copy.sqlite")
    connection.execute("CREATE TABLE loose AS SELECT * FROM results")
    connection.execute("DROP TABLE results")
    connection.execute("ALTER TABLE loose RENAME TO results")
    connection.execute("UPDATE results SET statistics = '{broken'")
    connection.commit()
    connection.close()
    proc = run_cli(["report", tmp_path / "copy.sqlite", "--csv", tmp_path / "rows.csv"])
    assert proc.returncode == 2 and "statistics" in proc.stderr, proc.stderr
