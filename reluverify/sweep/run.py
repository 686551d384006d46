"""Running a sweep: skip what the store already has, order the rest, record each answer at once.

:func:`run_sweep` is the whole loop:

1. the plan is stored (its keys and runs, :meth:`~reluverify.sweep.store.ResultStore.record_plan`,
   so that a report tells planned from finished); the plan's keys that already have a row in the
   store are skipped (**resume**); rows whose verdict is in ``retry`` (e.g. ``error``,
   ``timeout``) are deleted first and run again;
2. the remaining jobs are ordered by :func:`reluverify.properties.priority.ball_scores`, likeliest
   violation first (``order="priority"``, the default), or kept in the plan's order (``"plan"``);
3. the backend runs them; each answer becomes one row, committed before the next is awaited, and
   the progress bar (tqdm, on stderr, with an ETA) moves on.

The main process only waits, writes rows and draws the bar; the workers do the solving.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from reluverify.sweep.backends import JobOutcome
from reluverify.sweep.plan import Job
from reluverify.sweep.runs import plan_runs
from reluverify.sweep.store import ResultStore, utc_iso
from reluverify.sweep.worker import load_network

ERROR = "error"
ORDERS = ("priority", "plan")


@dataclass
class SweepRun:
    """What one call of :func:`run_sweep` did."""

    planned: int
    skipped: int
    ran: int = 0
    retried_rows: int = 0
    counts: Counter = field(default_factory=Counter)
    """Verdicts of every planned query that has a row now (skipped ones included)."""
    seconds: float = 0.0


def outcome_row(outcome: JobOutcome) -> dict:
    """The store row of a finished job."""
    job, value = outcome.job, outcome.value or {}
    if outcome.status == "ok":
        verdict = value["verdict"]
    elif outcome.status == "timeout":
        verdict = "timeout"
    else:
        verdict = ERROR
    return {
        "key": job.key,
        "network": job.network,
        "network_sha256": job.network_sha256,
        "point_index": job.point_index,
        "point": list(job.point),
        "kind": job.kind,
        "delta": job.delta,
        "epsilon": job.epsilon,
        "norm": job.norm,
        "decision": job.decision,
        "domain": None if job.domain is None else [list(job.domain[0]), list(job.domain[1])],
        "verdict": verdict,
        "solver_verdict": value.get("solver_verdict") if outcome.status == "ok" else None,
        "label": value.get("label"),
        "seconds": float(outcome.seconds),
        "statistics": value.get("statistics"),
        "counterexample": value.get("counterexample"),
        "reason": outcome.reason or "",
        "attempts": int(outcome.attempts),
        "backend": outcome.backend,
        "worker": outcome.worker,
        "started": utc_iso(outcome.started),
        "finished": utc_iso(outcome.finished),
    }


def prioritize(jobs: list[Job], seed: int = 0) -> list[Job]:
    """``jobs`` ordered by :func:`~reluverify.properties.priority.ball_scores`, likeliest violation first."""
    from reluverify.properties.priority import ball_scores

    if len(jobs) < 2:
        return list(jobs)
    groups: dict[tuple, list[int]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault((job.network_sha256, job.network, job.epsilon, job.norm, job.decision, job.domain), []).append(index)
    scores = np.zeros(len(jobs))
    for (sha, path, epsilon, norm, decision, domain), members in groups.items():
        network = load_network(path, sha)
        centres = np.asarray([jobs[i].point for i in members], dtype=np.float64)
        radii = np.asarray([jobs[i].delta for i in members], dtype=np.float64)
        scores[members] = ball_scores(network, centres, radii, norm=norm, decision=decision or "max",
                                      epsilon=epsilon, domain=domain, seed=seed)
    return [jobs[i] for i in np.argsort(scores, kind="stable")]


def run_sweep(
    jobs: list[Job],
    store: ResultStore,
    backend,
    settings: dict | None = None,
    order: str = "priority",
    retry=(),
    progress: bool | None = None,
    stream=None,
    domain_source: str | None = None,
) -> SweepRun:
    """Run every job of the plan that has no row in ``store`` (see the module docstring).

    ``progress``: True draws the bar, False never, None only when the stream is a terminal.
    ``domain_source`` names where the domain came from (a file), for the run's description in the store.
    """
    import time

    from tqdm import tqdm

    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}")
    start = time.monotonic()
    settings = dict(settings or {})
    store.record_plan(*plan_runs(jobs, domain_source))
    keys = [job.key for job in jobs]
    existing = store.verdicts(keys)
    retried = 0
    if retry:
        again = [key for key, verdict in existing.items() if verdict in set(retry)]
        retried = store.delete(again)
        for key in again:
            existing.pop(key, None)
    todo = [job for job in jobs if job.key not in existing]
    if order == "priority":
        todo = prioritize(todo)
    run = SweepRun(planned=len(jobs), skipped=len(jobs) - len(todo), retried_rows=retried,
                   counts=Counter(existing.values()))
    stream = stream or sys.stderr
    bar = tqdm(total=len(jobs), initial=run.skipped, unit="query", file=stream, dynamic_ncols=True,
               disable=(not progress) if progress is not None else None, smoothing=0.1)
    try:
        for outcome in backend.run(todo, settings):
            row = outcome_row(outcome)
            store.record(row)
            run.ran += 1
            run.counts[row["verdict"]] += 1
            bar.update(1)
            bar.set_postfix_str(", ".join(f"{v} {c}" for v, c in sorted(run.counts.items())), refresh=False)
    finally:
        bar.close()
        run.seconds = time.monotonic() - start
    return run
