"""Def. 1: delta-local robustness at a point, for the L-infinity and L1 distances.

``N`` is delta-locally robust at ``x0`` when ``||x - x0|| <= delta  =>  N(x) = N(x0)`` for every
``x`` (in the domain, when one is given). The label ``N(x0)`` is **computed** at the point with
reluverify's float64 IR: the top score (``decision="max"``, classifiers) or the lowest score
(``decision="min"``, e.g. ACAS Xu, whose advisory is the minimal cost).

The negation, compiled to one :class:`~reluverify.query.Query` over ``v = [x]`` (L-infinity) or
``v = [x, t]`` (L1, see :mod:`reluverify.properties.ball`), has one disjunct per other label ``l``:

* ``decision="max"``: ``C(x, l) >= C(x, N(x0))``, the row ``y_N(x0) - y_l <= 0``;
* ``decision="min"``: ``C(x, l) <= C(x, N(x0))``, the row ``y_l - y_N(x0) <= 0``.

Non-strict on purpose: a point on the decision boundary (a tie between ``l`` and ``N(x0)``) breaks
the property, since ``N`` is not determined there. The disjuncts are ordered by the margin at
``x0``: the closest competitor first (the likeliest violation, the paper's prioritisation).

**Ties at the point.** When several labels share the top score at ``x0`` itself -- within
``tie_tolerance * (1 + |C(x0, a)| + |C(x0, b)|)``, the same relative slack the solver uses to confirm
a counterexample on onnxruntime's float32 outputs -- ``N(x0)`` is ambiguous. No label is guessed:
the check returns the verdict ``tie`` with the tied labels in ``ties``, and runs no query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reluverify.errors import SpecError
from reluverify.network import Network
from reluverify.properties.ball import NORM_NAMES, ball_region, check_norm, check_radius
from reluverify.properties.common import (
    base_result,
    check_decision,
    decide,
    network_info,
    pair_counterexample,
    prepare_point,
    solver_options,
)
from reluverify.properties.inputs import Domain
from reluverify.properties.result import TIE, PropertyResult
from reluverify.query import Disjunct, LinearConstraints, Query

DEFAULT_TIE_TOLERANCE = 1e-6
"""Relative slack under which two scores at the point count as tied (the solver's confirm tolerance)."""


@dataclass(frozen=True, eq=False)
class LocalRobustness:
    """Def. 1 at ``point`` with radius ``delta`` in ``norm`` (``"inf"`` or ``"1"``), within ``domain``."""

    network: Network
    point: np.ndarray
    delta: float
    norm: str = "inf"
    domain: Domain | None = None
    decision: str = "max"
    tie_tolerance: float = DEFAULT_TIE_TOLERANCE
    _scores: np.ndarray = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        x0, dom = prepare_point(self.network, self.point, self.domain)
        object.__setattr__(self, "point", x0)
        object.__setattr__(self, "domain", dom)
        object.__setattr__(self, "delta", check_radius(self.delta, "delta"))
        object.__setattr__(self, "norm", check_norm(self.norm))
        object.__setattr__(self, "decision", check_decision(self.decision))
        object.__setattr__(self, "_scores", np.asarray(self.network.evaluate(x0), dtype=np.float64))
        if self.network.output_size < 2:
            raise SpecError("local robustness needs a network with at least two outputs (labels)")

    # ------------------------------------------------------------ the point
    @property
    def scores(self) -> np.ndarray:
        """``C(x0, l)`` for every label, by reluverify's float64 IR."""
        return self._scores.copy()

    def _preference(self) -> np.ndarray:
        """Scores turned so that larger is preferred."""
        return self._scores if self.decision == "max" else -self._scores

    @property
    def ties(self) -> tuple[int, ...]:
        """The labels sharing the top score at the point (empty when the label is unique)."""
        pref = self._preference()
        top = int(np.argmax(pref))
        gap = pref[top] - pref
        slack = self.tie_tolerance * (1.0 + np.abs(pref[top]) + np.abs(pref))
        tied = tuple(int(l) for l in np.flatnonzero(gap <= slack))
        return tied if len(tied) > 1 else ()

    @property
    def label(self) -> int | None:
        """``N(x0)``; None when the top score is tied."""
        return None if self.ties else int(np.argmax(self._preference()))

    def describe(self) -> str:
        where = " in the domain" if self.domain is not None else ""
        label = f"label {self.label}" if self.label is not None else f"tie between labels {list(self.ties)}"
        rule = "" if self.decision == "max" else ", label = lowest score"
        return (
            f"delta-local robustness (Def. 1) at the point ({label}{rule}), "
            f"{NORM_NAMES[self.norm]} delta {self.delta:g}{where}"
        )

    def parameters(self) -> dict:
        return {
            "point": self.point.tolist(),
            "delta": self.delta,
            "norm": self.norm,
            "domain": None if self.domain is None else self.domain.to_dict(),
            "decision": self.decision,
            "scores": self._scores.tolist(),
        }

    # ------------------------------------------------------------ compiling
    def query(self) -> Query:
        """The negated property as a query (``sat`` iff the property is violated)."""
        label = self.label
        if label is None:
            raise SpecError(f"the point's label is ambiguous: labels {list(self.ties)} share the top score")
        n, m = self.network.input_size, self.network.output_size
        lower, upper = (None, None) if self.domain is None else (self.domain.lower, self.domain.upper)
        region = ball_region(self.point, self.delta, self.norm, lower, upper)
        width = n + region.num_auxiliary + m
        pref = self._preference()
        others = sorted((l for l in range(m) if l != label), key=lambda l: pref[label] - pref[l])
        relation = ">=" if self.decision == "max" else "<="
        disjuncts = []
        for l in others:
            row = np.zeros((1, width))
            sign = 1.0 if self.decision == "max" else -1.0
            row[0, width - m + label] = sign
            row[0, width - m + l] = -sign
            text = f"label {l} scores {relation} label {label}"
            disjuncts.append(Disjunct(region.lower, region.upper, LinearConstraints(row, np.zeros(1), (text,)), text))
        return Query(
            (self.network,),
            region.lower,
            region.upper,
            tuple(disjuncts),
            region.constraints,
            region.num_auxiliary,
            description=self.describe(),
        )

    # -------------------------------------------------------------- solving
    def check(self, options=None, jobs: int = 1, split_disjuncts: bool | int | None = None,
              timeout: float | None = ...) -> PropertyResult:
        """Decide the property; ``jobs > 1`` shares the query's search among that many worker processes
        (:mod:`reluverify.solver.sharing`), stopping them all at the first counterexample.

        ``split_disjuncts=k`` instead splits the disjuncts into ``k`` groups decided in parallel
        (``True``: one task per disjunct; see :mod:`reluverify.properties.runner`).
        """
        if self.label is None:
            return PropertyResult(
                kind="local-robustness",
                verdict=TIE,
                description=self.describe(),
                parameters=self.parameters(),
                ties=self.ties,
                reason=f"labels {', '.join(map(str, self.ties))} share the top score at the point, so N(x0) "
                "is ambiguous; no label is guessed",
                network=network_info(self.network),
            )
        query = self.query()
        split = False if split_disjuncts is None else split_disjuncts
        outcome = decide([query], solver_options(options, timeout), jobs, split)
        return self.interpret(query, outcome)

    def interpret(self, query: Query, outcome) -> PropertyResult:
        result = base_result("local-robustness", self.describe(), self.parameters(), self.network, outcome, query)
        result.label = self.label
        if outcome.counterexample is not None:
            text = query.disjuncts[outcome.counterexample.disjunct].label
            result.counterexample = pair_counterexample(query, outcome, self.norm, text, self.network, point=self.point)
        return result


def local_robustness(network: Network, point, delta: float, norm: str = "inf", domain=None,
                     decision: str = "max", options=None, jobs: int = 1, timeout: float | None = ...) -> PropertyResult:
    """Check Def. 1 (see :class:`LocalRobustness`)."""
    prop = LocalRobustness(network, point, delta, norm, domain, decision)
    return prop.check(options, jobs=jobs, timeout=timeout)
