"""Checkpoints (reluverify.solver.checkpoint, ``--checkpoint``): a search stopped half way saves its open
work, and a rerun resumes from exactly what was saved and reaches the verdict of an uninterrupted run; a
shared search (``jobs=2``) saves consistent snapshots; a checkpoint of another query changes nothing; a
damaged file is one error line; a run killed with SIGKILL resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from random_queries import chain_to_onnx, interval_bounds, random_chain
from reluverify.errors import ReluverifyError, SpecError
from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.solver import SolverOptions, solve
from reluverify.solver import checkpoint
from reluverify.solver.input_split import search as input_split
from reluverify.solver.options import CheckpointOptions
from reluverify.solver.relu_bab import search as relu_bab
from reluverify.vnnlib_export import write_vnnlib

ROOT = Path(__file__).resolve().parents[1]


def threshold_query(seed: int, sizes, position: float) -> Query:
    """``c @ y >= t`` on the box [-1, 1]^n of a random chain, with ``t`` at ``position`` between the largest
    value of 20,000 samples (0) and the interval bound (1): just above the samples, proving it (or finding
    the rare points beyond them) takes branching."""
    rng = np.random.default_rng(seed)
    chain = random_chain(rng, sizes)
    n, m = chain.input_size, chain.output_size
    lower, upper = -np.ones(n), np.ones(n)
    c = rng.normal(size=m)
    best = float((chain.evaluate(rng.uniform(lower, upper, size=(20000, n))) @ c).max())
    _, high = interval_bounds(chain, lower, upper, c)
    rows = np.zeros((1, n + m))
    rows[0, n:] = -c
    disjunct = Disjunct(lower, upper, LinearConstraints(rows, np.array([-(best + position * (float(high[0]) - best))])),
                        "c y >= t")
    return Query((chain.to_network(),), lower, upper, (disjunct,), LinearConstraints(np.zeros((0, n)), np.zeros(0)),
                 description="threshold")


# (strategy, network sizes, seed, position, node budget, uninterrupted verdict)
CASES = {
    "relu-bab unsat": ("relu-bab", [6, 32, 32, 3], 1, 0.1, 300, "unsat"),  # 1,209 sub-problems
    "relu-bab sat": ("relu-bab", [6, 32, 32, 3], 1, 0.0, 10, "sat"),  # 31 sub-problems
    "input-split unsat": ("input-split", [5, 40, 40, 3], 1, 0.01, 500, "unsat"),  # 1,317 boxes
    "input-split sat": ("input-split", [5, 40, 40, 3], 0, 0.003, 300, "sat"),  # 781 boxes
}


def _options(strategy: str, jobs: int = 1, **fields) -> SolverOptions:
    return replace(SolverOptions(timeout=60, strategy=strategy, falsify=False), **fields).with_jobs(jobs)


def _work_items(result) -> int:
    return result.statistics.subproblems + result.statistics.boxes


def _entry(path) -> checkpoint.Entry:
    entries = checkpoint.read(str(path))
    assert len(entries) == 1
    return next(iter(entries.values()))


def _weight(entry: checkpoint.Entry) -> float:
    """The share of the tree the entry's open items hold (an item ``d`` splits deep weighs ``2^-d``)."""
    return float(np.sum(0.5 ** entry.arrays["depth"].astype(float))) if entry.arrays else 0.0


def record_saves(monkeypatch) -> list[float]:
    """From now on, every save of a ReLU branch-and-bound checkpoint appends to the returned list its
    refuted share plus its open sub-problems' weight (the whole tree, 1, for a consistent save)."""
    shares = []
    save = checkpoint.SearchCheckpoint.save

    def checked(self, arrays, proven, undecided, done):
        shares.append(proven + (float(np.sum(0.5 ** arrays["depth"].astype(float))) if arrays else 0.0))
        return save(self, arrays, proven, undecided, done)

    monkeypatch.setattr(checkpoint.SearchCheckpoint, "save", checked)
    return shares


@pytest.fixture
def starts(monkeypatch):
    """(proven, open items) of every search as it starts its work: what it resumed from."""
    seen = []
    for search in (relu_bab._Search, input_split.BoxSearch):
        def work(self, seconds, original=search.work):
            if not getattr(self, "seen", False):
                self.seen = True
                seen.append((self.proven, self.open_count()))
            return original(self, seconds)

        monkeypatch.setattr(search, "work", work)
    return seen


