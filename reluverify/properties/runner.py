"""Running the queries of one property: sequentially, or in worker processes with early stop.

A property compiles to one query (or, for global robustness with partitions, one per
sub-domain). :func:`run_queries` decides them all and merges the answers into one
:class:`Outcome`:

* ``sat`` as soon as one query is ``sat`` (the rest are skipped or killed);
* ``unsat`` when every query is ``unsat``;
* otherwise ``timeout`` if some query ran out of time, else ``unknown`` (with the reasons).

The options' ``parallel.jobs`` says how many worker processes the property may use. With
``jobs > 1`` each task runs in its own process (:func:`reluverify.parallel.run_tasks`) under options
with ``jobs = 1``, killed if it overruns; a worker that runs out of memory ends the whole run with
its :class:`~reluverify.errors.MemoryLimitError` (the others would hit the same limit). A single
query that is not split into disjunct groups runs in this process instead, its search shared
among the ``jobs`` worker processes (:mod:`reluverify.solver.sharing`). Splitting a query's
disjuncts across workers is the paper's "disjuncts in parallel": ``split_disjuncts=True`` makes
one task per disjunct (``query.with_disjuncts([d])``), in the order of the disjuncts, so the
property lists the likeliest violations first; ``split_disjuncts=k`` (an int) makes ``k`` tasks,
disjunct ``i`` going to group ``i mod k``. Groups keep what the solver shares between disjuncts
of one box (its input-split search bounds them together), so ``k = jobs`` is usually faster than
one task per disjunct.

The options' ``timeout`` is the wall-clock budget for the whole property: every task gets what
is left of it when it starts.

**Prioritisation** (``prioritize``; by default on when there are several queries, i.e.
sub-domains): :mod:`reluverify.properties.priority` scores every disjunct by sampling and a short
gradient attack, refuted-by-bounds ones last; the queries run likeliest violation first and, when
disjuncts are split, the groups are formed in that order. Verdicts and indices are unchanged.

**Shared facts** (``facts``): ReLU phases proven fixed on a domain (a
:class:`~reluverify.solver.facts.PhaseFacts`, sent to the workers as plain dicts) go to every
task; the solver uses each one only on a query whose box lies inside the domain it was proven on
(:meth:`~reluverify.solver.facts.PhaseFacts.covers`), never on another. By default, with several
queries (sub-domains), the phases fixed on the hull of their boxes are computed once and shared.
``Outcome.facts`` returns, per query, the facts its own run proved on its box, for a caller that
splits the query further.
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field, replace

from reluverify.errors import MemoryLimitError
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
    facts: list = field(default_factory=list)
    """Per query, the phase facts (``PhaseFacts.to_dict()``) its run proved on its box; None if it never ran."""


def _solve(query: Query, options, facts=()) -> Result:
    from reluverify.solver import solve

    if facts:
        from reluverify.solver.facts import PhaseFacts

        facts = [f if isinstance(f, PhaseFacts) else PhaseFacts.from_dict(f) for f in facts]
    return solve(query, options, facts=facts)


def shared_facts(queries: list[Query], options) -> list[dict]:
    """The ReLU phases fixed on the hull of the queries' boxes (one ``PhaseFacts.to_dict()``), or ``[]``.

    Every query's box lies in the hull, so the solver may use these on each of them; only queries
    over the same networks share them (``[]`` otherwise, and for networks that are not ReLU chains).
    """
    import numpy as np

    if not all(n.is_piecewise_linear for q in queries for n in q.networks):
        return []
    from reluverify.solver.bounds.deeppoly import forward_bounds
    from reluverify.solver.facts import PhaseFacts, chain_fingerprint, phases_from_bounds

    chain = queries[0].relu_chain()
    fingerprint = chain_fingerprint(chain)
    if any(q.relu_chain() is not chain and chain_fingerprint(q.relu_chain()) != fingerprint for q in queries[1:]):
        return []
    n_x = chain.input_size
    lower = np.min([q.lower[:n_x] for q in queries], axis=0)
    upper = np.max([q.upper[:n_x] for q in queries], axis=0)
    bounds = forward_bounds(chain, lower[None, :], upper[None, :], refine=options.refine_bounds)
    if not bounds.pre_lower:
        return []
    phases = phases_from_bounds(np.concatenate([b[0] for b in bounds.pre_lower]),
                                np.concatenate([b[0] for b in bounds.pre_upper]))
    return [PhaseFacts(fingerprint, lower, upper, phases).to_dict()]


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


def run_queries(queries: list[Query], options, *, split_disjuncts: bool | int = False,
                task_timeout: float | None = None, facts=None, prioritize: bool | None = None) -> Outcome:
    """Decide every query (see the module docstring); ``options`` is a ``SolverOptions`` (its ``timeout``
    the budget of the whole run, its ``parallel.jobs`` the worker processes).

    ``split_disjuncts``: split each query's disjuncts into groups, one task each. ``task_timeout`` caps
    the seconds of each task (within the overall ``options.timeout``).
    ``facts``: ``PhaseFacts`` (or their dicts) for every task; None shares :func:`shared_facts`
    when there are several queries. ``prioritize``: order the work by
    :mod:`~reluverify.properties.priority`; None does so when there are several queries.
    """
    start = time.monotonic()
    deadline = None if options.timeout is None else start + options.timeout
    verdicts = [[UNKNOWN] * len(q.disjuncts) for q in queries]
    stats = Statistics()
    reasons: list[str] = []
    found: tuple[int, Counterexample] | None = None
    tasks = 0
    learned: list = [None] * len(queries)
    several = len(queries) > 1
    if facts is None:
        facts = shared_facts(queries, options) if several else []
    facts = [f.to_dict() if hasattr(f, "to_dict") else f for f in facts]
    order = list(range(len(queries)))
    disjunct_order: list[list[int] | None] = [None] * len(queries)
    if prioritize if prioritize is not None else several:
        from reluverify.properties.priority import order_disjuncts, order_queries

        if several:
            order = order_queries(queries)
        if split_disjuncts:
            disjunct_order = [order_disjuncts(q) for q in queries]

    def remaining() -> float | None:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if task_timeout is None:
            return left
        return task_timeout if left is None else min(left, task_timeout)

    def record(qi: int, group: tuple[int, ...] | None, result: Result) -> None:
        nonlocal found
        stats.merge(result.statistics)
        if result.facts is not None and learned[qi] is None:
            learned[qi] = result.facts.to_dict()
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

    jobs = options.parallel.jobs
    if jobs > 1 and len(queries) == 1 and not split_disjuncts:
        jobs = 1  # one query: its search shares the work among the processes (solver/sharing.py)
    else:
        options = options.with_jobs(1)  # one process per task
    if jobs <= 1:
        for qi in order:
            query = queries[qi]
            left = remaining()
            if left is not None and left <= 0:
                reasons.append("time budget exhausted before every query ran")
                for k in range(len(verdicts[qi])):
                    verdicts[qi][k] = TIMEOUT
                continue
            tasks += 1
            record(qi, None, _solve(query, replace(options, timeout=left), facts))
            if found is not None:
                break
    else:
        from reluverify.parallel import run_tasks

        def generate():
            for qi in order:
                query = queries[qi]
                ranked = disjunct_order[qi]
                for group in disjunct_groups(len(query.disjuncts), split_disjuncts):
                    if group is None:
                        yield (qi, None), _solve, (query, replace(options, timeout=remaining()), facts)
                    else:
                        if ranked is not None:  # groups formed in priority order, likeliest first
                            group = tuple(ranked[k] for k in group)
                        sub = query.with_disjuncts([query.disjuncts[k] for k in group])
                        yield (qi, group), _solve, (sub, replace(options, timeout=remaining()), facts)

        def limit(key) -> float | None:
            left = remaining()
            return None if left is None else left + KILL_GRACE_S

        with closing(run_tasks(generate(), jobs=jobs, time_limit=limit, stop=lambda: found is not None)) as outcomes:
            for task in outcomes:
                tasks += 1
                qi, k = task.key
                if task.status == "ok":
                    record(qi, k, task.value)
                    continue
                if task.status == "cancelled":
                    continue
                if task.status == "memory":  # the limit holds for every worker: the others are killed
                    raise MemoryLimitError(task.message)
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
        facts=learned,
    )

