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
from reluverify.properties.base import BallProperty
from reluverify.properties.ball import NORM_NAMES
from reluverify.properties.common import check_decision, network_info, solver_options
from reluverify.properties.inputs import Domain
from reluverify.properties.result import TIE, PropertyResult
from reluverify.query import Query

DEFAULT_TIE_TOLERANCE = 1e-6
"""Relative slack under which two scores at the point count as tied (the solver's confirm tolerance)."""


@dataclass(frozen=True, eq=False)
class LocalRobustness(BallProperty):
    """Def. 1 at ``point`` with radius ``delta`` in ``norm`` (``"inf"`` or ``"1"``), within ``domain``."""

    kind = "local-robustness"
    order_only = True  # the label is the top (or lowest) score: a final Softmax keeps it

    network: Network
    point: np.ndarray
    delta: float
    norm: str = "inf"
    domain: Domain | None = None
    decision: str = "max"
    tie_tolerance: float = DEFAULT_TIE_TOLERANCE
    _scores: np.ndarray = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._prepare()
        object.__setattr__(self, "decision", check_decision(self.decision))
        if self.network.output_size < 2:
            raise SpecError("local robustness needs a network with at least two outputs (labels)")

    # ------------------------------------------------------------ the point
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
        label = f"label {self.label}" if self.label is not None else f"tie between labels {list(self.ties)}"
        rule = "" if self.decision == "max" else ", label = lowest score"
        return (
            f"delta-local robustness (Def. 1) at the point ({label}{rule}), "
            f"{NORM_NAMES[self.norm]} delta {self.delta:g}{self.where()}"
        )

    def parameters(self) -> dict:
        return {
            "point": self.point.tolist(),
            "delta": self.delta,
            "norm": self.norm,
            "domain": self.domain_dict(),
            "decision": self.decision,
            "scores": self._scores.tolist(),
        }

    # ------------------------------------------------------------ compiling
    def query(self) -> Query:
        """The negated property as a query (``sat`` iff the property is violated)."""
        label = self.label
        if label is None:
            raise SpecError(f"the point's label is ambiguous: labels {list(self.ties)} share the top score")
        m = self.network.output_size
        pref = self._preference()
        others = sorted((l for l in range(m) if l != label), key=lambda l: pref[label] - pref[l])
        relation = ">=" if self.decision == "max" else "<="
        sign = 1.0 if self.decision == "max" else -1.0
        rows = []
        for l in others:
            coefficients = np.zeros(m)
            coefficients[label], coefficients[l] = sign, -sign
            rows.append((coefficients, 0.0, f"label {l} scores {relation} label {label}"))
        return self.ball_query(rows)

    # -------------------------------------------------------------- solving
    def settled(self) -> PropertyResult | None:
        """A tie at the point: the verdict ``tie``, and no query runs."""
        if self.label is not None:
            return None
        return PropertyResult(
            kind=self.kind,
            verdict=TIE,
            description=self.describe(),
            parameters=self.parameters(),
            ties=self.ties,
            reason=f"labels {', '.join(map(str, self.ties))} share the top score at the point, so N(x0) "
            "is ambiguous; no label is guessed",
            network=network_info(self.network),
        )

    def interpret(self, queries, outcome) -> PropertyResult:
        result = super().interpret(queries, outcome)
        result.label = self.label
        return result


def local_robustness(network: Network, point, delta: float, norm: str = "inf", domain=None,
                     decision: str = "max", options=None, jobs: int | None = None,
                     timeout: float | None = ...) -> PropertyResult:
    """Check Def. 1 (see :class:`LocalRobustness`); ``jobs`` and ``timeout`` replace the options' own."""
    prop = LocalRobustness(network, point, delta, norm, domain, decision)
    return prop.check(solver_options(options, timeout, jobs))
