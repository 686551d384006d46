"""What a property check returns: a verdict in the property's words, with its evidence.

One vocabulary, the same in the command line's text, its ``--json`` and the Python API. A
property is violated exactly when its query is ``sat``, so the solver's verdicts map as

==================  =====================  ==================================================
solver              robustness property    VNN-LIB specification (describes a counterexample)
==================  =====================  ==================================================
``unsat``           ``robust``             ``unsat`` (the property holds)
``sat``             ``not robust``         ``sat`` (a counterexample exists: it is violated)
``unknown``         ``unknown``            ``unknown``
``timeout``         ``timeout``            ``timeout``
==================  =====================  ==================================================

plus ``tie`` for Def. 1 at a point whose top score is shared by several labels: ``N(x0)`` is then
ambiguous, so no label is guessed and no query is run (see :mod:`reluverify.properties.local`).
A VNN-LIB file states the condition a counterexample meets, so its answer keeps the solver's words:
``sat`` -- the condition can be met, a counterexample exists (the property is violated); ``unsat``
-- it cannot (the property holds). :attr:`PropertyResult.holds` says the same as a boolean for
every kind.

A ``not robust`` verdict carries a :class:`PropertyCounterexample`: the pair of points (for local
properties, the counterexample and the fixed point; for global robustness, the two points), their
outputs by onnxruntime (the reference every ``sat`` is confirmed against) and by reluverify's
float64 IR, their distance, and the violated disjunct in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ROBUST, NOT_ROBUST, TIE, UNKNOWN, TIMEOUT = "robust", "not robust", "tie", "unknown", "timeout"
SAT, UNSAT = "sat", "unsat"

_ROBUSTNESS = {UNSAT: ROBUST, SAT: NOT_ROBUST, UNKNOWN: UNKNOWN, TIMEOUT: TIMEOUT}
_SPEC = {UNSAT: UNSAT, SAT: SAT, UNKNOWN: UNKNOWN, TIMEOUT: TIMEOUT}


def robustness_verdict(solver_verdict: str) -> str:
    """A robustness property's verdict for its query's: ``unsat`` -> ``robust``, ``sat`` -> ``not robust``."""
    return _ROBUSTNESS[solver_verdict]


def spec_verdict(solver_verdict: str) -> str:
    """A VNN-LIB specification's verdict for its query's: the same word (checked)."""
    return _SPEC[solver_verdict]


def network_notes(network: dict) -> list[str]:
    """The notes a result states about its network (:func:`~reluverify.properties.common.network_info`:
    a dropped final Softmax), one line each."""
    return [network["note"]] if network.get("note") else []


def _floats(array) -> list | None:
    return None if array is None else [float(v) for v in np.asarray(array).reshape(-1)]


@dataclass(frozen=True, eq=False)
class PropertyCounterexample:
    """A pair of inputs that breaks the property.

    * ``inputs`` -- the counterexample ``x`` (global robustness: the first point ``x1``);
    * ``point`` -- the point it is compared with: ``x0`` for local properties, ``x2`` for global;
    * ``outputs`` / ``point_outputs`` -- onnxruntime's outputs on the ONNX file at both;
    * ``ir_outputs`` / ``point_ir_outputs`` -- reluverify's float64 evaluation at both;
    * ``distance`` -- ``||inputs - point||`` in ``norm`` (``"inf"`` or ``"1"``), computed in float64;
    * ``disjunct`` / ``violated`` -- which disjunct of the negated property holds, and in words;
    * ``subdomain`` -- for global robustness with partitions, the sub-domain whose query found it;
    * ``query_inputs`` -- the solver's input variables (both copies, auxiliaries included);
    * ``slack`` -- the violated disjunct's largest ``row - rhs`` on onnxruntime's outputs (<= 0
      up to the solver's confirmation tolerance).
    """

    inputs: np.ndarray
    outputs: np.ndarray
    ir_outputs: np.ndarray
    point: np.ndarray
    point_outputs: np.ndarray
    point_ir_outputs: np.ndarray
    distance: float
    norm: str
    disjunct: int
    violated: str
    query_inputs: np.ndarray
    slack: float
    subdomain: int | None = None

    def to_dict(self) -> dict:
        return {
            "inputs": _floats(self.inputs),
            "outputs": _floats(self.outputs),
            "ir_outputs": _floats(self.ir_outputs),
            "point": _floats(self.point),
            "point_outputs": _floats(self.point_outputs),
            "point_ir_outputs": _floats(self.point_ir_outputs),
            "distance": float(self.distance),
            "norm": self.norm,
            "disjunct": int(self.disjunct),
            "violated": self.violated,
            "subdomain": self.subdomain,
            "query_inputs": _floats(self.query_inputs),
            "slack": float(self.slack),
        }

    @staticmethod
    def from_dict(data: dict) -> "PropertyCounterexample":
        """The inverse of :meth:`to_dict` (e.g. for a counterexample stored in a sweep's row)."""

        def array(key):
            return np.asarray(data.get(key) or [], dtype=np.float64)

        return PropertyCounterexample(
            inputs=array("inputs"), outputs=array("outputs"), ir_outputs=array("ir_outputs"),
            point=array("point"), point_outputs=array("point_outputs"), point_ir_outputs=array("point_ir_outputs"),
            distance=float(data["distance"]), norm=data["norm"], disjunct=int(data["disjunct"]),
            violated=data["violated"], query_inputs=array("query_inputs"), slack=float(data["slack"]),
            subdomain=data.get("subdomain"),
        )


@dataclass
class PropertyResult:
    """The answer to one property check (see the module docstring for the verdicts)."""

    kind: str
    """``local-robustness`` (Def. 1), ``eps-local-robustness`` (Def. 3), ``global-robustness`` (Def. 2), ``vnnlib``."""
    verdict: str
    description: str
    parameters: dict = field(default_factory=dict)
    solver_verdict: str = ""
    """The query's verdict (``sat``/``unsat``/``unknown``/``timeout``); empty when no query ran (a tie)."""
    label: int | None = None
    """Def. 1: the label ``N(x0)`` computed at the point."""
    ties: tuple[int, ...] = ()
    """Def. 1: the labels sharing the top score at the point when there is a tie."""
    counterexample: PropertyCounterexample | None = None
    statistics: dict = field(default_factory=dict)
    seconds: float = 0.0
    reason: str = ""
    queries: int = 0
    """How many solver runs (sub-domain queries, or single-disjunct queries in parallel mode) ran."""
    disjunct_verdicts: list = field(default_factory=list)
    """The solver's verdict per disjunct of the (first) query; per sub-domain, see ``subdomain_verdicts``."""
    disjunct_labels: list = field(default_factory=list)
    subdomain_verdicts: list = field(default_factory=list)
    subdomains: list = field(default_factory=list)
    """Global robustness: the sub-domains as ``{"lower", "upper", "verdict"}`` (after any refinement)."""
    network: dict = field(default_factory=dict)
    proof: dict = field(default_factory=dict)
    """With ``proof=``/``--proof FILE``: what was written (``certificate``, ``spec``, ``leaves``, ``bytes``)
    and a ``note`` for people; ``certificate`` is None when none was written (and the note says why)."""
    exact: dict = field(default_factory=dict)
    """With ``exact=True``/``--exact`` and a counterexample: :class:`~reluverify.exact.ExactCheck` as a dict."""

    @property
    def holds(self) -> bool | None:
        """Whether the property holds: True for ``robust`` (a VNN-LIB specification: ``unsat``), False for
        ``not robust`` or a ``tie`` (``sat``), None when undecided (``unknown``, ``timeout``)."""
        if self.verdict in (ROBUST, UNSAT):
            return True
        if self.verdict in (NOT_ROBUST, SAT, TIE):
            return False
        return None

    @property
    def robust(self) -> bool | None:
        """The same as :attr:`holds`."""
        return self.holds

    @property
    def notes(self) -> list[str]:
        """What the reader should know about the network (a dropped final Softmax), one line each."""
        return network_notes(self.network)

    @property
    def splits(self) -> int:
        return int(self.statistics.get("relu_splits", 0)) + int(self.statistics.get("input_splits", 0))

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "verdict": self.verdict,
            "holds": self.holds,
            "description": self.description,
            "parameters": self.parameters,
            "solver_verdict": self.solver_verdict,
            "label": self.label,
            "ties": list(self.ties),
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
            "statistics": self.statistics,
            "splits": self.splits,
            "seconds": self.seconds,
            "reason": self.reason,
            "queries": self.queries,
            "disjunct_verdicts": self.disjunct_verdicts,
            "disjunct_labels": self.disjunct_labels,
            "subdomain_verdicts": self.subdomain_verdicts,
            "subdomains": self.subdomains,
            "network": self.network,
            **({"notes": self.notes} if self.notes else {}),
            **({"proof": self.proof} if self.proof else {}),
            **({"exact": self.exact["holds"], "exact_check": self.exact} if self.exact else {}),
        }

    def summary(self) -> str:
        """A few lines for people: the verdict (alone on the first line), time, splits, the violated disjunct."""
        s = self.statistics
        lines = [self.verdict, f"property  {self.description}"]
        lines += [f"note      {note}" for note in self.notes]
        if self.solver_verdict and self.solver_verdict != self.verdict:
            lines.append(f"query     {self.solver_verdict} (sat = a counterexample exists)")
        lines.append(
            f"time      {self.seconds:.3f} s   queries {self.queries}   splits {self.splits} "
            f"(relu {s.get('relu_splits', 0)}, input {s.get('input_splits', 0)})   boxes {s.get('boxes', 0)}   "
            f"pivots {s.get('pivots', 0)}"
        )
        if self.subdomain_verdicts and len(self.subdomain_verdicts) > 1:
            counts = {v: self.subdomain_verdicts.count(v) for v in dict.fromkeys(self.subdomain_verdicts)}
            text = ", ".join(f"{v} {c}" for v, c in counts.items())
            lines.append(f"domain    {len(self.subdomain_verdicts)} sub-domains ({text})")
        if self.ties:
            lines.append(f"tie       labels {', '.join(map(str, self.ties))} share the top score at the point")
        if self.reason:
            lines.append(f"reason    {self.reason}")
        cex = self.counterexample
        if cex is not None:
            where = f" (sub-domain {cex.subdomain})" if cex.subdomain is not None else ""
            lines.append(f"violated  {cex.violated}{where}")
            lines.append(f"distance  {cex.distance:.6g} ({'L-inf' if cex.norm == 'inf' else 'L1'})")
            with np.printoptions(precision=6, suppress=True, linewidth=110, threshold=24):
                second = "x2" if self.kind == "global-robustness" else "point"
                first = "x1" if self.kind == "global-robustness" else "input"
                lines.append(f"{first:<9} {cex.inputs}")
                lines.append(f"{'  outputs':<9} {cex.outputs}")
                lines.append(f"{second:<9} {cex.point}")
                lines.append(f"{'  outputs':<9} {cex.point_outputs}")
        if self.exact:
            lines.append(f"exact     {self.exact['note']}")
        if self.proof:
            lines.append(f"proof     {self.proof['note']}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
