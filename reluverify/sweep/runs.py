"""Which run a sweep's query belongs to: its property and its domain, named and fingerprinted.

A **run** is what makes two sweeps into one database answer different questions: the property
(its kind -- Def. 1 delta-local or Def. 3 (delta, eps)-local robustness --, its norm and, for
Def. 1, its decision rule) and the input domain every ball is cut to. Networks, points, deltas and
epsilons are the axes a run sweeps over; the report lists them inside a run, never across runs.

The same functions name a planned job (:class:`~reluverify.sweep.plan.Job`) and a stored row,
from the values both carry (``kind``, ``norm``, ``decision``, ``domain``), so the rows of a
database written before runs were recorded are grouped exactly as new ones.

* :func:`domain_sha256` -- the sha256 of the domain's float64 bytes (lower, then upper), also part
  of every job key;
* :func:`domain_text` -- the domain in words: ``none``, ``[0, 1]^64`` for the same interval on
  every input, else ``box of 64 inputs within [-0.5, 1]``, with ``from FILE`` when its source is
  known;
* :func:`run_id` -- a 12-character fingerprint of the property and the domain.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

LOCAL, EPS_LOCAL = "local-robustness", "eps-local-robustness"
NO_DOMAIN = "none"
SHOWN = 8
"""Hex characters of a fingerprint the report shows (a run or domain is selected by any prefix)."""

PROPERTY_ALIASES = {
    LOCAL: ("1", "def1", "def.1", "def. 1", "local", "local-robustness", "delta-local"),
    EPS_LOCAL: ("3", "def3", "def.3", "def. 3", "eps-local", "eps-local-robustness", "delta-eps-local"),
}
"""What ``report --property`` accepts for each kind (compared in lower case)."""


def domain_sha256(domain) -> str | None:
    """The sha256 of ``domain`` (a ``(lower, upper)`` pair) as float64 bytes; None without a domain."""
    if domain is None:
        return None
    lower, upper = domain
    data = b"".join(np.ascontiguousarray(side, dtype=np.float64).tobytes() for side in (lower, upper))
    return hashlib.sha256(data).hexdigest()


def _number(value: float) -> str:
    return f"{float(value):.6g}"


def domain_text(domain, source: str | None = None) -> str:
    """The domain in words (see the module docstring)."""
    if domain is None:
        return NO_DOMAIN
    lower = np.asarray(domain[0], dtype=np.float64).reshape(-1)
    upper = np.asarray(domain[1], dtype=np.float64).reshape(-1)
    if lower.size and np.all(lower == lower[0]) and np.all(upper == upper[0]):
        text = f"[{_number(lower[0])}, {_number(upper[0])}]^{lower.size}"
    else:
        low = _number(lower.min()) if lower.size else "?"
        high = _number(upper.max()) if upper.size else "?"
        text = f"box of {lower.size} inputs within [{low}, {high}]"
    return f"{text} from {source}" if source else text


def domain_id(domain) -> str:
    """The domain's fingerprint as the report shows it: ``none`` or the first characters of its sha256."""
    digest = domain_sha256(domain)
    return NO_DOMAIN if digest is None else digest[:SHOWN]


def run_id(kind: str, norm: str, decision: str | None, domain) -> str:
    """A 12-character fingerprint of the property (kind, norm, decision rule of Def. 1) and the domain."""
    payload = {"kind": kind, "norm": norm, "decision": decision if kind == LOCAL else None,
               "domain": domain_sha256(domain)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def run_of(item) -> str:
    """The run of a job (attributes) or of a row (a dict with ``kind``, ``norm``, ``decision``, ``domain``)."""
    get = item.get if isinstance(item, dict) else lambda name: getattr(item, name)
    return run_id(get("kind"), get("norm"), get("decision"), get("domain"))


def property_text(kind: str, norm: str, decision: str | None) -> str:
    """The property in words, e.g. ``Def. 1 delta-local robustness, L-inf, label = top score``."""
    distance = {"inf": "L-inf", "1": "L1"}.get(norm, f"norm {norm}")
    if kind == LOCAL:
        rule = {"max": "top score", "min": "lowest score"}.get(decision or "max", str(decision))
        return f"Def. 1 delta-local robustness, {distance}, label = {rule}"
    if kind == EPS_LOCAL:
        return f"Def. 3 (delta, eps)-local robustness, {distance}"
    return f"{kind}, {distance}"


def property_kind(text: str) -> str | None:
    """The kind ``report --property TEXT`` names (see :data:`PROPERTY_ALIASES`); None when it names none."""
    wanted = " ".join(str(text).lower().split())
    for kind, aliases in PROPERTY_ALIASES.items():
        if wanted in aliases:
            return kind
    return None


def plan_runs(jobs, source: str | None = None) -> tuple[dict[str, dict], list[tuple[str, str]]]:
    """The runs of a plan's ``jobs`` (``run -> {"property", "domain"}`` in words, the domain ``from source``
    when given) and ``(key, run)`` per job: what :meth:`~reluverify.sweep.store.ResultStore.record_plan` stores."""
    runs: dict[str, dict] = {}
    seen: dict[tuple, str] = {}
    planned = []
    for job in jobs:
        what = (job.kind, job.norm, job.decision, job.domain)
        if what not in seen:
            seen[what] = run = run_of(job)
            runs.setdefault(run, {"property": property_text(job.kind, job.norm, job.decision),
                                  "domain": domain_text(job.domain, source if job.domain is not None else None)})
        planned.append((job.key, seen[what]))
    return runs, planned
