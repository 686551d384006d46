"""The threshold of Def. 2: the largest change of any score over the pairs of a domain at distance delta.

``eps*(delta) = sup max_l |C(x1, l) - C(x2, l)|`` over ``x1, x2`` in ``D`` with ``||x1 - x2|| <= delta``:
the network is (delta, eps)-globally robust on ``D`` exactly when ``eps > eps*(delta)``. For each delta
it is bracketed (:mod:`reluverify.solver.pair_search`), anytime: ``upper`` is certified (the network is
(delta, eps)-globally robust for every ``eps > upper``), ``lower`` is witnessed by a pair whose two
inputs onnxruntime evaluated (so Def. 2 fails for every ``eps <= lower``). Per output too.

A pair's difference counts as the smaller of onnxruntime's (the ONNX file, float32) and the float64
IR's, so ``lower`` is a lower bound for both; the pair is checked to lie in ``D`` at distance
``<= delta`` in float64 first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from reluverify.errors import SpecError
from reluverify.network import Network, softmax_refusal
from reluverify.properties.ball import NORM_NAMES, check_norm, check_radius
from reluverify.properties.common import network_info, pair_change, reference_outputs
from reluverify.properties.inputs import Domain
from reluverify.solver.pair_search import PairBracket, PairSearch
from reluverify.solver.progress import Throttle, observer


@dataclass
class EpsBracket:
    """The bracket ``lower <= eps*(delta) <= upper`` reached for one delta (see the module docstring)."""

    delta: float
    lower: float
    upper: float
    output_lower: list[float]
    output_upper: list[float]
    status: str
    """``gap`` (within the requested gap), ``settled`` (no part of the domain left: ``upper`` is the
    largest bound of a settled part), or ``timeout``."""
    settled: float
    boxes: int
    seconds: float
    pair: dict | None = None
    """The pair behind ``lower``: ``x1``, ``x2``, their onnxruntime outputs, the output and its change."""

    @property
    def gap(self) -> float:
        """``(upper - lower) / lower`` (inf without a positive lower bound)."""
        return (self.upper - self.lower) / self.lower if self.lower > 0 else float("inf")

    def to_dict(self) -> dict:
        return {
            "delta": self.delta, "lower": self.lower, "upper": self.upper, "gap": self.gap,
            "output_lower": self.output_lower, "output_upper": self.output_upper, "status": self.status,
            "settled": self.settled, "boxes": self.boxes, "seconds": self.seconds, "pair": self.pair,
        }


@dataclass
class MaxEpsResult:
    """Brackets of ``eps*(delta)`` for each delta, on ``domain`` in ``norm``."""

    brackets: list[EpsBracket]
    norm: str
    domain: Domain
    gap: float
    network: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "kind": "max-eps",
            "property": "(delta, eps)-global robustness (Def. 2): the largest eps* with a violating pair",
            "norm": self.norm,
            "domain": self.domain.to_dict(),
            "gap": self.gap,
            "brackets": [b.to_dict() for b in self.brackets],
            "seconds": self.seconds,
            "network": self.network,
        }

    def csv_rows(self) -> list[dict]:
        return [{"delta": b.delta, "lower": b.lower, "upper": b.upper, "gap": b.gap, "status": b.status,
                 "settled": b.settled, "boxes": b.boxes, "seconds": round(b.seconds, 3)} for b in self.brackets]

    def summary(self) -> str:
        lines = [f"property  eps*(delta) of (delta, eps)-global robustness (Def. 2) on the domain, "
                 f"{NORM_NAMES[self.norm]}, stop at a gap of {self.gap:g}"]
        for b in self.brackets:
            gap = f"{100.0 * b.gap:.1f}%" if np.isfinite(b.gap) else "-"
            why = {"gap": "gap reached", "settled": "domain settled", "timeout": "time budget spent"}[b.status]
            lines.append(f"delta {b.delta:<8g} eps* in [{b.lower:.6g}, {b.upper:.6g}]   gap {gap}   {why}   "
                         f"settled {100.0 * b.settled:.1f}% of the domain   {b.boxes} boxes   {b.seconds:.1f} s")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _pair(network: Network, bracket: PairBracket) -> dict | None:
    output = bracket.best
    pair = bracket.pairs[output]
    if pair is None:
        return None
    x1, x2 = pair
    return {"x1": x1.tolist(), "x2": x2.tolist(), "outputs1": reference_outputs(network, x1).tolist(),
            "outputs2": reference_outputs(network, x2).tolist(), "output": output,
            "change": float(bracket.lower[output])}


def max_eps(network: Network, domain, deltas, norm: str = "inf", gap: float = 0.01,
            timeout: float | None = 60.0, seed: int = 0) -> MaxEpsResult:
    """Bracket ``eps*(delta)`` for each of ``deltas`` on ``domain`` (see the module docstring), at most
    ``timeout`` seconds per delta (None: until the gap)."""
    if getattr(network, "final_softmax", None):
        raise SpecError(softmax_refusal(network.final_softmax))
    if not network.is_piecewise_linear:
        raise SpecError("max-eps needs a network of affine layers and ReLUs")
    domain = Domain.of(domain, network.input_size)
    norm = check_norm(norm)
    deltas = [check_radius(d, "delta") for d in np.atleast_1d(deltas)]
    if not gap >= 0:
        raise SpecError(f"the gap must be >= 0, got {gap}")
    chain = network.relu_chain()
    started = time.monotonic()
    progress = Throttle(observer())
    brackets = []
    for delta in deltas:
        change = pair_change(network, chain, domain, delta, norm)
        search = PairSearch(chain, domain.lower, domain.upper, delta, norm, change, seed)

        def report(b: PairBracket) -> None:
            progress.report("max-eps", b.boxes, b.open_boxes, b.settled, b.overall[1], bracket=b.overall)

        deadline = None if timeout is None else time.monotonic() + timeout
        found = search.run(deadline, gap=gap, progress=report)
        low, up = found.overall
        brackets.append(EpsBracket(float(delta), max(low, 0.0), up, [max(float(v), 0.0) for v in found.lower],
                                   [float(v) for v in found.upper], found.status, found.settled, found.boxes,
                                   found.seconds, _pair(network, found)))
    return MaxEpsResult(brackets, norm, domain, gap, network_info(network), time.monotonic() - started)