@pytest.mark.parametrize("case", list(CASES))
def test_a_search_resumes_from_exactly_what_it_saved(case, tmp_path, starts, capsys):
    strategy, sizes, seed, position, budget, expected = CASES[case]
    query = threshold_query(seed, sizes, position)
    path = tmp_path / "run.ckpt.npz"
    full = solve(query, _options(strategy))
    assert full.verdict == expected
    stopped = solve(query, _options(strategy, node_budget=budget).with_checkpoint(path))
    assert stopped.verdict == "unknown" and "node budget" in stopped.reason
    saved = _entry(path)
    assert saved.status == "open" and saved.strategy == strategy and 0 < saved.open
    assert 0.0 <= saved.proven < 1.0 and abs(saved.proven + _weight(saved) - 1.0) < 1e-12  # a consistent pair
    assert saved.done == _work_items(stopped)
    starts.clear()
    resumed = solve(query, _options(strategy).with_checkpoint(path))
    assert starts[0] == (saved.proven, saved.open)  # exactly the saved refuted share and pool
    whole, unit = ("the search tree", "sub-problems") if strategy == "relu-bab" else ("the input box", "boxes")
    assert f"resuming from {path}: {100 * saved.proven:.1f}% of {whole} refuted, {saved.open:,} {unit} open" \
        in capsys.readouterr().err
    assert resumed.verdict == full.verdict
    assert _work_items(resumed) < _work_items(full)  # it went on, it did not start over
    if expected == "sat":
        assert resumed.counterexample is not None and resumed.counterexample.reference == "onnxruntime"
    else:  # a finished search is answered at once
        assert _entry(path).status == "unsat"
        again = solve(query, _options(strategy).with_checkpoint(path))
        assert again.verdict == "unsat" and _work_items(again) == 0


@pytest.mark.parametrize("strategy, sizes, seed, position", [("relu-bab", [6, 32, 32, 3], 1, 0.1),
                                                             ("input-split", [5, 40, 40, 3], 1, 0.01)])
def test_a_shared_search_saves_consistent_snapshots_and_resumes_on_two_processes(strategy, sizes, seed, position,
                                                                                 tmp_path, monkeypatch):
    """Two workers, a snapshot every 50 ms and one at the end: each snapshot's pool plus its refuted share
    is the whole tree; the run resumed on two processes again proves the query."""
    query = threshold_query(seed, sizes, position)
    path = tmp_path / "shared.npz"
    shares = record_saves(monkeypatch)
    budget = 300  # per worker
    stopped = solve(query, _options(strategy, jobs=2, node_budget=budget).with_checkpoint(path, every=0.05))
    assert stopped.verdict == "unknown"
    # how far the budget takes the search before it is shared depends on the batch sizes (timed): it may
    # end in the parent, which then saves once, as a search in one process does
    assert shares and all(abs(share - 1.0) < 1e-12 for share in shares)
    saved = _entry(path)
    assert saved.status == "open" and 0 < saved.proven < 1
    resumed = solve(query, _options(strategy, jobs=2).with_checkpoint(path, every=0.05))
    assert resumed.verdict == "unsat" and _entry(path).status == "unsat"


def test_a_shared_search_saves_its_last_snapshot_at_the_timeout(tmp_path):
    query = threshold_query(3, [6, 32, 32, 3], 0.05)  # about 2 s of branching
    path = tmp_path / "timeout.npz"
    started = time.monotonic()
    stopped = solve(query, replace(_options("relu-bab", jobs=2), timeout=1.0).with_checkpoint(path, every=60))
    assert stopped.verdict == "timeout" and time.monotonic() - started < 10
    saved = _entry(path)  # no periodic save was due: this is the one taken at the timeout
    assert saved.status == "open" and abs(saved.proven + _weight(saved) - 1.0) < 1e-12
    assert solve(query, _options("relu-bab", jobs=2).with_checkpoint(path)).verdict == "unsat"


def test_a_checkpoint_of_another_query_is_not_used(tmp_path, capsys):
    """Query A's finished search (unsat) sits in the file; query B, the same network and row with a lower
    right-hand side, is sat: the file never changes B's answer, and keeps both entries."""
    path = tmp_path / "shared_file.npz"
    a, b = threshold_query(1, [6, 32, 32, 3], 0.1), threshold_query(1, [6, 32, 32, 3], 0.0)
    assert solve(a, _options("relu-bab").with_checkpoint(path)).verdict == "unsat"
    capsys.readouterr()
    result = solve(b, _options("relu-bab").with_checkpoint(path, every=1e-3))  # a save after each round
    assert result.verdict == "sat" and "resuming" not in capsys.readouterr().err
    entries = checkpoint.read(str(path))
    assert len(entries) == 2 and sorted(e.status for e in entries.values()) == ["open", "unsat"]
    # other tolerances are another search too
    looser = replace(SolverOptions().tolerances, prune_margin=1e-6)
    assert solve(a, _options("relu-bab", tolerances=looser).with_checkpoint(path)).verdict == "unsat"
    assert "resuming" not in capsys.readouterr().err


