"""What every property shares: compiled to queries, decided by the runner, read back as a result.

A property is a frozen value (a network and the property's parameters) whose class derives from
:class:`Property` and says what is particular to it:

* ``kind`` -- its name: ``PropertyResult.kind``, a sweep row's kind, its key in
  :mod:`~reluverify.properties.registry`;
* :meth:`~Property.describe` and :meth:`~Property.parameters` -- the property in words and as plain data;
* :meth:`~Property.queries` -- its negation as queries, ``sat`` exactly when the property is violated
  (by default the single :meth:`~Property.query`);
* :meth:`~Property.counterexample` -- the runner's counterexample as the pair of inputs that breaks it;
* :meth:`~Property.settled` -- a result reached without the solver (Def. 1 at a tied point), if any.

The rest is here once: :meth:`~Property.check` decides the queries with
:func:`~reluverify.properties.runner.run_queries` and :meth:`~Property.interpret` reads the runner's
:class:`~reluverify.properties.runner.Outcome` back as a
:class:`~reluverify.properties.result.PropertyResult`.

:class:`BallProperty` adds what the properties at a point share: the point and its scores, the ball
of radius delta around it (cut to an optional domain), the query over that ball assembled from one
row over the outputs per disjunct, and counterexamples paired with the point.

A check's :class:`~reluverify.solver.options.SolverOptions` carry its time budget (``timeout``) and
its worker processes (``parallel.jobs``: disjuncts or sub-domains in parallel, or a single query's
search shared among them; see :mod:`reluverify.properties.runner`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from reluverify.network import Network
from reluverify.properties.ball import ball_region, check_norm, check_radius, check_reach
from reluverify.properties.common import (
    final_softmax_note,
    network_info,
    pair_counterexample,
    prepare_point,
    solver_options,
)
from reluverify.properties.result import PropertyCounterexample, PropertyResult, robustness_verdict
from reluverify.properties.runner import Outcome, run_queries
from reluverify.query import Disjunct, LinearConstraints, Query


class Property:
    """The base of every property (see the module docstring)."""

    kind: ClassVar[str] = ""
    no_certificate: ClassVar[str] = ""
    """Why no certificate of this property can be written (:mod:`reluverify.proofs`), where none can."""
    order_only: ClassVar[bool] = False
    """True when the property reads only the order of each input's scores (Def. 1's label), which a
    final Softmax keeps: only such a property is checked on a network imported without one."""
    network: Network

    # ------------------------------------------------------------ what a property says
    def describe(self) -> str:
        raise NotImplementedError

    def parameters(self) -> dict:
        raise NotImplementedError

    def query(self) -> Query:
        """The negated property as one query (``sat`` iff the property is violated)."""
        raise NotImplementedError

    def queries(self) -> list[Query]:
        """The queries :meth:`check` decides: the property is violated iff one of them is ``sat``."""
        return [self.query()]

    def settled(self) -> PropertyResult | None:
        """The result when it is known without running a query (None: the queries decide)."""
        return None

    def counterexample(self, query: Query, outcome: Outcome) -> PropertyCounterexample:
        """``outcome``'s counterexample (found on ``query``) as the pair of inputs that breaks the property."""
        raise NotImplementedError

    def check_network(self) -> None:
        """Refuse, with one line, a network whose dropped final Softmax would change the answer
        (the constructors call this; every query is checked again, :mod:`reluverify.query`)."""
        final_softmax_note(self.network, type(self))

    # ------------------------------------------------------------ deciding
    def check(self, options=None, jobs: int | None = None, split_disjuncts: bool | int | None = None,
              timeout: float | None = ...) -> PropertyResult:
        """Decide the property under ``options`` (a ``SolverOptions``; default ones when None).

        ``options.parallel.jobs > 1`` shares a single query's search among that many worker processes
        (:mod:`reluverify.solver.sharing`), or runs several queries (sub-domains) in parallel, stopping
        them all at the first counterexample. ``split_disjuncts=k`` instead splits the disjuncts into
        ``k`` groups decided in parallel (``True``: one task per disjunct; see
        :mod:`reluverify.properties.runner`). ``jobs`` and ``timeout``, when given, replace the
        options' ``parallel.jobs`` and ``timeout`` (the command line and the API set them in the
        options instead).
        """
        options = solver_options(options, timeout, jobs)
        settled = self.settled()
        return settled if settled is not None else self.decide(options, split_disjuncts)

    def decide(self, options, split_disjuncts: bool | int | None = None) -> PropertyResult:
        """Run the property's queries under ``options`` and interpret the outcome."""
        queries = self.queries()
        split = False if split_disjuncts is None else split_disjuncts
        return self.interpret(queries, run_queries(queries, options, split_disjuncts=split))

    def interpret(self, queries: Sequence[Query] | Mapping[int, Query], outcome: Outcome) -> PropertyResult:
        """The property's result for the runner's ``outcome``.

        ``queries`` are the queries decided: a list, or a mapping of query index to query that holds
        at least the violated one (the result's disjunct labels are those of the first query).
        """
        listed = queries if isinstance(queries, Mapping) else dict(enumerate(queries))
        first = next(iter(listed.values()), None) or self.query()
        result = PropertyResult(
            kind=self.kind,
            verdict=robustness_verdict(outcome.verdict),
            description=self.describe(),
            parameters=self.parameters(),
            solver_verdict=outcome.verdict,
            statistics=outcome.statistics.to_dict(),
            seconds=outcome.seconds,
            reason=outcome.reason,
            queries=outcome.tasks,
            disjunct_verdicts=list(outcome.verdicts[0]) if len(outcome.verdicts) == 1 else [],
            disjunct_labels=[d.label for d in first.disjuncts],
            network=network_info(self.network),
        )
        if outcome.counterexample is not None:
            result.counterexample = self.counterexample(listed[outcome.query_index], outcome)
        return result

    def exact_check(self, counterexample: PropertyCounterexample) -> dict:
        """``counterexample`` re-evaluated in exact rational arithmetic on the network's weights
        (:func:`reluverify.exact.exact_check` on :meth:`query`), as a dict."""
        from reluverify.exact import exact_check

        return exact_check(self.query(), counterexample.query_inputs, counterexample.disjunct).to_dict()


