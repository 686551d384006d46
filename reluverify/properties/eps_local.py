"""Def. 3: (delta, eps)-local robustness at a point.

``N`` is (delta, eps)-locally robust at ``x0`` when
``||x - x0|| <= delta  =>  |C(x, l) - C(x0, l)| < eps`` for every label ``l`` (and every ``x`` in the
domain, when one is given). It needs no label, so ties at the point do not matter.

The point's scores ``c = C(x0, .)`` are computed once with reluverify's float64 IR (the function
the solver reasons about) and enter the query as constants. The negation is one query over the
ball (see :mod:`reluverify.properties.ball`) with **one disjunct per label and sign**:

* ``y_l - c_l >= eps`` (the row ``-y_l <= -(c_l + eps)``): label ``l`` scores at least eps higher;
* ``c_l - y_l >= eps`` (the row ``y_l <= c_l - eps``): label ``l`` scores at least eps lower.

With ``eps = 0`` the property can never hold: ``x = x0`` itself gives ``|C(x0, l) - C(x0, l)| = 0``,
which is not ``< 0``; the query is ``sat`` and the counterexample is (a point at) ``x0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reluverify.network import Network
from reluverify.properties.ball import NORM_NAMES, ball_region, check_norm, check_radius
from reluverify.properties.common import base_result, decide, pair_counterexample, prepare_point, solver_options
from reluverify.properties.inputs import Domain
from reluverify.properties.result import PropertyResult
from reluverify.query import Disjunct, LinearConstraints, Query


@dataclass(frozen=True, eq=False)
class EpsLocalRobustness:
    """Def. 3 at ``point`` with radius ``delta`` in ``norm`` and output tolerance ``epsilon``."""

    network: Network
    point: np.ndarray
    delta: float
    epsilon: float
    norm: str = "inf"
    domain: Domain | None = None
    _scores: np.ndarray = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        x0, dom = prepare_point(self.network, self.point, self.domain)
        object.__setattr__(self, "point", x0)
        object.__setattr__(self, "domain", dom)
        object.__setattr__(self, "delta", check_radius(self.delta, "delta"))
        object.__setattr__(self, "epsilon", check_radius(self.epsilon, "epsilon"))
        object.__setattr__(self, "norm", check_norm(self.norm))
        object.__setattr__(self, "_scores", np.asarray(self.network.evaluate(x0), dtype=np.float64))

    @property
    def scores(self) -> np.ndarray:
        """``c = C(x0, .)`` by reluverify's float64 IR: the constants of the query."""
        return self._scores.copy()

    def describe(self) -> str:
        where = " in the domain" if self.domain is not None else ""
        return (
            f"(delta, eps)-local robustness (Def. 3) at the point, {NORM_NAMES[self.norm]} delta {self.delta:g}, "
            f"eps {self.epsilon:g}{where}"
        )

    def parameters(self) -> dict:
        return {
            "point": self.point.tolist(),
            "delta": self.delta,
            "epsilon": self.epsilon,
            "norm": self.norm,
            "domain": None if self.domain is None else self.domain.to_dict(),
            "scores": self._scores.tolist(),
        }

    def query(self) -> Query:
        n, m = self.network.input_size, self.network.output_size
        lower, upper = (None, None) if self.domain is None else (self.domain.lower, self.domain.upper)
        region = ball_region(self.point, self.delta, self.norm, lower, upper)
        width = n + region.num_auxiliary + m
        c, eps = self._scores, self.epsilon
        disjuncts = []
        for l in range(m):
            for sign, words in ((1.0, "higher"), (-1.0, "lower")):
                # sign * (y_l - c_l) >= eps   <=>   -sign * y_l <= -eps - sign * c_l
                row = np.zeros((1, width))
                row[0, width - m + l] = -sign
                text = f"label {l} scores >= eps {words} than at the point"
                constraints = LinearConstraints(row, np.array([-eps - sign * c[l]]), (text,))
                disjuncts.append(Disjunct(region.lower, region.upper, constraints, text))
        return Query(
            (self.network,),
            region.lower,
            region.upper,
            tuple(disjuncts),
            region.constraints,
            region.num_auxiliary,
            description=self.describe(),
        )

    def check(self, options=None, jobs: int = 1, split_disjuncts: bool | int | None = None,
              timeout: float | None = ...) -> PropertyResult:
        """Decide the property; ``jobs > 1`` shares the query's search among that many worker processes
        (:mod:`reluverify.solver.sharing`), stopping them all at the first counterexample.

        ``split_disjuncts=k`` instead splits the disjuncts into ``k`` groups decided in parallel
        (``True``: one task per disjunct; see :mod:`reluverify.properties.runner`).
        """
        query = self.query()
        split = False if split_disjuncts is None else split_disjuncts
        outcome = decide([query], solver_options(options, timeout), jobs, split)
        return self.interpret(query, outcome)

    def interpret(self, query: Query, outcome) -> PropertyResult:
        result = base_result("eps-local-robustness", self.describe(), self.parameters(), self.network, outcome, query)
        if outcome.counterexample is not None:
            text = query.disjuncts[outcome.counterexample.disjunct].label
            result.counterexample = pair_counterexample(query, outcome, self.norm, text, self.network, point=self.point)
        return result


def eps_local_robustness(network: Network, point, delta: float, epsilon: float, norm: str = "inf", domain=None,
                         options=None, jobs: int = 1, timeout: float | None = ...) -> PropertyResult:
    """Check Def. 3 (see :class:`EpsLocalRobustness`)."""
    return EpsLocalRobustness(network, point, delta, epsilon, norm, domain).check(options, jobs=jobs, timeout=timeout)
