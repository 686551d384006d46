"""What the solver returns: a verdict with its evidence and statistics."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

SAT, UNSAT, UNKNOWN, TIMEOUT = "sat", "unsat", "unknown", "timeout"
VERDICTS = (SAT, UNSAT, UNKNOWN, TIMEOUT)


@dataclass(frozen=True)
class Counterexample:
    """Input variables that violate the property, confirmed by onnxruntime.

    ``inputs`` are all query input variables (inside the query box exactly);
    ``outputs`` are onnxruntime's outputs for them and ``ir_outputs`` reluverify's own
    float64 evaluation; ``disjunct`` is the index of a disjunct they satisfy within
    ``tolerance``; ``slack`` is that disjunct's largest ``row - rhs`` on the onnxruntime outputs.
    """

    inputs: np.ndarray
    outputs: np.ndarray
    ir_outputs: np.ndarray
    disjunct: int
    slack: float
    tolerance: float
    reference: str = "onnxruntime"

    def to_dict(self) -> dict:
        return {
            "inputs": self.inputs.tolist(),
            "outputs": self.outputs.tolist(),
            "ir_outputs": self.ir_outputs.tolist(),
            "disjunct": self.disjunct,
            "slack": self.slack,
            "tolerance": self.tolerance,
            "reference": self.reference,
        }


@dataclass
class Statistics:
    """Counters of one solver run (summed over disjuncts and search nodes)."""

    pivots: int = 0
    refactorisations: int = 0
    simplex_calls: int = 0
    repairs: int = 0
    splits: int = 0
    relu_splits: int = 0
    input_splits: int = 0
    boxes: int = 0
    subproblems: int = 0
    implied_phases: int = 0
    lp_calls: int = 0
    lp_refuted: int = 0
    leaves: int = 0
    tightened_bounds: int = 0
    fixed_relus: int = 0
    max_depth: int = 0
    backtracks: int = 0
    candidates_checked: int = 0
    candidates_rejected: int = 0
    falsification_samples: int = 0
    leases: int = 0
    """Leases of a search's work answered by the workers of a Ray cluster (solver/distributed.py) ..."""
    lost_workers: int = 0
    """... the workers lost mid-lease (their leases went back to the pool) ..."""
    nodes: int = 0
    """... and the most cluster nodes one search's leases ran on."""

    @property
    def work_items(self) -> int:
        """The work items processed: sub-problems of ReLU branch and bound plus boxes of input splitting."""
        return self.subproblems + self.boxes

    def merge(self, other: "Statistics") -> None:
        for key, value in asdict(other).items():
            if key in ("max_depth", "nodes"):
                setattr(self, key, max(getattr(self, key), value))
            else:
                setattr(self, key, getattr(self, key) + value)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Result:
    """The verdict on one query; ``counterexample`` is set exactly when the verdict is ``sat``."""

    verdict: str
    counterexample: Counterexample | None = None
    statistics: Statistics = field(default_factory=Statistics)
    seconds: float = 0.0
    reason: str = ""
    disjunct_verdicts: list[str] = field(default_factory=list)
    facts: object = None
    """:class:`~reluverify.solver.facts.PhaseFacts` proven on this query's input box (ReLU queries)."""
    certificate: object = None
    """With ``SolverOptions.proof`` and an ``unsat`` verdict: the
    :class:`~reluverify.solver.certificate.Certificate` (docs/certificates.md)."""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")
        if (self.verdict == SAT) != (self.counterexample is not None):
            raise ValueError("a sat verdict needs a counterexample, and only a sat verdict has one")

    @staticmethod
    def of_run(verdict: str, found: Counterexample | None, statistics: Statistics, started: float, reason: str,
               verdicts: list[str], **extra) -> "Result":
        """The result of a run started at ``started`` (``time.monotonic()``) whose disjuncts' verdicts are
        ``verdicts``: ``found`` is its counterexample, reported (and its disjunct marked ``sat`` in
        ``verdicts``) when the verdict is ``sat``; ``extra`` fills the other fields."""
        if verdict == SAT:
            verdicts[found.disjunct] = SAT
        return Result(verdict=verdict, counterexample=found if verdict == SAT else None, statistics=statistics,
                      seconds=time.monotonic() - started, reason=reason, disjunct_verdicts=list(verdicts), **extra)

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "counterexample": self.counterexample.to_dict() if self.counterexample else None,
            "statistics": self.statistics.to_dict(),
            "seconds": self.seconds,
            "reason": self.reason,
            "disjunct_verdicts": self.disjunct_verdicts,
            "fixed_phases_on_box": None if self.facts is None else self.facts.num_fixed,
        }
