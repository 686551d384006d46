"""Running the queries of one property: sequentially, or in worker processes with early stop.

A property compiles to one query (or, for global robustness with partitions, one per
sub-domain). :func:`run_queries` decides them all and merges the answers into one
:class:`Outcome`:

* ``sat`` as soon as one query is ``sat`` (the rest are skipped or killed);
* ``unsat`` when every query is ``unsat``;
* otherwise ``timeout`` if some query ran out of time, else ``unknown`` (with the reasons).

With ``jobs > 1`` each task runs in its own process (:func:`reluverify.parallel.run_tasks`),
killed if it overruns. ``split_disjuncts=True`` makes one task per disjunct
(``query.with_disjuncts([d])``), the paper's "disjuncts in parallel"; the tasks run in the
order of the disjuncts, so the property lists the likeliest violations first.

``timeout`` is the wall-clock budget for the whole property: every task gets what is left of
it when it starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from reluverify.query import Query
from reluverify.solver.result import SAT, TIMEOUT, UNKNOWN, UNSAT, Counterexample, Result, Statistics

KILL_GRACE_S = 5.0
"""A worker gets this many seconds beyond its solver timeout before it is killed."""


@dataclass
class Outcome:
    """The merged answer of the queries of one property."""

    verdict: str
    counterexample: Counterexample | None = None
    query_index: int | None = None
    """The query (sub-domain) whose counterexample is reported."""
    statistics: Statistics = field(default_factory=Statistics)
    seconds: float = 0.0
    reason: str = ""
    verdicts: list[list[str]] = field(default_factory=list)
    """Per query, the verdict per disjunct (``unknown`` for what never ran)."""
    tasks: int = 0


def _solve(query: Query, options) -> Result:
    from reluverify.solver import solve

    return solve(query, options)


def merge_verdict(verdicts: list[str]) -> str:
    if SAT in verdicts:
        return SAT
    if verdicts and all(v == UNSAT for v in verdicts):
        return UNSAT
    if TIMEOUT in verdicts:
        return TIMEOUT
    return UNKNOWN


def run_queries(queries: list[Query], options, jobs: int = 1, split_disjuncts: bool = False) -> Outcome:
    """Decide every query (see the module docstring); ``options`` is a ``SolverOptions``."""
    start = time.monotonic()
    deadline = None if options.timeout is None else start + options.timeout
    verdicts = [[UNKNOWN] * len(q.disjuncts) for q in queries]
    stats = Statistics()
    reasons: list[str] = []
    found: tuple[int, Counterexample] | None = None
    tasks = 0

    def remaining() -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def record(qi: int, disjunct: int | None, result: Result) -> None:
        nonlocal found
        stats.merge(result.statistics)
        if disjunct is None:
            verdicts[qi] = list(result.disjunct_verdicts) or [result.verdict] * len(queries[qi].disjuncts)
        else:
            verdicts[qi][disjunct] = result.verdict
        if result.verdict == SAT and found is None:
            cex = result.counterexample
            if disjunct is not None:  # a single-disjunct query: its disjunct 0 is `disjunct`
                cex = replace(cex, disjunct=disjunct)
            found = (qi, cex)
            verdicts[qi][cex.disjunct] = SAT
        if result.verdict in (UNKNOWN, TIMEOUT) and result.reason:
            reasons.append(result.reason)

    if jobs <= 1:
        for qi, query in enumerate(queries):
            left = remaining()
            if left is not None and left <= 0:
                reasons.append("time budget exhausted before every query ran")
                for k in range(len(verdicts[qi])):
                    verdicts[qi][k] = TIMEOUT
                continue
            tasks += 1
            record(qi, None, _solve(query, replace(options, timeout=left)))
            if found is not None:
                break
    else:
        from reluverify.parallel import run_tasks

        def generate():
            for qi, query in enumerate(queries):
                if split_disjuncts and len(query.disjuncts) > 1:
                    for k, disjunct in enumerate(query.disjuncts):
                        yield (qi, k), _solve, (query.with_disjuncts([disjunct]), replace(options, timeout=remaining()))
                else:
                    yield (qi, None), _solve, (query, replace(options, timeout=remaining()))

        def limit(key) -> float | None:
            left = remaining()
            return None if left is None else left + KILL_GRACE_S

        for task in run_tasks(generate(), jobs=jobs, time_limit=limit, stop=lambda: found is not None):
            tasks += 1
            qi, k = task.key
            if task.status == "ok":
                record(qi, k, task.value)
                continue
            if task.status == "cancelled":
                continue
            status = TIMEOUT if task.status == "timeout" else UNKNOWN
            if k is None:
                verdicts[qi] = [status] * len(queries[qi].disjuncts)
            else:
                verdicts[qi][k] = status
            reasons.append(f"worker {task.status}: {task.message}")

    if found is not None:
        verdict = SAT
    else:
        verdict = merge_verdict([v for per_query in verdicts for v in per_query])
    return Outcome(
        verdict=verdict,
        counterexample=found[1] if found else None,
        query_index=found[0] if found else None,
        statistics=stats,
        seconds=time.monotonic() - start,
        reason="" if verdict in (SAT, UNSAT) else "; ".join(dict.fromkeys(reasons)) or "undecided",
        verdicts=verdicts,
        tasks=tasks,
    )

