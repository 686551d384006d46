"""Sweeps that do not mix runs: rows name their property and domain, `report` keeps runs apart and
counts planned against finished, an interrupted sweep says how to resume, the plot keeps its title
clear of its legend."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from reluverify.cli import main
from reluverify.sweep.backends import BackendError, LocalBackend
from reluverify.sweep.plan import NetworkRef, make_plan
from reluverify.sweep.store import ResultStore
from reluverify.sweep.worker import SLOW_ENV
from test_sweep_cli import REPO, rows, sweep_args, tiny  # noqa: F401 - tiny is a fixture
from test_sweep_store import row


@pytest.fixture
def domains(tmp_path):
    """Two domain files that both hold the tiny fixture's points (drawn in [-1, 1])."""
    narrow, wide = tmp_path / "narrow.json", tmp_path / "wide.json"
    narrow.write_text(json.dumps({"lower": -1.0, "upper": 1.0}))
    wide.write_text(json.dumps({"lower": [-2.0, -3.0, -2.0], "upper": [2.0, 2.0, 5.0]}))
    return str(narrow), str(wide)


def _report(capsys, db, *extra) -> str:
    assert main(["report", str(db), *extra]) == 0
    return capsys.readouterr().out


def _totals(out: str) -> list[int]:
    return [int(line.split()[1]) for line in out.splitlines() if line.startswith("all ")]


# ------------------------------------------------------------------ naming a run
def test_a_job_and_its_row_belong_to_the_same_run_named_in_words():
    from reluverify.sweep.runs import domain_text, property_kind, property_text, run_of

    ref = NetworkRef("/nets/a.onnx", "a" * 64, 2)
    points = np.array([[0.1, 0.2]])
    local = make_plan([ref], points, [0.1], domain=([0.0, 0.0], [1.0, 1.0]))[0]
    other = make_plan([ref], points, [0.1], domain=([0.0, 0.0], [1.0, 2.0]))[0]
    bare = make_plan([ref], points, [0.1])[0]
    eps = make_plan([ref], points, [0.1], [0.5], domain=([0.0, 0.0], [1.0, 1.0]))[0]
    assert len({local.run, other.run, bare.run, eps.run}) == 4
    assert run_of(json.loads(json.dumps(local.to_dict()))) == local.run  # a stored row names the same run
    assert local.key != other.key  # and the keys differ, so neither run skips the other's rows
    assert domain_text(local.domain) == "[0, 1]^2"
    assert domain_text(other.domain, "dom.json") == "box of 2 inputs within [0, 2] from dom.json"
    assert domain_text(None) == "none"
    assert property_text("local-robustness", "inf", "min") == \
        "Def. 1 delta-local robustness, L-inf, label = lowest score"
    assert property_kind("Def. 3") == property_kind("eps-local") == "eps-local-robustness"
    assert property_kind("def.1") == "local-robustness" and property_kind("Def. 2") is None


