"""Def. 3: (delta, eps)-local robustness at a point.

``N`` is (delta, eps)-locally robust at ``x0`` when
``||x - x0|| <= delta  =>  |C(x, l) - C(x0, l)| < eps`` for every label ``l`` (and every ``x`` in the
domain, when one is given). It needs no label, so ties at the point do not matter.

The point's scores ``c = C(x0, .)`` are computed once with reluverify's float64 IR (the function
the solver reasons about) and enter the query as constants. The negation is one query over the
ball (see :mod:`reluverify.properties.ball`) with **one disjunct per label and sign**:

* ``y_l - c_l >= eps`` (the row ``-y_l <= -(c_l + eps)``), in words "label l's score is at least eps
  above its score at the point";
* ``c_l - y_l >= eps`` (the row ``y_l <= c_l - eps``): "... at least eps below ...".

With ``eps = 0`` the property can never hold: ``x = x0`` itself gives ``|C(x0, l) - C(x0, l)| = 0``,
which is not ``< 0``; the query is ``sat`` and the counterexample is (a point at) ``x0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reluverify.network import Network
from reluverify.properties.ball import NORM_NAMES
from reluverify.properties.base import BallProperty
from reluverify.properties.common import solver_options
from reluverify.properties.inputs import Domain
from reluverify.properties.result import PropertyResult
from reluverify.query import Query


@dataclass(frozen=True, eq=False)
class EpsLocalRobustness(BallProperty):
    """Def. 3 at ``point`` with radius ``delta`` in ``norm`` and output tolerance ``epsilon``."""

    kind = "eps-local-robustness"

    network: Network
    point: np.ndarray
    delta: float
    epsilon: float
    norm: str = "inf"
    domain: Domain | None = None
    _scores: np.ndarray = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._prepare("epsilon")

    def describe(self) -> str:
        return (
            f"(delta, eps)-local robustness (Def. 3) at the point, {NORM_NAMES[self.norm]} delta {self.delta:g}, "
            f"eps {self.epsilon:g}{self.where()}"
        )

    def parameters(self) -> dict:
        return {
            "point": self.point.tolist(),
            "delta": self.delta,
            "epsilon": self.epsilon,
            "norm": self.norm,
            "domain": self.domain_dict(),
            "scores": self._scores.tolist(),
        }

    def query(self) -> Query:
        """The negated property: one disjunct per label and sign (the point's scores are its constants)."""
        m = self.network.output_size
        c, eps = self._scores, self.epsilon
        rows = []
        for l in range(m):
            for sign, words in ((1.0, "above"), (-1.0, "below")):
                # sign * (y_l - c_l) >= eps   <=>   -sign * y_l <= -eps - sign * c_l
                coefficients = np.zeros(m)
                coefficients[l] = -sign
                rows.append((coefficients, -eps - sign * c[l],
                             f"label {l}'s score is at least eps {words} its score at the point"))
        return self.ball_query(rows)


def eps_local_robustness(network: Network, point, delta: float, epsilon: float, norm: str = "inf", domain=None,
                         options=None, jobs: int | None = None, timeout: float | None = ...) -> PropertyResult:
    """Check Def. 3 (see :class:`EpsLocalRobustness`); ``jobs`` and ``timeout`` replace the options' own."""
    prop = EpsLocalRobustness(network, point, delta, epsilon, norm, domain)
    return prop.check(solver_options(options, timeout, jobs))
