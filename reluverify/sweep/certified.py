"""The certified robust accuracy of one network on evaluation points, computed as a small sweep.

:func:`certify` is what ``reluverify verify`` without ``--point`` and
:meth:`reluverify.api.Verifier.certified_accuracy` both run: every point x delta (x epsilon) is one
query of a sweep plan (Def. 1, or Def. 3 with an epsilon; :func:`~reluverify.sweep.plan.make_plan`),
run by the sweep's backend and loop (:class:`~reluverify.sweep.backends.LocalBackend` with ``jobs``
worker processes, :func:`~reluverify.sweep.run.run_sweep`) into a temporary results store, ``timeout``
seconds per query; the rows are then summarised by :func:`~reluverify.sweep.accuracy.robust_accuracy`.
The answer is a :class:`CertifiedAccuracy`.

The network may come from an ONNX file or be in memory: the workers find it in the per-process
cache (:func:`~reluverify.sweep.worker.remember_network`, keyed by its hash), so nothing is reloaded.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from reluverify.properties.inputs import Domain
from reluverify.sweep.accuracy import PointOutcome, RobustAccuracy, network_labels, robust_accuracy


@dataclass
class CertifiedAccuracy:
    """The certified robust accuracy per (delta, epsilon) and every point's outcome.

    * ``per_delta`` -- one :class:`~reluverify.sweep.accuracy.RobustAccuracy` per (delta, epsilon),
      deltas increasing: ``certified``, ``robust``, ``not_robust``, ``tie``, ``unknown``, ``timeout``,
      ``error``, ``misclassified``, ``total`` and ``accuracy`` (``certified / total``);
    * ``points`` -- one :class:`~reluverify.sweep.accuracy.PointOutcome` per point and (delta,
      epsilon), in the same order: verdict, the network's label, the true label, ``certified``;
    * ``labels_known`` -- whether true labels were given (else a point is certified when robust);
    * ``rows`` -- the sweep rows behind them (with each refuted query's counterexample).
    """

    per_delta: list[RobustAccuracy]
    points: list[PointOutcome]
    labels_known: bool
    rows: list[dict] = field(default_factory=list, repr=False)

    def at(self, delta: float, epsilon: float | None = None) -> RobustAccuracy:
        """The entry of ``delta`` (and ``epsilon``); a KeyError when it was not checked."""
        for entry in self.per_delta:
            if entry.delta == float(delta) and entry.epsilon == (None if epsilon is None else float(epsilon)):
                return entry
        raise KeyError(f"delta {delta:g}" + ("" if epsilon is None else f", epsilon {epsilon:g}") + " was not checked")

    def summary(self) -> str:
        """One line per (delta, epsilon), as ``reluverify verify`` prints them."""
        return "\n".join(entry.line(self.labels_known) for entry in self.per_delta)

    def to_dict(self) -> dict:
        return {"labels_known": self.labels_known, "accuracy": [entry.to_dict() for entry in self.per_delta],
                "per_point": [outcome.to_dict() for outcome in self.points]}

    def __str__(self) -> str:
        return self.summary()


def certify(network, points: np.ndarray, deltas, epsilons=(None,), *, true_labels=None, norm: str = "inf",
            decision: str = "max", domain: Domain | None = None, jobs: int = 1, timeout: float | None = 60.0,
            strategy: str = "auto", progress: bool | None = None) -> CertifiedAccuracy:
    """Check every point at every delta (and epsilon) and summarise (see the module docstring).

    ``points`` is ``(k, n)`` float64, already checked; ``true_labels`` one integer per point or None;
    ``domain`` cuts every ball (the points must lie in it). ``progress``: the sweep's bar on stderr
    (None: only when stderr is a terminal).
    """
    from reluverify.sweep.backends import LocalBackend
    from reluverify.sweep.plan import NetworkRef, make_plan
    from reluverify.sweep.run import run_sweep
    from reluverify.sweep.store import ResultStore
    from reluverify.sweep.worker import remember_network

    key = remember_network(network)
    path = os.path.abspath(network.source_path) if network.source_path else "(in-memory network)"
    ref = NetworkRef(path, key, network.input_size)
    bounds = None if domain is None else (domain.lower, domain.upper)
    plan = make_plan([ref], points, deltas, list(epsilons), norm, decision, bounds)
    backend = LocalBackend(jobs, timeout=timeout)
    with tempfile.TemporaryDirectory(prefix="reluverify-certify-") as folder:
        with ResultStore(os.path.join(folder, "points.sqlite")) as store:
            run_sweep(plan, store, backend, {"strategy": strategy}, progress=progress)
            rows = store.rows([job.key for job in plan])
    labels = network_labels(network.evaluate(points), decision)
    table, outcomes = robust_accuracy(rows, labels, true_labels)
    return CertifiedAccuracy(table, outcomes, true_labels is not None, rows)