def violated(query: Query, outcome: Outcome) -> str:
    """The words of the disjunct that ``outcome``'s counterexample satisfies."""
    return query.disjuncts[outcome.counterexample.disjunct].label


class BallProperty(Property):
    """A property of the ball of radius ``delta`` around ``point`` in ``norm``, cut to ``domain``.

    A subclass is a frozen dataclass with the fields ``network``, ``point``, ``delta``, ``norm``,
    ``domain`` and ``_scores`` (not an init field); its ``__post_init__`` calls :meth:`_prepare`.
    """

    point: np.ndarray
    delta: float
    norm: str
    domain: object
    _scores: np.ndarray

    def _prepare(self, *radii: str) -> None:
        """Check the network, the point, the domain, delta (and the fields named in ``radii``, as radii),
        the norm and that the ball stays in float32's range (:func:`check_reach`); compute the point's
        scores."""
        self.check_network()
        x0, dom = prepare_point(self.network, self.point, self.domain)
        object.__setattr__(self, "point", x0)
        object.__setattr__(self, "domain", dom)
        for name in ("delta", *radii):
            object.__setattr__(self, name, check_radius(getattr(self, name), name))
        object.__setattr__(self, "norm", check_norm(self.norm))
        check_reach(x0, self.delta, dom)
        object.__setattr__(self, "_scores", np.asarray(self.network.evaluate(x0), dtype=np.float64))

    @property
    def scores(self) -> np.ndarray:
        """``C(x0, l)`` for every label, by reluverify's float64 IR."""
        return self._scores.copy()

    def where(self) -> str:
        """`` in the domain`` when the ball is cut to one (for :meth:`describe`)."""
        return " in the domain" if self.domain is not None else ""

    def domain_dict(self) -> dict | None:
        return None if self.domain is None else self.domain.to_dict()

    def ball_query(self, rows: list[tuple[np.ndarray, float, str]]) -> Query:
        """The query over the ball with one disjunct per ``(coefficients, rhs, words)``: the row
        ``coefficients @ y <= rhs`` over the network's outputs ``y``."""
        n, m = self.network.input_size, self.network.output_size
        lower, upper = (None, None) if self.domain is None else (self.domain.lower, self.domain.upper)
        region = ball_region(self.point, self.delta, self.norm, lower, upper)
        width = n + region.num_auxiliary + m
        disjuncts = []
        for coefficients, rhs, text in rows:
            row = np.zeros((1, width))
            row[0, width - m:] = coefficients
            constraints = LinearConstraints(row, np.array([rhs], dtype=np.float64), (text,))
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

    def counterexample(self, query: Query, outcome: Outcome) -> PropertyCounterexample:
        return pair_counterexample(query, outcome, self.norm, violated(query, outcome), self.network, point=self.point)