# ------------------------------------------------------------------ two runs, one database
def test_runs_on_different_domains_keep_their_rows_apart_in_the_database_the_report_and_the_plot(
        tiny, domains, tmp_path, capsys):
    db, picture = tmp_path / "r.sqlite", tmp_path / "r.png"
    narrow, wide = domains
    assert main(sweep_args(tiny, db, "--domain", narrow, "--quiet")) == 0
    assert main(sweep_args(tiny, db, "--domain", wide)) == 0
    out = capsys.readouterr().out
    assert "ran 12 queries" in out and "domain box of 3 inputs within [-3, 5] from" in out
    assert len(rows(db)) == 24  # neither run overwrote or skipped the other's rows
    assert main(sweep_args(tiny, db, "--domain", narrow)) == 0  # the same command again: nothing to run
    assert "ran 0 queries" in capsys.readouterr().out and len(rows(db)) == 24
    out = _report(capsys, db, "--radii")
    assert "2 runs (different properties or domains)" in out.splitlines()[0]
    assert out.count("run ") >= 2 and "domain [-1, 1]^3 from" in out and "narrow.json" in out
    assert _totals(out) == [12, 12]  # never one total of 24
    assert "12 done" in out and " of 12 done" not in out
    # the filters keep one run
    only = _report(capsys, db, "--domain", "[-1, 1]^3")
    assert _totals(only) == [12] and "[-1, 1]^3" in only and "within [-3, 5]" not in only
    assert _totals(_report(capsys, db, "--domain", "wide.json")) == [12]
    heading = next(line for line in only.splitlines() if line.startswith("run "))
    run = heading.split()[1].rstrip(":")
    assert _totals(_report(capsys, db, "--run", run[:5], "--property", "Def.1")) == [12]
    payload = json.loads(_report(capsys, db, "--json", "--rows"))
    assert [r["done"] for r in payload["runs"]] == [12, 12] and len({r["domain_id"] for r in payload["runs"]}) == 2
    assert len({r["run"] for r in payload["rows"]}) == 2
    for args, needle in ((["--property", "Def.3"], "names none of the 2 run(s)"),
                         (["--domain", "[0, 9]^3"], "run " + run[:8]),
                         (["--property", "Def. 2"], "--property 'Def. 2'")):
        assert main(["report", str(db), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("reluverify: error: ") and needle in err and "\n" not in err
    # the CSV names each row's run and domain; the plot draws one row of panels per run
    assert main(["report", str(db), "--csv", str(tmp_path / "r.csv"), "--plot", str(picture)]) == 0
    with open(tmp_path / "r.csv") as handle:
        import csv

        lines = list(csv.DictReader(handle))
    assert {line["domain"] for line in lines} == {"[-1, 1]^3", "box of 3 inputs within [-3, 5]"}
    assert len({line["run"] for line in lines}) == 2


def test_the_plot_never_draws_two_runs_into_one_panel(tmp_path, monkeypatch):
    figures = _capture_figures(monkeypatch)
    from reluverify.sweep.plot import plot_sweep

    mixed = [row(f"a{p}", "robust", point_index=p) for p in range(3)]
    mixed += [row(f"b{p}", "not robust", point_index=p, domain=[[0.0, 0.0], [1.0, 1.0]]) for p in range(3)]
    plot_sweep(mixed, tmp_path / "p.png")
    titles = [title for title, _ in figures[-1]["axes"]]
    assert len(titles) == 2 and any("domain none" in t for t in titles) and any("domain [0, 1]^2" in t for t in titles)


# ------------------------------------------------------------------ planned against finished, interrupts
class _Interrupted(LocalBackend):
    """Runs the first ``after`` jobs, then stops as Ctrl-C (or ``error``) would."""

    def __init__(self, after: int, error: BaseException, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.after, self.error = after, error

    def run(self, jobs, settings):
        for count, outcome in enumerate(super().run(jobs, settings)):
            if count == self.after:
                raise self.error
            yield outcome


def test_ctrl_c_says_how_many_rows_are_saved_and_the_report_counts_planned_against_finished(
        tiny, tmp_path, capsys, monkeypatch):
    db = tmp_path / "r.sqlite"
    monkeypatch.setattr("reluverify.sweep.backends.LocalBackend",
                        lambda *a, **k: _Interrupted(3, KeyboardInterrupt(), *a, **k))
    assert main(sweep_args(tiny, db, "--quiet")) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"reluverify: interrupted: 3 rows saved in {db} (9 of the sweep's 12 queries still to run); "
                   "rerun the same command to resume"]
    out = _report(capsys, db)
    assert "3 of 12 done" in out and _totals(out) == [3]
    assert json.loads(_report(capsys, db, "--json"))["runs"][0]["planned"] == 12
    monkeypatch.undo()
    assert main(sweep_args(tiny, db)) == 0
    assert "ran 9 queries" in capsys.readouterr().out
    out = _report(capsys, db)
    assert "12 done" in out and " of 12" not in out


def test_an_error_in_the_pool_says_how_to_resume_in_its_one_line(tiny, tmp_path, capsys, monkeypatch):
    db = tmp_path / "r.sqlite"
    monkeypatch.setattr("reluverify.sweep.backends.LocalBackend",
                        lambda *a, **k: _Interrupted(2, BackendError("the cluster went away"), *a, **k))
    assert main(sweep_args(tiny, db, "--quiet")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reluverify: error: the cluster went away; the sweep stopped: 2 rows saved in ")
    assert err.endswith("rerun the same command to resume") and "\n" not in err


def test_ctrl_c_in_a_terminal_stops_the_sweep_and_the_same_command_resumes(tiny, tmp_path):
    db = tmp_path / "r.sqlite"
    command = [sys.executable, "-m", "reluverify", *sweep_args(tiny, db, "--quiet")]
    sweep = subprocess.Popen(command, env={**os.environ, SLOW_ENV: "0.4"}, cwd=REPO, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    deadline, count = time.monotonic() + 60, 0
    while time.monotonic() < deadline and count < 2:
        try:
            count = len(rows(db)) if db.exists() else 0
        except sqlite3.OperationalError:
            count = 0
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGINT)  # as Ctrl-C does: the sweep and its workers
    err = sweep.communicate(timeout=60)[1]
    assert sweep.returncode == 130, err
    saved = len(rows(db))
    assert 2 <= saved < 12
    assert err.strip().splitlines()[-1] == (f"reluverify: interrupted: {saved} rows saved in {db} ({12 - saved} of the "
                                            "sweep's 12 queries still to run); rerun the same command to resume")
    assert all(r[3] in ("robust", "not robust") for r in rows(db))  # no row for the interrupted queries
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and len(rows(db)) == 12


# ------------------------------------------------------------------ databases written before plans were stored
def test_a_database_without_plan_tables_is_read_and_migrated(tiny, tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert main(sweep_args(tiny, db, "--quiet")) == 0
    connection = sqlite3.connect(db)
    connection.execute("DROP TABLE planned")
    connection.execute("DROP TABLE runs")
    connection.commit()
    connection.close()
    out = _report(capsys, db)
    assert "domain none; 12 done" in out and _totals(out) == [12]
    assert main(sweep_args(tiny, db, "--delta", "0.05", "0.5", "0.2", "--quiet")) == 0  # a writer adds the tables
    out = _report(capsys, db)
    assert "18 done" in out and _totals(out) == [18]
    with ResultStore(db, readonly=True) as store:
        planned, described = store.plan()
    assert len(planned) == 18 and len(described) == 1


def test_damaged_plan_tables_are_one_line_errors(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    with ResultStore(db) as store:
        store.record(row("k1"))
    connection = sqlite3.connect(db)
    connection.execute("DROP TABLE planned")
    connection.execute("CREATE TABLE planned (key, run)")
    connection.execute("INSERT INTO planned VALUES (1, x'00')")
    connection.commit()
    connection.close()
    assert main(["report", str(db)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reluverify: error: ") and "table planned" in err and "\n" not in err


# ------------------------------------------------------------------ the picture's layout
def _capture_figures(monkeypatch) -> list[dict]:
    """Patch ``Figure.savefig`` to record, per saved figure, the extents of its title, legend and panels."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    found: list[dict] = []
    save = Figure.savefig

    def recording(self, *args, **kwargs):
        out = save(self, *args, **kwargs)
        renderer = self.canvas.get_renderer()
        found.append({
            "title": self._suptitle.get_window_extent(renderer) if self._suptitle is not None else None,
            "legends": [legend.get_window_extent(renderer) for legend in self.legends],
            "axes": [(ax.get_title(), ax.get_tightbbox(renderer)) for ax in self.axes],
            "size": self.bbox,
        })
        return out

    monkeypatch.setattr(Figure, "savefig", recording)
    return found


@pytest.mark.parametrize("deltas", [(0.01,), (0.01, 0.02, 0.04)])
def test_the_title_the_legend_and_the_panels_of_the_plot_do_not_overlap(tmp_path, monkeypatch, deltas):
    figures = _capture_figures(monkeypatch)
    from reluverify.sweep.plot import plot_sweep

    verdicts = ("robust", "not robust", "timeout")
    sweep = [row(f"k{p}-{d}", verdicts[(p + k) % 3], point_index=p, delta=d) for p in range(4)
             for k, d in enumerate(deltas)]
    plot_sweep(sweep, tmp_path / "p.png", title="sweep.sqlite")
    drawn = figures[-1]
    title, (legend,), size = drawn["title"], drawn["legends"], drawn["size"]
    assert not title.overlaps(legend)
    for _, panel in drawn["axes"]:
        assert not panel.overlaps(legend) and not panel.overlaps(title)
    for box in (title, legend):  # nothing cut off at the picture's edges
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= size.x1 and box.y1 <= size.y1
