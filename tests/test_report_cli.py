"""`reluverify report`: summary, certified radii, rows, JSON, CSV, picture, bad databases."""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from reluverify.cli import main
from reluverify.sweep.report import certified_radii, summary_rows
from reluverify.sweep.store import ResultStore
from test_sweep_store import row

# point -> verdict per delta (0.01, 0.02, 0.04)
VERDICTS = {
    0: ("robust", "robust", "robust"),
    1: ("robust", "not robust", "not robust"),
    2: ("not robust", "not robust", "not robust"),
    3: ("robust", "timeout", "not robust"),
    4: ("error", "robust", "robust"),
}


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "sweep.sqlite"
    with ResultStore(path) as store:
        for point, verdicts in VERDICTS.items():
            for delta, verdict in zip((0.01, 0.02, 0.04), verdicts):
                store.record(row(f"k{point}-{delta}", verdict, point_index=point, delta=delta,
                                 seconds=0.1 * (point + 1), reason="it died" if verdict == "error" else ""))
        store.record(row("eps", "robust", kind="eps-local-robustness", epsilon=0.5, decision=None, delta=0.01))
    return path


def test_summary_counts_verdicts_per_delta():
    table = summary_rows([row("a", "robust"), row("b", "not robust"), row("c", "robust", delta=0.02)])
    assert [(r["network"], r["delta"], r["queries"], r["robust"], r["not robust"]) for r in table] == [
        ("a.onnx", 0.01, 2, 1, 1), ("a.onnx", 0.02, 1, 1, 0), ("all", None, 3, 2, 1)]


def test_certified_radius_is_the_largest_delta_with_every_smaller_one_robust(db):
    with ResultStore(db, readonly=True) as store:
        radii = {(r["kind"], r["point_index"]): r for r in certified_radii(store.rows())}
    local = {p: (radii[("local-robustness", p)]["certified"], radii[("local-robustness", p)]["refuted"]) for p in VERDICTS}
    assert local == {0: (0.04, None), 1: (0.01, 0.02), 2: (None, 0.01), 3: (0.01, 0.04), 4: (None, None)}
    assert radii[("eps-local-robustness", 0)]["certified"] == 0.01


def test_report_prints_the_summary_radii_and_rows(db, capsys):
    assert main(["report", str(db), "--radii", "--rows"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "2 runs (different properties or domains)" in lines[0]  # Def. 1 and Def. 3 are never summed together
    header = next(line for line in lines if line.startswith("network"))
    assert header.split()[:7] == ["network", "prop", "norm", "domain", "delta", "eps", "queries"]
    totals = [line.split()[1:8] for line in lines if line.startswith("all")]
    assert totals == [["15", "7", "6", "0", "0", "1", "1"], ["1", "1", "0", "0", "0", "0", "0"]]
    assert "certified" in out and "refuted" in out
    assert "it died" in out and out.count("point ") >= 16


def test_report_json_csv_and_plot(db, tmp_path, capsys):
    assert main(["report", str(db), "--json", "--rows", "--csv", str(tmp_path / "r.csv"),
                 "--plot", str(tmp_path / "r.png")]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["queries"] == 16 and len(payload["rows"]) == 16 and payload["summary"][-1]["network"] == "all"
    assert {r["point_index"] for r in payload["radii"]} == set(VERDICTS)
    with open(tmp_path / "r.csv") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == 16 and lines[0]["verdict"] == "robust" and lines[0]["boxes"] == "3"
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_report_reads_while_a_sweep_holds_the_write_lock(db, capsys):
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO results (key, network, network_sha256, point_index, point, kind, delta, norm, verdict, "
                   "seconds, attempts, finished) VALUES ('new', 'n', 's', 9, '[]', 'local-robustness', 0.1, 'inf', "
                   "'robust', 1.0, 1, 'now')")
    try:
        assert main(["report", str(db), "--lock-timeout", "0.5"]) == 0
        out = capsys.readouterr().out
        assert "2 runs" in out and "15 done" in out  # the uncommitted row (a third run) is not seen
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_an_empty_sweep_database(tmp_path, capsys):
    ResultStore(tmp_path / "empty.sqlite").close()
    assert main(["report", str(tmp_path / "empty.sqlite"), "--plot", str(tmp_path / "e.png")]) == 0
    assert "no results yet" in capsys.readouterr().out
    assert (tmp_path / "e.png").exists()


def test_report_errors_are_one_line(tmp_path, capsys):
    other = tmp_path / "other.sqlite"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    (tmp_path / "text.sqlite").write_text("hello " * 200)
    for path, needle in ((tmp_path / "missing.sqlite", "no such file"), (tmp_path, "is a directory"),
                         (other, "not a reluverify sweep"), (tmp_path / "text.sqlite", "not a SQLite database")):
        assert main(["report", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("reluverify: error: ") and needle in err and "\n" not in err
    assert not (tmp_path / "missing.sqlite").exists()  # reading never creates a database
    db = tmp_path / "ok.sqlite"
    ResultStore(db).close()
    assert main(["report", str(db), "--plot", str(tmp_path / "no" / "p.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
