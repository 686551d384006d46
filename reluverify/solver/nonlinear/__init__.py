"""Sound verification of networks with any activation of :mod:`reluverify.elementwise` and elementwise
products (SRU classifiers, attention, physics models).

No piecewise-linear encoding captures these operations exactly, so the procedure relaxes them
and refines: linear relaxations (:mod:`.relaxations`), bounds over the DAG (:mod:`.bounds`),
falsification (:mod:`.attack`, :mod:`.gradient`) and branch and bound over input boxes
(:mod:`.search`). ``solve_nonlinear(query, options)`` answers ``sat`` only with a counterexample
confirmed by onnxruntime, ``unsat`` only when every box is refuted by sound bounds, and
``timeout``/``unknown`` otherwise.

Modules: ``relaxations`` (tangent/chord lines, McCormick planes), ``bounds`` (interval and
back-substitution bounds, batched over boxes), ``gradient`` (numpy reverse mode through the IR),
``attack`` (sampling and PGD), ``problem`` (a query as one network and its targets), ``region``
(input rows, e.g. L1 balls), ``splitting`` (input or relaxation-interval splits), ``options``
(:class:`NonlinearOptions`), ``search`` (the procedure).
"""

from reluverify.solver.nonlinear.options import NonlinearOptions
from reluverify.solver.nonlinear.search import solve_nonlinear

__all__ = ["NonlinearOptions", "solve_nonlinear"]
