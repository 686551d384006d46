"""Running the queries of one property: sequentially, or in worker processes with early stop.

A property compiles to one query (or, for global robustness with partitions, one per
sub-domain). :func:`run_queries` decides them all and merges the answers into one
:class:`Outcome`:

* ``sat`` as soon as one query is ``sat`` (the rest are skipped or killed);
* ``unsat`` when every query is ``unsat``;
* otherwise ``timeout`` if some query ran out of time, else ``unknown`` (with the reasons).

With ``jobs > 1`` each task runs in its own process (:func:`reluverify.parallel.run_tasks`),
killed if it overruns. Splitting a query's disjuncts across workers is the paper's "disjuncts
in parallel": ``split_disjuncts=True`` makes one task per disjunct (``query.with_disjuncts([d])``),
in the order of the disjuncts, so the property lists the likeliest violations first;
``split_disjuncts=k`` (an int) makes ``k`` tasks, disjunct ``i`` going to group ``i mod k``. Groups
keep what the solver shares between disjuncts of one box (its input-split search bounds them
together), so ``k = jobs`` is usually faster than one task per disjunct.

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


def disjunct_groups(count: int, split: bool | int) -> list[tuple[int, ...] | None]:
    """How a query's ``count`` disjuncts are split into tasks; ``[None]`` means one task, unsplit."""
    if split is True:
        groups = count
    elif split is False or split is None:
        groups = 1
    else:
        groups = int(split)
    groups = max(1, min(groups, count))
    if groups == 1:
        return [None]
    return [tuple(range(g, count, groups)) for g in range(groups)]


def run_queries(queries: list[Query], options, jobs: int = 1, split_disjuncts: bool | int = False,
                task_timeout: float | None = None) -> Outcome:
    """Decide every query (see the module docstring); ``options`` is a ``SolverOptions``.

    ``task_timeout`` caps the seconds of each task (within the overall ``options.timeout``).
    """
    start = time.monotonic()
    deadline = None if options.timeout is None else start + options.timeout
    verdicts = [[UNKNOWN] * len(q.disjuncts) for q in queries]
    stats = Statistics()
    reasons: list[str] = []
    found: tuple[int, Counterexample] | None = None
    tasks = 0

    def remaining() -> float | None:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if task_timeout is None:
            return left
        return task_timeout if left is None else min(left, task_timeout)

    def record(qi: int, group: tuple[int, ...] | None, result: Result) -> None:
        nonlocal found
        stats.merge(result.statistics)
        members = group if group is not None else tuple(range(len(queries[qi].disjuncts)))
        per = list(result.disjunct_verdicts) or [result.verdict] * len(members)
        for k, verdict in zip(members, per):
            verdicts[qi][k] = verdict
        if result.verdict == SAT and found is None:
            cex = result.counterexample
            if group is not None:  # the task's disjunct i is the query's disjunct group[i]
                cex = replace(cex, disjunct=group[cex.disjunct])
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
                for group in disjunct_groups(len(query.disjuncts), split_disjuncts):
                    if group is None:
                        yield (qi, None), _solve, (query, replace(options, timeout=remaining()))
                    else:
                        sub = query.with_disjuncts([query.disjuncts[k] for k in group])
                        yield (qi, group), _solve, (sub, replace(options, timeout=remaining()))

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
            for member in k if k is not None else range(len(queries[qi].disjuncts)):
                verdicts[qi][member] = status
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

