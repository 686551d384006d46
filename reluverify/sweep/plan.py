"""A sweep as a deterministic list of jobs, each with a stable key.

``networks x points x deltas x epsilons`` expands, in that nesting order, into one
:class:`Job` per query: Def. 1 (delta-local robustness) when the epsilon is ``None``, Def. 3
((delta, eps)-local robustness) otherwise. A job's **key** is the sha256 of

* the network file's sha256 (not its path: moving the file keeps the keys),
* the point's float64 bytes,
* the property: its kind, delta, epsilon, norm, decision rule (Def. 1 only) and domain
  (:func:`reluverify.sweep.runs.domain_sha256`),

so the same sweep planned twice gives the same keys, and a results store that already holds a
key's row need not run it again. How a query is run (timeout, strategy, backend) is not part of
the key: a query that timed out is re-run only when asked (``--retry timeout``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from reluverify.errors import SpecError
from reluverify.properties.ball import check_reach
from reluverify.properties.domains import Domain
from reluverify.sweep.runs import EPS_LOCAL, LOCAL, domain_sha256, run_of

KEY_VERSION = 1


@dataclass(frozen=True)
class NetworkRef:
    """A network of the sweep: its path, the sha256 of its file and its input size."""

    path: str
    sha256: str
    input_size: int

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass(frozen=True)
class Job:
    """One query of a sweep (plain data, so it can be sent to any worker)."""

    key: str
    network: str
    network_sha256: str
    point_index: int
    point: tuple[float, ...]
    delta: float
    epsilon: float | None = None
    norm: str = "inf"
    decision: str | None = "max"
    domain: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def kind(self) -> str:
        return LOCAL if self.epsilon is None else EPS_LOCAL

    @property
    def run(self) -> str:
        """The run (property and domain) the job belongs to: :func:`reluverify.sweep.runs.run_of`."""
        return run_of(self)

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "network": self.network,
            "network_sha256": self.network_sha256,
            "point_index": self.point_index,
            "point": list(self.point),
            "kind": self.kind,
            "delta": self.delta,
            "epsilon": self.epsilon,
            "norm": self.norm,
            "decision": self.decision,
            "domain": None if self.domain is None else [list(self.domain[0]), list(self.domain[1])],
        }

    @staticmethod
    def from_dict(data: dict) -> "Job":
        domain = data.get("domain")
        return Job(
            key=data["key"],
            network=data["network"],
            network_sha256=data["network_sha256"],
            point_index=int(data["point_index"]),
            point=tuple(float(v) for v in data["point"]),
            delta=float(data["delta"]),
            epsilon=None if data.get("epsilon") is None else float(data["epsilon"]),
            norm=data.get("norm", "inf"),
            decision=data.get("decision"),
            domain=None if domain is None else (tuple(map(float, domain[0])), tuple(map(float, domain[1]))),
        )


def job_key(network_sha256: str, point: np.ndarray, delta: float, epsilon: float | None, norm: str,
            decision: str | None, domain) -> str:
    """The stable key of a query (see the module docstring)."""
    point_bytes = np.ascontiguousarray(point, dtype=np.float64).tobytes()
    domain_hash = domain_sha256(domain)
    payload = {
        "version": KEY_VERSION,
        "network": network_sha256,
        "point": hashlib.sha256(point_bytes).hexdigest(),
        "kind": LOCAL if epsilon is None else EPS_LOCAL,
        "delta": float(delta).hex(),
        "epsilon": None if epsilon is None else float(epsilon).hex(),
        "norm": norm,
        "decision": decision if epsilon is None else None,
        "domain": domain_hash,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _check_values(values, what: str, allow_none: bool = False) -> list:
    out = []
    for value in values:
        if value is None and allow_none:
            out.append(None)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SpecError(f"{what} {value!r} is not a number") from None
        if not np.isfinite(number) or number < 0:
            raise SpecError(f"{what} must be a finite number >= 0, got {value!r}")
        out.append(number)
    if not out:
        raise SpecError(f"give at least one {what}")
    return list(dict.fromkeys(out))  # duplicates removed, order kept


def make_plan(
    networks: list[NetworkRef],
    points: np.ndarray,
    deltas,
    epsilons=(None,),
    norm: str = "inf",
    decision: str = "max",
    domain=None,
) -> list[Job]:
    """Every query of the sweep, in the order networks, points, deltas, epsilons (duplicates dropped).

    ``points`` is ``(k, n)``; ``domain`` is None or a ``(lower, upper)`` pair of length-``n`` vectors.
    ``epsilons`` holds ``None`` for Def. 1 and numbers for Def. 3.
    """
    if norm not in ("inf", "1"):
        raise SpecError(f"unknown norm {norm!r}: use 'inf' or '1'")
    if decision not in ("max", "min"):
        raise SpecError(f"unknown decision rule {decision!r}: use 'max' or 'min'")
    if not networks:
        raise SpecError("give at least one network")
    deltas = _check_values(deltas, "delta")
    epsilons = _check_values(epsilons, "epsilon", allow_none=True)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] == 0:
        raise SpecError("the sweep needs at least one point")
    dom = box = None
    if domain is not None:
        lower, upper = (np.asarray(v, dtype=np.float64).reshape(-1) for v in domain)
        dom = (tuple(lower.tolist()), tuple(upper.tolist()))
        box = Domain(lower, upper)
    jobs: dict[str, Job] = {}
    for net in networks:
        if points.shape[1] != net.input_size:
            raise SpecError(f"the points have {points.shape[1]} values, {net.path} has {net.input_size} inputs")
        if dom is not None and len(dom[0]) != net.input_size:
            raise SpecError(f"the domain has {len(dom[0])} inputs, {net.path} has {net.input_size}")
        for index, point in enumerate(points):
            for delta in deltas:
                for epsilon in epsilons:
                    rule = decision if epsilon is None else None
                    key = job_key(net.sha256, point, delta, epsilon, norm, rule, dom)
                    if key not in jobs:
                        jobs[key] = Job(key, net.path, net.sha256, index, tuple(point.tolist()), delta, epsilon,
                                        norm, rule, dom)
    for point in points:  # every ball stays in float32's range before a job runs
        for delta in deltas:
            check_reach(point, delta, box)
    return list(jobs.values())