def test_saved_boxes_resume_under_options_that_keep_other_hints(tmp_path, starts):
    """A box's kept bounds and ascent parameters depend on the options (here: no ascent, so no parameters
    kept); resumed under other options they are dropped and the box is bounded afresh."""
    strategy, sizes, seed, position, budget, expected = CASES["input-split unsat"]
    query = threshold_query(seed, sizes, position)
    path = tmp_path / "hints.npz"
    solve(query, _options(strategy, node_budget=budget).with_checkpoint(path))
    saved = _entry(path)
    assert saved.arrays["params"].shape[2] > 0
    no_ascent = replace(SolverOptions().input_split, alpha_iterations=0)
    starts.clear()
    resumed = solve(query, _options(strategy, input_split=no_ascent).with_checkpoint(path))
    assert starts[0] == (saved.proven, saved.open) and resumed.verdict == expected


def test_a_save_that_fails_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "kept.npz"
    first = checkpoint.Entry("open", "relu-bab", 0.25, {"depth": np.array([1, 2, 2])}, 3)
    checkpoint.write(str(path), "a" * 64, first)
    before = path.read_bytes()

    def full_disk(handle, **arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(ReluverifyError, match="cannot write the checkpoint: No space left"):
        checkpoint.write(str(path), "a" * 64, checkpoint.Entry("unsat", "relu-bab", 1.0))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["kept.npz"]
    entry = checkpoint.read(str(path))["a" * 64]
    assert entry.proven == 0.25 and entry.arrays["depth"].tolist() == [1, 2, 2]


def test_options_and_files_that_are_refused(tmp_path):
    for every in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="checkpoint every"):
            CheckpointOptions("x.npz", every)
    with pytest.raises(ValueError, match="proof"):
        SolverOptions(proof=True).with_checkpoint(tmp_path / "x.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    (tmp_path / "text.npz").write_text("not a checkpoint\n")
    for name, why in (("other.npz", "no manifest"), ("text.npz", "not an .npz archive")):
        with pytest.raises(SpecError, match=why):
            checkpoint.check(str(tmp_path / name))
    checkpoint.check(str(tmp_path / "absent.npz"))  # a new checkpoint


def _files(tmp_path, seed: int, sizes, position: float) -> tuple[str, str]:
    query = threshold_query(seed, sizes, position)
    return (chain_to_onnx(query.networks[0].relu_chain(), tmp_path / "net.onnx"),
            write_vnnlib(query, tmp_path / "spec.vnnlib"))


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "reluverify", *map(str, args)]


def _environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_a_damaged_checkpoint_is_one_error_line(tmp_path):
    network, spec = _files(tmp_path, 1, [6, 32, 32, 3], 0.1)
    good = tmp_path / "good.npz"
    run = subprocess.run(_cli("vnnlib", network, spec, "--checkpoint", good, "--strategy", "relu-bab"),
                         capture_output=True, text=True, env=_environment(), timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("unsat") and good.exists()
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"\x00" * 1000)
    for name in ("truncated.npz", "garbage.npz"):
        run = subprocess.run(_cli("vnnlib", network, spec, "--checkpoint", tmp_path / name), capture_output=True,
                             text=True, env=_environment(), timeout=120)
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2 and run.stdout == "" and len(lines) == 1
        assert lines[0].startswith(f"reluverify: error: {tmp_path / name}: not a readable reluverify checkpoint")


def test_a_run_killed_after_its_first_save_resumes(tmp_path):
    """SIGKILL once the first checkpoint is on disk; the rerun says it resumes and proves the query."""
    network, spec = _files(tmp_path, 3, [6, 32, 32, 3], 0.05)  # about 2 s of branching
    path = tmp_path / "killed.npz"
    command = _cli("vnnlib", network, spec, "--checkpoint", path, "--checkpoint-every", "0.2", "--strategy", "relu-bab")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_environment())
    try:
        until = time.monotonic() + 60
        while not path.exists() and process.poll() is None and time.monotonic() < until:
            time.sleep(0.02)
        assert path.exists() and process.poll() is None, "no checkpoint before the run ended"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    saved = _entry(path)
    assert saved.status == "open" and saved.open > 0
    rerun = subprocess.run(command, capture_output=True, text=True, env=_environment(), timeout=120)
    assert rerun.returncode == 0 and rerun.stdout.startswith("unsat")
    assert f"resuming from {path}: {100 * saved.proven:.1f}% of the search tree refuted, {saved.open:,} sub-problems open" \
        in rerun.stderr
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
