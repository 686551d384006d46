"""The largest delta for which Def. 1 holds at a point, by binary search to a requested precision.

Def. 1 is monotone in delta (a larger ball, clipped to the same domain, contains the smaller one),
so the search keeps a bracket ``certified < refuted``:

* ``certified`` -- the largest delta proven robust (``unsat``); it starts at 0, which holds by
  definition once the point's label is unique (a tie at the point is reported, not searched);
* ``refuted`` -- the smallest delta known to have a counterexample, with that counterexample.
  When a probe at delta finds a counterexample at distance ``d <= delta``, ``refuted`` becomes ``d``
  (the ball of radius ``d`` already holds it).

The first probe is at ``upper`` (default: the farthest the domain reaches from the point, beyond
which the clipped ball no longer grows; ``1.0`` without a domain). If it is robust the search ends
there. Otherwise each probe bisects the bracket, until ``refuted - certified <= precision``
(``converged``). A probe that ends ``unknown`` or ``timeout`` moves neither end; the search goes
on below it (so ``certified`` may still grow) and reports ``converged = False`` if the bracket
cannot be closed.

``timeout`` is the budget of the whole search; each probe gets what is left of it (or at most
``probe_timeout`` seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from reluverify.errors import SpecError
from reluverify.network import Network
from reluverify.properties.ball import NORM_NAMES, check_norm, check_radius, check_reach
from reluverify.properties.common import network_info, prepare_point, solver_options
from reluverify.properties.local import LocalRobustness
from reluverify.properties.inputs import Domain
from reluverify.properties.result import NOT_ROBUST, ROBUST, TIE, PropertyCounterexample, network_notes
from reluverify.solver.result import Statistics

MAX_PROBES = 200


@dataclass
class MaxDeltaResult:
    """The bracket ``certified < refuted`` around the largest robust delta (see the module docstring)."""

    certified: float | None
    refuted: float | None
    counterexample: PropertyCounterexample | None
    precision: float
    norm: str
    upper: float
    converged: bool
    label: int | None = None
    ties: tuple[int, ...] = ()
    probes: list[dict] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)
    seconds: float = 0.0
    reason: str = ""
    parameters: dict = field(default_factory=dict)
    network: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.ties:
            return TIE
        if self.refuted is None and self.certified == self.upper:
            return "robust up to the upper limit"
        return "converged" if self.converged else "not converged"

    @property
    def splits(self) -> int:
        return int(self.statistics.get("relu_splits", 0)) + int(self.statistics.get("input_splits", 0))

    def to_dict(self) -> dict:
        return {
            "kind": "max-delta",
            "verdict": self.verdict,
            "certified_delta": self.certified,
            "refuted_delta": self.refuted,
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
            "precision": self.precision,
            "norm": self.norm,
            "upper": self.upper,
            "converged": self.converged,
            "label": self.label,
            "ties": list(self.ties),
            "probes": self.probes,
            "statistics": self.statistics,
            "splits": self.splits,
            "seconds": self.seconds,
            "reason": self.reason,
            "parameters": self.parameters,
            "network": self.network,
            **({"notes": network_notes(self.network)} if network_notes(self.network) else {}),
        }

    def summary(self) -> str:
        s = self.statistics
        inside = ", in the domain" if self.parameters.get("domain") is not None else ""
        lines = [self.verdict, f"property  maximal delta for Def. 1 at the point (label {self.label}), "
                 f"{NORM_NAMES[self.norm]}{inside}, precision {self.precision:g}"]
        lines += [f"note      {note}" for note in network_notes(self.network)]
        if self.ties:
            lines.append(f"tie       labels {', '.join(map(str, self.ties))} share the top score at the point")
        else:
            lines.append(f"certified {self.certified:.6g}   (robust: proven)")
            if self.refuted is None:
                lines.append(f"refuted   none up to {self.upper:g}")
            else:
                lines.append(f"refuted   {self.refuted:.6g}   (a confirmed counterexample at this distance)")
        lines.append(
            f"time      {self.seconds:.3f} s   probes {len(self.probes)}   splits {self.splits} "
            f"(relu {s.get('relu_splits', 0)}, input {s.get('input_splits', 0)})   boxes {s.get('boxes', 0)}"
        )
        if self.reason:
            lines.append(f"reason    {self.reason}")
        cex = self.counterexample
        if cex is not None:
            lines.append(f"violated  {cex.violated}")
            with np.printoptions(precision=6, suppress=True, linewidth=110, threshold=24):
                lines.append(f"input     {cex.inputs}")
                lines.append(f"  outputs {cex.outputs}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def domain_reach(point: np.ndarray, domain: Domain, norm: str) -> float:
    """The largest distance from ``point`` to a point of ``domain``."""
    far = np.maximum(point - domain.lower, domain.upper - point)
    return float(far.max() if norm == "inf" else far.sum()) if far.size else 0.0


def max_delta(
    network: Network,
    point,
    precision: float = 1e-3,
    norm: str = "inf",
    domain=None,
    upper: float | None = None,
    decision: str = "max",
    options=None,
    timeout: float | None = ...,
    probe_timeout: float | None = None,
    jobs: int | None = None,
) -> MaxDeltaResult:
    """Binary search for the largest delta at which Def. 1 holds (see the module docstring).

    ``options`` (a ``SolverOptions``) hold the budget of the whole search (``timeout``) and the worker
    processes of each probe (``parallel.jobs``); ``timeout`` and ``jobs``, when given, replace them.
    """
    start = time.monotonic()
    options = solver_options(options, timeout, jobs)
    x0, dom = prepare_point(network, point, domain)
    norm = check_norm(norm)
    precision = check_radius(precision, "precision")
    if precision <= 0:
        raise SpecError("precision must be > 0")
    if upper is None:
        upper = domain_reach(x0, dom, norm) if dom is not None else 1.0
    upper = check_radius(upper, "upper")
    check_reach(x0, upper, dom, what="upper")
    deadline = None if options.timeout is None else start + options.timeout
    base = LocalRobustness(network, x0, 0.0, norm, dom, decision)
    parameters = {"point": x0.tolist(), "norm": norm, "precision": precision, "upper": upper,
                  "domain": None if dom is None else dom.to_dict(), "decision": decision}
    result = MaxDeltaResult(None, None, None, precision, norm, upper, False, label=base.label, ties=base.ties,
                            parameters=parameters, network=network_info(network))
    if base.ties:
        result.reason = f"labels {', '.join(map(str, base.ties))} share the top score at the point: N(x0) is ambiguous"
        result.seconds = time.monotonic() - start
        return result

    stats = Statistics()
    certified, refuted, ceiling = 0.0, None, upper
    cex = None
    reasons: list[str] = []
    probe = upper
    for _ in range(MAX_PROBES):
        top = ceiling if refuted is None else min(refuted, ceiling)
        if refuted is not None and refuted - certified <= precision:
            break
        if refuted is None and certified >= upper:
            break
        if top - certified <= precision and refuted is None and top < upper:
            break  # the bracket is closed by undecided probes only
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            reasons.append("time budget exhausted")
            break
        budget = left if probe_timeout is None else (probe_timeout if left is None else min(left, probe_timeout))
        prop = LocalRobustness(network, x0, probe, norm, dom, decision)
        outcome = prop.check(options.with_timeout(budget))
        stats.merge(Statistics(**outcome.statistics))
        record = {"delta": probe, "verdict": outcome.verdict, "seconds": outcome.seconds}
        if outcome.verdict == ROBUST:
            certified = max(certified, probe)
        elif outcome.verdict == NOT_ROBUST:
            distance = outcome.counterexample.distance
            record["counterexample_distance"] = distance
            new = min(probe, distance) if distance > certified else probe
            if refuted is None or new < refuted:
                refuted, cex = new, outcome.counterexample
        else:
            ceiling = min(ceiling, probe)
            reasons.append(f"delta {probe:g}: {outcome.verdict} ({outcome.reason})")
        result.probes.append(record)
        top = ceiling if refuted is None else min(refuted, ceiling)
        probe = certified + (top - certified) / 2.0

    result.certified = certified
    result.refuted = refuted
    result.counterexample = cex
    result.converged = refuted is not None and refuted - certified <= precision
    result.statistics = stats.to_dict()
    result.reason = "; ".join(reasons)
    result.seconds = time.monotonic() - start
    return result
