"""Def. 2: (delta, eps)-global robustness on a box domain D, with exact domain partitioning.

``N`` is (delta, eps)-globally robust on ``D`` when for all ``x1, x2`` in ``D``:
``||x1 - x2|| <= delta  =>  |C(x1, l) - C(x2, l)| < eps`` for every label ``l``.

**Encoding.** Two copies of the network in one :class:`~reluverify.query.Query`
(``networks=(N, N)``): ``v = [x1 (n), x2 (n)]`` (plus ``n`` auxiliaries ``t`` for L1),
``y = [y1 (m), y2 (m)]``, and the input rows ``||x1 - x2|| <= delta`` of
:func:`reluverify.properties.ball.pair_rows` (L-infinity: ``2n`` rows; L1: ``t_i >= |x1_i - x2_i|``,
``sum t <= delta``). The negation has one disjunct per label and sign, ``y1_l - y2_l >= eps`` and
``y2_l - y1_l >= eps``.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reluverify.errors import SpecError
from reluverify.network import Network
from reluverify.properties.ball import NORM_NAMES, check_norm, check_radius, pair_rows
from reluverify.properties.common import base_result, decide, pair_counterexample, solver_options
from reluverify.properties.points import Domain
from reluverify.properties.result import PropertyResult
from reluverify.properties.runner import merge_verdict
from reluverify.query import Disjunct, LinearConstraints, Query


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
class GlobalRobustness:
    """Def. 2 on ``domain`` with radius ``delta`` in ``norm``, tolerance ``epsilon``, ``partitions`` sub-domains."""

    network: Network
    domain: Domain
    delta: float
    epsilon: float
    norm: str = "inf"
    partitions: int = 1
    symmetric: bool = True

    def __post_init__(self) -> None:
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
        rows, aux = pair_rows(n, self.delta, self.norm)
        x2_lo = np.maximum(self.domain.lower, sub.lower - self.delta)
        x2_hi = np.minimum(self.domain.upper, sub.upper + self.delta)
        lower = np.concatenate([sub.lower, x2_lo, np.zeros(aux)])
        upper = np.concatenate([sub.upper, x2_hi, np.full(aux, self.delta)])
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
        if len(subs) == 1:
            return [self.query_for(subs[0])]
        return [self.query_for(sub, f"{self.describe()}: sub-domain {i}") for i, sub in enumerate(subs)]

    def query(self) -> Query:
        """The unpartitioned query (x1 and x2 both over the whole domain)."""
        return self.query_for(self.domain)

    def check(self, options=None, jobs: int = 1, split_disjuncts: bool = False,
              timeout: float | None = ...) -> PropertyResult:
        """Decide the property: sub-domain queries in order, or ``jobs`` at a time, stopping at a violation."""
        queries = self.queries()
        outcome = decide(queries, solver_options(options, timeout), jobs, split_disjuncts)
        return self.interpret(queries, outcome)

    def interpret(self, queries: list[Query], outcome) -> PropertyResult:
        result = base_result("global-robustness", self.describe(), self.parameters(), self.network, outcome, queries[0])
        result.subdomain_verdicts = [merge_verdict(v) for v in outcome.verdicts]
        if outcome.counterexample is not None:
            qi = outcome.query_index
            query = queries[qi]
            text = query.disjuncts[outcome.counterexample.disjunct].label
            sub = qi if len(queries) > 1 else None
            result.counterexample = pair_counterexample(query, outcome, self.norm, text, self.network, subdomain=sub)
        return result


def global_robustness(network: Network, domain, delta: float, epsilon: float, norm: str = "inf",
                      partitions: int = 1, options=None, jobs: int = 1, timeout: float | None = ...,
                      symmetric: bool = True) -> PropertyResult:
    """Check Def. 2 (see :class:`GlobalRobustness`)."""
    prop = GlobalRobustness(network, domain, delta, epsilon, norm, partitions, symmetric)
    return prop.check(options, jobs=jobs, timeout=timeout)
