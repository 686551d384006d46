"""Def. 2: (delta, eps)-global robustness on a box domain D, with exact domain partitioning.

``N`` is (delta, eps)-globally robust on ``D`` when for all ``x1, x2`` in ``D``:
``||x1 - x2|| <= delta  =>  |C(x1, l) - C(x2, l)| < eps`` for every label ``l``.

**Encoding.** Two copies of the network in one :class:`~reluverify.query.Query`
(``networks=(N, N)``): ``v = [x1 (n), x2 (n)]`` (plus ``n`` auxiliaries ``t`` for L1),
``y = [y1 (m), y2 (m)]``, and the input rows ``||x1 - x2|| <= delta`` of
:func:`reluverify.properties.ball.pair_rows` (L-infinity: ``2n`` rows; L1: ``t_i >= |x1_i - x2_i|``,
``sum t <= delta``). The negation has one disjunct per label and sign, ``y1_l - y2_l >= eps`` and
``y2_l - y1_l >= eps``. The radius in these rows is ``delta`` cut to the largest ``||x1 - x2||`` the
two boxes allow (rounded up), and each ``t_i`` ranges up to the largest ``|x1_i - x2_i|``: the same
pairs, and no huge bound from a huge delta.

**Symmetry** (``symmetric=True``, the default): the region is symmetric under swapping ``x1`` and
``x2`` once all sub-domains are taken together (below), and the swap turns ``y2_l - y1_l >= eps``
into ``y1_l - y2_l >= eps``. So the disjuncts ``y1_l - y2_l >= eps`` alone are violated exactly
when the property is: half the disjuncts, the same answer. ``symmetric=False`` keeps both signs.

**Partitioning into sub-domains** (``partitions=k``): ``D`` is cut into ``k`` boxes ``D_i`` by
repeatedly halving the box with the widest side along that side. Query ``i`` lets ``x1`` range
over ``D_i`` and ``x2`` over ``D ∩ (D_i grown by delta on every side)``. This is exact: a violating
pair ``(x1, x2)`` has ``x1`` in some ``D_i``, and ``|x1_j - x2_j| <= ||x1 - x2|| <= delta`` (for either
norm) puts ``x2`` in the grown box, so no pair that straddles a border is lost; and every pair that
a sub-query admits is a pair of ``D`` at distance ``<= delta``. The swap argument above holds
across sub-domains: ``(x2, x1)`` is admitted by the sub-query of the ``D_j`` that holds ``x2``.

The sub-domain queries run one after another, or in worker processes (``jobs``), stopping at the
first violation; the result names the sub-domain that was violated.

**Screening** (before any query): a search over the pairs themselves
(:mod:`~reluverify.solver.pair_search`) for a share of the time budget: a pair attack that moves
``x1`` and ``d = x2 - x1`` together (every point it visits is a pair of the property), and
differential bounds of ``y(x2) - y(x1)`` on boxes of ``x1``. A pair whose change reaches ``eps`` is
confirmed as the two-copy query's counterexample (not robust); bounds below ``eps`` on every box
prove the property (by the swap symmetry, bounding ``y(x2) - y(x1)`` for every ``x1`` bounds the
change in both directions). Otherwise the queries below decide, with the time left.

**Adaptive refinement** (``subdomain_timeout=s``): each sub-domain query gets at most ``s`` seconds;
a sub-domain left undecided is halved along its widest side and both halves are queried in the
next round, until every sub-domain is decided, a violation is found, the overall ``timeout`` is
spent, or ``max_subdomains`` is reached. Halving keeps the cover exact (the halves' queries admit
exactly the pairs whose ``x1`` lies in the parent). It pays off because a smaller ``D_i`` also
shrinks the box of ``x2``: the solver's own splitting treats ``x1`` and ``x2`` as independent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from reluverify.errors import SpecError
from reluverify.network import Network
from reluverify.properties.ball import NORM_NAMES, ROUND_UP, check_norm, check_radius, pair_rows
from reluverify.properties.base import Property, violated
from reluverify.properties.common import pair_counterexample, solver_options
from reluverify.properties.inputs import Domain
from reluverify.properties.result import PropertyCounterexample, PropertyResult
from reluverify.properties.runner import Outcome, merge_verdict, run_queries
from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.solver.confirm import confirm
from reluverify.solver.result import SAT, TIMEOUT, UNKNOWN, UNSAT, Statistics

MAX_SUBDOMAINS = 1 << 14
SCREEN_SHARE = 0.5
"""The share of the time budget the screening may take (all of it without a budget: then it ends by
itself only when it decides; see :meth:`GlobalRobustness.pair_screen`) ..."""
SCREEN_SECONDS = 60.0
"""... and at most this many seconds without a budget."""


def partition(domain: Domain, parts: int) -> list[Domain]:
    """``parts`` boxes covering ``domain``: halve the box with the widest side until there are enough.

    A domain that cannot be cut further (every side of width 0) gives fewer boxes.
    """
    if parts < 1:
        raise SpecError(f"the number of partitions must be >= 1, got {parts}")
    boxes = [(domain.lower.copy(), domain.upper.copy())]
    while len(boxes) < parts:
        widths = [float(np.max(hi - lo)) if lo.size else 0.0 for lo, hi in boxes]
        k = int(np.argmax(widths))
        if widths[k] <= 0.0:
            break
        lo, hi = boxes.pop(k)
        j = int(np.argmax(hi - lo))
        middle = lo[j] + (hi[j] - lo[j]) / 2.0
        left_hi, right_lo = hi.copy(), lo.copy()
        left_hi[j] = middle
        right_lo[j] = middle
        boxes[k:k] = [(lo, left_hi), (right_lo, hi)]
    return [Domain(lo, hi) for lo, hi in boxes]


@dataclass(frozen=True, eq=False)
class GlobalRobustness(Property):
    """Def. 2 on ``domain`` with radius ``delta`` in ``norm``, tolerance ``epsilon``, ``partitions`` sub-domains."""

    kind = "global-robustness"
    no_certificate = ("no certificate is available for global robustness: its query has two network copies, "
                      "not a VNN-LIB instance of one network")

    network: Network
    domain: Domain
    delta: float
    epsilon: float
    norm: str = "inf"
    partitions: int = 1
    symmetric: bool = True
    screen: bool = True
    """Run the screening (see the module docstring) before the queries."""

    def __post_init__(self) -> None:
        self.check_network()
        if self.domain is None:
            raise SpecError("global robustness needs a domain (a box of inputs)")
        object.__setattr__(self, "domain", Domain.of(self.domain, self.network.input_size))
        object.__setattr__(self, "delta", check_radius(self.delta, "delta"))
        object.__setattr__(self, "epsilon", check_radius(self.epsilon, "epsilon"))
        object.__setattr__(self, "norm", check_norm(self.norm))
        try:
            parts = int(self.partitions)
        except (TypeError, ValueError):
            raise SpecError(f"the number of partitions must be an integer, got {self.partitions!r}") from None
        if parts < 1 or parts != self.partitions:
            raise SpecError(f"the number of partitions must be an integer >= 1, got {self.partitions!r}")
        object.__setattr__(self, "partitions", parts)

    def describe(self) -> str:
        parts = f", {self.partitions} sub-domains" if self.partitions > 1 else ""
        return (
            f"(delta, eps)-global robustness (Def. 2) on the domain, {NORM_NAMES[self.norm]} delta {self.delta:g}, "
            f"eps {self.epsilon:g}{parts}"
        )

    def parameters(self) -> dict:
        return {
            "domain": self.domain.to_dict(),
            "delta": self.delta,
            "epsilon": self.epsilon,
            "norm": self.norm,
            "partitions": self.partitions,
            "symmetric": self.symmetric,
        }

    def subdomains(self) -> list[Domain]:
        return partition(self.domain, self.partitions)

    def query_for(self, sub: Domain, description: str = "") -> Query:
        """The two-copy query with ``x1`` in ``sub`` and ``x2`` in ``domain ∩ (sub grown by delta)``."""
        n, m = self.network.input_size, self.network.output_size
        x2_lo = np.maximum(self.domain.lower, sub.lower - self.delta)
        x2_hi = np.minimum(self.domain.upper, sub.upper + self.delta)
        # |x1_i - x2_i| never exceeds reach_i in these boxes, so a radius cut to their reach (rounded up)
        # ties the same pairs, and a huge delta leaves no huge bound
        reach = np.maximum(sub.upper - x2_lo, x2_hi - sub.lower) * (1.0 + ROUND_UP)
        total = (reach.max() if self.norm == "inf" else math.fsum(reach)) if reach.size else 0.0
        radius = min(self.delta, float(total) * (1.0 + ROUND_UP))
        rows, aux = pair_rows(n, radius, self.norm)
        lower = np.concatenate([sub.lower, x2_lo, np.zeros(aux)])
        upper = np.concatenate([sub.upper, x2_hi, np.minimum(reach, radius)[:aux]])
        width = 2 * n + aux + 2 * m
        y1, y2 = width - 2 * m, width - m
        signs = (1.0,) if self.symmetric else (1.0, -1.0)
        disjuncts = []
        for l in range(m):
            for sign in signs:
                # sign * (y1_l - y2_l) >= eps   <=>   -sign * y1_l + sign * y2_l <= -eps
                row = np.zeros((1, width))
                row[0, y1 + l], row[0, y2 + l] = -sign, sign
                first, second = ("x1", "x2") if sign > 0 else ("x2", "x1")
                text = f"label {l}: C({first}, {l}) - C({second}, {l}) >= eps"
                constraints = LinearConstraints(row, np.array([-self.epsilon]), (text,))
                disjuncts.append(Disjunct(lower, upper, constraints, text))
        return Query((self.network, self.network), lower, upper, tuple(disjuncts), rows, aux,
                     description=description or self.describe())

    def queries(self) -> list[Query]:
        """One query per sub-domain (a single query when ``partitions == 1``)."""
        subs = self.subdomains()
        return [self._query(sub, i, len(subs)) for i, sub in enumerate(subs)]

    def query(self) -> Query:
        """The unpartitioned query (x1 and x2 both over the whole domain)."""
        return self.query_for(self.domain)

    def check(self, options=None, jobs: int | None = None, split_disjuncts: bool | int = False,
              timeout: float | None = ..., subdomain_timeout: float | None = None,
              max_subdomains: int = MAX_SUBDOMAINS) -> PropertyResult:
        """Decide the property: sub-domain queries in order, or ``options.parallel.jobs`` at a time, stopping
        at a violation (``jobs`` and ``timeout``: as for :meth:`Property.check`).

        With ``subdomain_timeout`` set, undecided sub-domains are halved and retried (see the module
        docstring).
        """
        options = solver_options(options, timeout, jobs)
        started = time.monotonic()
        screened = self.pair_screen(options)
        if screened is not None:
            return screened
        left = None if options.timeout is None else max(0.0, options.timeout - (time.monotonic() - started))
        options = options.with_timeout(left)
        if subdomain_timeout is None:
            return super().check(options, split_disjuncts=split_disjuncts)
        return self._refine(self.subdomains(), options, split_disjuncts, float(subdomain_timeout), max_subdomains)

    def pair_screen(self, options) -> PropertyResult | None:
        """The screening of the module docstring: a result when it decides, else None."""
        from reluverify.properties.common import pair_change
        from reluverify.solver.pair_search import PairSearch

        if not (self.screen and self.network.is_piecewise_linear):
            return None
        started = time.monotonic()
        budget = SCREEN_SECONDS if options.timeout is None else SCREEN_SHARE * options.timeout
        chain = self.network.relu_chain()
        subs = self.subdomains()

        measured = pair_change(self.network, chain, self.domain, self.delta, self.norm)
        search = PairSearch(chain, self.domain.lower, self.domain.upper, self.delta, self.norm, measured,
                            options.attack.seed, attack=options.falsify)
        found = search.run(started + budget, threshold=self.epsilon)
        stats = Statistics(boxes=found.boxes)
        disjuncts = self.network.output_size * (1 if self.symmetric else 2)
        if found.status == "holds":
            outcome = Outcome(UNSAT, statistics=stats, seconds=time.monotonic() - started,
                              verdicts=[[UNSAT] * disjuncts for _ in subs])
            return self.interpret({0: self._query(subs[0], 0, len(subs))}, outcome, subs)
        if found.status != "violated":
            return None
        output = found.best
        x2, x1 = found.pairs[output]
        # the query's disjunct for output l reads C(x1, l) - C(x2, l) >= eps: the pair goes in swapped, and
        # belongs to the sub-domain that holds its first point
        index = next(i for i, sub in enumerate(subs) if sub.contains(x1))
        query = self._query(subs[index], index, len(subs))
        aux = np.abs(x2 - x1) if self.norm == "1" else np.zeros(0)
        cex = confirm(query, np.concatenate([x1, x2, aux]), options.tolerances.confirm,
                      output * (1 if self.symmetric else 2))
        if cex is None:
            return None
        verdicts = [[UNKNOWN] * disjuncts for _ in subs]
        verdicts[index][cex.disjunct] = SAT
        outcome = Outcome(SAT, counterexample=cex, query_index=index, statistics=stats,
                          seconds=time.monotonic() - started, verdicts=verdicts)
        return self.interpret({index: query}, outcome, subs)

    def _query(self, sub: Domain, index: int, count: int) -> Query:
        return self.query_for(sub, f"{self.describe()}: sub-domain {index}" if count > 1 else "")

    def _refine(self, pending: list[Domain], options, split_disjuncts, subdomain_timeout, max_subdomains):
        start = time.monotonic()
        deadline = None if options.timeout is None else start + options.timeout
        leaves: list[tuple[Domain, str]] = []
        stats, tasks, reasons, rounds = Statistics(), 0, [], 0
        found = None  # (leaf index, query, counterexample)
        while pending:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                leaves += [(d, TIMEOUT) for d in pending]
                reasons.append("time budget exhausted while refining sub-domains")
                break
            rounds += 1
            queries = [self.query_for(d) for d in pending]
            out = run_queries(queries, options.with_timeout(left), split_disjuncts=split_disjuncts,
                              task_timeout=subdomain_timeout)
            stats.merge(out.statistics)
            tasks += out.tasks
            after: list[Domain] = []
            for i, sub in enumerate(pending):
                verdict = SAT if out.query_index == i else merge_verdict(out.verdicts[i])
                if verdict == SAT:
                    found = (len(leaves), queries[i], out)
                if verdict in (SAT, UNSAT) or out.counterexample is not None:
                    leaves.append((sub, verdict))
                    continue
                halves = partition(sub, 2)
                if len(halves) < 2 or len(leaves) + len(pending) + len(after) >= max_subdomains:
                    leaves.append((sub, verdict))
                    reasons.append(out.reason or verdict)
                else:
                    after += halves
            if found is not None:
                break
            pending = after
        verdicts = [v for _, v in leaves]
        if found is not None:
            verdict = SAT
        elif all(v == UNSAT for v in verdicts):
            verdict = UNSAT
        else:
            verdict = TIMEOUT if TIMEOUT in verdicts else UNKNOWN
        outcome = Outcome(
            verdict=verdict,
            counterexample=found[2].counterexample if found else None,
            query_index=found[0] if found else None,
            statistics=stats,
            seconds=time.monotonic() - start,
            reason="" if verdict in (SAT, UNSAT) else "; ".join(dict.fromkeys(reasons)) or "undecided",
            verdicts=[[v] for v in verdicts],
            tasks=tasks,
        )
        queries = {found[0]: found[1]} if found else {}
        result = self.interpret(queries, outcome, [d for d, _ in leaves])
        result.parameters = {**result.parameters, "subdomain_timeout": subdomain_timeout, "rounds": rounds}
        return result

    def interpret(self, queries, outcome: Outcome, subdomains: list[Domain] | None = None) -> PropertyResult:
        """The property's result; ``queries`` maps (or lists) query index -> query, at least the violated one;
        ``subdomains`` (default: the partition's) are listed with their verdicts."""
        result = super().interpret(queries, outcome)
        result.subdomain_verdicts = [merge_verdict(v) for v in outcome.verdicts]
        if subdomains is None and isinstance(queries, list):
            subdomains = self.subdomains()
        if subdomains is not None:
            result.subdomains = [
                {"lower": d.lower.tolist(), "upper": d.upper.tolist(), "verdict": v}
                for d, v in zip(subdomains, result.subdomain_verdicts)
            ]
        if len(outcome.verdicts) > 1:
            result.disjunct_verdicts = []
        return result

    def counterexample(self, query: Query, outcome: Outcome) -> PropertyCounterexample:
        """The pair ``(x1, x2)``, naming the sub-domain whose query found it when there are several."""
        sub = outcome.query_index if len(outcome.verdicts) > 1 else None
        return pair_counterexample(query, outcome, self.norm, violated(query, outcome), self.network, subdomain=sub)


def global_robustness(network: Network, domain, delta: float, epsilon: float, norm: str = "inf",
                      partitions: int = 1, options=None, jobs: int | None = None, timeout: float | None = ...,
                      symmetric: bool = True, subdomain_timeout: float | None = None) -> PropertyResult:
    """Check Def. 2 (see :class:`GlobalRobustness`); ``jobs`` and ``timeout`` replace the options' own."""
    prop = GlobalRobustness(network, domain, delta, epsilon, norm, partitions, symmetric)
    return prop.check(solver_options(options, timeout, jobs), subdomain_timeout=subdomain_timeout)
