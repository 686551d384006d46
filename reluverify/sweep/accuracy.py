"""Certified robust accuracy: of the evaluation points, how many are proven robust (and correctly classified).

For one (delta, epsilon) a point is **certified** when its query's verdict is ``robust`` and, when
its true label is known, the network's label at the point is that true label: a misclassified
point counts as *not* robust whatever the verdict (it is already an error at radius 0). The
certified robust accuracy is ``certified / total`` over all the points, so every ``not robust``,
``tie``, ``unknown``, ``timeout`` and ``error`` counts against it: only a proof counts for it.

Works on the rows of a :class:`~reluverify.sweep.store.ResultStore` (plain dicts) and the labels
the network gives the points (computed once by the caller, so a point whose query timed out is
still known to be misclassified or not).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

ROBUST = "robust"
VERDICT_ORDER = ("robust", "not robust", "tie", "unknown", "timeout", "error")


@dataclass(frozen=True)
class PointOutcome:
    """One point at one (delta, epsilon): its verdict, the network's label and the true label."""

    index: int
    delta: float
    epsilon: float | None
    verdict: str
    label: int | None
    """The network's label at the point (None at a tie)."""
    true_label: int | None
    certified: bool
    seconds: float
    reason: str = ""

    @property
    def misclassified(self) -> bool:
        return self.true_label is not None and self.label != self.true_label

    def to_dict(self) -> dict:
        return {"point_index": self.index, "delta": self.delta, "epsilon": self.epsilon, "verdict": self.verdict,
                "label": self.label, "true_label": self.true_label, "misclassified": self.misclassified,
                "certified": self.certified, "seconds": self.seconds, "reason": self.reason}


@dataclass(frozen=True)
class RobustAccuracy:
    """The certified robust accuracy at one (delta, epsilon), with the verdict counts behind it."""

    delta: float
    epsilon: float | None
    total: int
    certified: int
    misclassified: int
    """Points whose network label is not the true label (0 when the labels are unknown)."""
    counts: dict = field(default_factory=dict)
    """Verdict -> number of points (the solver's verdicts, before misclassification is applied)."""
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        """``certified / total`` (0 without points)."""
        return self.certified / self.total if self.total else 0.0

    @property
    def robust(self) -> int:
        """Points whose query is ``robust`` (misclassified ones included)."""
        return self.counts.get("robust", 0)

    @property
    def not_robust(self) -> int:
        return self.counts.get("not robust", 0)

    @property
    def tie(self) -> int:
        return self.counts.get("tie", 0)

    @property
    def unknown(self) -> int:
        return self.counts.get("unknown", 0)

    @property
    def timeout(self) -> int:
        return self.counts.get("timeout", 0)

    @property
    def error(self) -> int:
        return self.counts.get("error", 0)

    def line(self, labels_known: bool) -> str:
        """One line for people: ``delta 0.05  certified robust accuracy  90.0% (9/10)  robust 9, ...``."""
        verdicts = ", ".join(f"{v} {self.counts[v]}" for v in VERDICT_ORDER if self.counts.get(v))
        delta = f"delta {self.delta:<7g}" + ("" if self.epsilon is None else f" eps {self.epsilon:<7g}")
        line = f"{delta} certified robust accuracy {self.accuracy:6.1%} ({self.certified}/{self.total})   {verdicts}"
        if labels_known:
            line += f", misclassified {self.misclassified}"
        return line + f"   {self.seconds:.1f} s"

    def to_dict(self) -> dict:
        return {"delta": self.delta, "epsilon": self.epsilon, "total": self.total, "certified": self.certified,
                "certified_robust_accuracy": self.accuracy, "misclassified": self.misclassified,
                "verdicts": dict(self.counts), "seconds": self.seconds}


def network_labels(scores: np.ndarray, decision: str = "max") -> list[int | None]:
    """The label of each row of ``scores`` (top score, or lowest for ``"min"``); None where it is tied."""
    pref = np.asarray(scores, dtype=np.float64) * (1.0 if decision == "max" else -1.0)
    out: list[int | None] = []
    for row in pref:
        top = np.flatnonzero(row == row.max())
        out.append(int(top[0]) if top.size == 1 else None)
    return out


def robust_accuracy(rows: list[dict], labels: list[int | None], true_labels=None
                    ) -> tuple[list[RobustAccuracy], list[PointOutcome]]:
    """Per (delta, epsilon) in increasing order: the accuracy, and every point's outcome (same order).

    ``rows`` hold one row per (point, delta, epsilon), with ``point_index`` into ``labels`` (the
    network's labels) and ``true_labels`` (None: unknown).
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        eps = row.get("epsilon")
        groups.setdefault((float(row["delta"]), -1.0 if eps is None else float(eps)), []).append(row)
    table, outcomes = [], []
    for delta, eps in sorted(groups):
        epsilon = None if eps < 0 else eps
        members = sorted(groups[(delta, eps)], key=lambda r: int(r["point_index"]))
        certified = misclassified = 0
        for row in members:
            index = int(row["point_index"])
            truth = None if true_labels is None else int(true_labels[index])
            label = row.get("label")
            label = labels[index] if label is None else int(label)
            wrong = truth is not None and label != truth
            ok = row["verdict"] == ROBUST and not wrong
            certified += ok
            misclassified += wrong
            outcomes.append(PointOutcome(index, delta, epsilon, row["verdict"], label, truth, ok,
                                         float(row["seconds"]), row.get("reason") or ""))
        table.append(RobustAccuracy(delta, epsilon, len(members), certified, misclassified,
                                    dict(Counter(r["verdict"] for r in members)),
                                    sum(float(r["seconds"]) for r in members)))
    return table, outcomes
