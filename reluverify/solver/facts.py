"""Facts one solver run learns that another may reuse, only where that is sound.

A :class:`PhaseFacts` records ReLU phases proven fixed for *every* input of a domain (a box
over the network inputs of one ReLU chain). It may be reused by a query on the same chain
whose input box lies inside that domain (a sub-domain), and never by any other query: a
phase fixed on D need not be fixed outside D. :meth:`PhaseFacts.covers` is the one check.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from reluverify import linear_ops
from reluverify.network import ReluChain

ACTIVE, INACTIVE, UNFIXED = 1, 0, -1


def chain_fingerprint(chain: ReluChain) -> str:
    """A hash of the chain's weights and biases: facts never cross to another network.

    Dense weights hash as they always did; a structured operator hashes its kind, geometry
    and parameters (:func:`reluverify.linear_ops.update_digest`).
    """
    digest = hashlib.sha256()
    for array in chain.weights + chain.biases:
        linear_ops.update_digest(digest, array)
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class PhaseFacts:
    """ReLU phases (``ACTIVE``/``INACTIVE``/``UNFIXED`` per ReLU, in chain order) proven on ``[lower, upper]``."""

    fingerprint: str
    lower: np.ndarray
    upper: np.ndarray
    phases: np.ndarray

    def covers(self, fingerprint: str, lower: np.ndarray, upper: np.ndarray) -> bool:
        """True when these facts hold on the box ``[lower, upper]`` of the chain ``fingerprint``."""
        return (
            fingerprint == self.fingerprint
            and lower.shape == self.lower.shape
            and bool(np.all(lower >= self.lower))
            and bool(np.all(upper <= self.upper))
        )

    @property
    def num_fixed(self) -> int:
        return int(np.sum(self.phases != UNFIXED))

    def to_dict(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "phases": self.phases.tolist(),
        }

    @staticmethod
    def from_dict(data: dict) -> "PhaseFacts":
        return PhaseFacts(
            data["fingerprint"],
            np.asarray(data["lower"], dtype=np.float64),
            np.asarray(data["upper"], dtype=np.float64),
            np.asarray(data["phases"], dtype=np.int64),
        )


def phases_from_bounds(pre_lower: np.ndarray, pre_upper: np.ndarray) -> np.ndarray:
    phases = np.full(pre_lower.shape, UNFIXED, dtype=np.int64)
    phases[pre_lower >= 0] = ACTIVE
    phases[pre_upper <= 0] = INACTIVE
    return phases


def known_bounds(facts: list[PhaseFacts], layer_sizes: tuple[int, ...]) -> tuple[list, list]:
    """Per-layer pre-activation bounds implied by the facts (``b >= 0`` active, ``b <= 0`` inactive)."""
    total = sum(layer_sizes)
    lower = np.full(total, -np.inf)
    upper = np.full(total, np.inf)
    for fact in facts:
        lower[fact.phases == ACTIVE] = np.maximum(lower[fact.phases == ACTIVE], 0.0)
        upper[fact.phases == INACTIVE] = np.minimum(upper[fact.phases == INACTIVE], 0.0)
    lows, highs, start = [], [], 0
    for size in layer_sizes:
        lows.append(lower[None, start : start + size])
        highs.append(upper[None, start : start + size])
        start += size
    return lows, highs
