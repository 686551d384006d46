"""Tables of a sweep's results, run by run: a summary per (network, property, delta, epsilon), certified radii, CSV.

Works on the rows of a :class:`~reluverify.sweep.store.ResultStore` (plain dicts), so the same
functions print the table at the end of ``reluverify sweep`` and in ``reluverify report``.

Rows of different runs (:mod:`reluverify.sweep.runs`: another property or another domain) are
never summed together: :func:`split_runs` groups them, with the stored plan, into :class:`Run`
values (finished against planned), every table line carries its run, and each run gets its own
total line ``all``. :func:`select_runs` keeps the runs that ``report --run/--domain/--property``
name.
"""

from __future__ import annotations

import csv
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field

from reluverify.errors import SpecError
from reluverify.sweep.runs import (SHOWN, domain_id, domain_sha256, domain_text, property_kind, property_text,
                                   run_of)

VERDICTS = ("robust", "not robust", "tie", "unknown", "timeout", "error")
KIND_NAMES = {"local-robustness": "Def.1", "eps-local-robustness": "Def.3"}
UNKNOWN = "unknown"


def load_rows(path: str | os.PathLike, lock_timeout: float = 10.0) -> list[dict]:
    """Every row of the sweep database at ``path``, opened read-only."""
    return load_sweep(path, lock_timeout)[0]


def load_sweep(path: str | os.PathLike, lock_timeout: float = 10.0) -> tuple[list[dict], dict, dict]:
    """Every row of the sweep database at ``path`` and its stored plan (``key -> run``, ``run -> words``)."""
    from reluverify.sweep.store import ResultStore

    with ResultStore(path, lock_timeout=lock_timeout, readonly=True) as store:
        return store.rows(), *store.plan()


@dataclass
class Run:
    """The rows of one run (one property on one domain) and how many queries its sweeps planned."""

    run: str
    property: str
    domain: str
    """The domain in words (:func:`~reluverify.sweep.runs.domain_text`, with its source when stored)."""
    domain_id: str
    """``none``, the first characters of the domain's sha256, or ``unknown`` (planned, nothing finished)."""
    kind: str | None = None
    rows: list[dict] = field(default_factory=list)
    planned: int = 0
    """Queries planned for this run by the sweeps that wrote the database (finished ones included)."""

    @property
    def done(self) -> int:
        return len(self.rows)

    @property
    def progress(self) -> str:
        """``3 of 60 done`` while the plan is larger than what finished, else ``60 done``."""
        return f"{self.done} of {self.planned} done" if self.planned > self.done else f"{self.done} done"

    def heading(self) -> str:
        shown = "" if self.domain_id in (domain_text(None), UNKNOWN) else f" (sha256 {self.domain_id})"
        return f"run {self.run[:SHOWN]}: {self.property}; domain {self.domain}{shown}; {self.progress}"

    def to_dict(self) -> dict:
        return {"run": self.run, "property": self.property, "kind": self.kind, "domain": self.domain,
                "domain_id": self.domain_id, "planned": self.planned, "done": self.done}


def split_runs(rows: list[dict], planned: dict | None = None, described: dict | None = None) -> list[Run]:
    """The runs of ``rows`` (see the module docstring), in the order their first row was written, then runs
    planned with nothing finished yet. ``planned`` maps keys to runs and ``described`` runs to their
    property and domain in words, as :meth:`~reluverify.sweep.store.ResultStore.plan` gives them."""
    planned, described = planned or {}, described or {}
    runs: dict[str, Run] = {}
    for row in rows:
        run = run_of(row)
        if run not in runs:
            words = described.get(run, {})
            runs[run] = Run(run, property_text(row["kind"], row["norm"], row["decision"]),
                            words.get("domain") or domain_text(row["domain"]), domain_id(row["domain"]), row["kind"])
        runs[run].rows.append(row)
    keys: dict[str, set] = {}
    for key, run in planned.items():
        keys.setdefault(run, set()).add(key)
    for run in sorted(set(keys) - set(runs), key=lambda r: (described.get(r, {}).get("planned", ""), r)):
        words = described.get(run, {})
        runs[run] = Run(run, words.get("property", UNKNOWN), words.get("domain", UNKNOWN), UNKNOWN)
    for run in runs.values():
        run.planned = len(keys.get(run.run, set()) | {r["key"] for r in run.rows})
    return list(runs.values())


def _matches_domain(run: Run, wanted: str) -> bool:
    text = " ".join(wanted.lower().split())
    words = run.domain.lower()
    names = {words, words.split(" from ")[0], os.path.basename(words.split(" from ")[-1])}
    if text in names:
        return True
    digest = domain_sha256(run.rows[0]["domain"]) if run.rows else None
    return digest is not None and len(text) >= 4 and digest.startswith(text)


def select_runs(runs: list[Run], run: str | None = None, domain: str | None = None,
                prop: str | None = None) -> list[Run]:
    """The runs that every given filter names: ``run`` a prefix of the run's fingerprint, ``domain`` the domain's
    words (with or without ``from FILE``), its file name, ``none`` or a prefix of its sha256 (4 characters
    or more), ``prop`` the property (``Def.1``, ``1``, ``local``, ``Def.3``, ``3``, ``eps-local``, ...).
    A filter that names none of them is a :class:`~reluverify.errors.SpecError` listing the runs."""
    kept = list(runs)
    if prop is not None:
        kind = property_kind(prop)
        if kind is None:
            raise SpecError(f"--property {prop!r}: name Def.1 (local) or Def.3 (eps-local)")
        kept = [r for r in kept if r.kind == kind]
    if run is not None:
        kept = [r for r in kept if r.run.startswith(run.strip().lower())]
    if domain is not None:
        kept = [r for r in kept if _matches_domain(r, domain)]
    if runs and not kept:
        filters = (("run", run), ("domain", domain), ("property", prop))
        given = ", ".join(f"--{name} {value!r}" for name, value in filters if value is not None)
        listing = "; ".join(f"run {r.run[:SHOWN]} ({r.property}; domain {r.domain})" for r in runs)
        raise SpecError(f"{given} names none of the {len(runs)} run(s) in the database: {listing}")
    return kept


def _name(path: str) -> str:
    return os.path.basename(path or "?")


def domain_label(domain) -> str:
    """The domain in a table cell: its words when they are short (``none``, ``[0, 1]^64``), else its fingerprint."""
    text = domain_text(domain)
    return text if len(text) <= 14 else domain_id(domain)


def _group_key(row: dict, run: str) -> tuple:
    eps = row.get("epsilon")
    return (run, _name(row["network"]), row["kind"], row["norm"], float(row["delta"]),
            -1.0 if eps is None else float(eps))


def summary_rows(rows: list[dict]) -> list[dict]:
    """Per run (in the order of its first row): one dict per (network, kind, norm, delta, epsilon), sorted,
    then the run's total row ``all``. Every dict names its ``run`` and ``domain``."""
    groups: dict[tuple, list[dict]] = {}
    by_run: dict[str, list[dict]] = {}
    for row in rows:
        run = run_of(row)
        by_run.setdefault(run, []).append(row)
        groups.setdefault(_group_key(row, run), []).append(row)

    def summarise(run: str, name: str, kind: str, norm: str, delta, epsilon, members: list[dict]) -> dict:
        counts = Counter(r["verdict"] for r in members)
        seconds = [float(r["seconds"]) for r in members]
        out = {"run": run, "network": name, "kind": kind, "norm": norm, "domain": domain_label(members[0]["domain"]),
               "delta": delta, "epsilon": epsilon, "queries": len(members)}
        for verdict in VERDICTS:
            out[verdict] = counts.get(verdict, 0)
        out["total_s"] = sum(seconds)
        out["median_s"] = statistics.median(seconds) if seconds else 0.0
        out["max_s"] = max(seconds) if seconds else 0.0
        return out

    table = []
    for run, members in by_run.items():
        for key in sorted(k for k in groups if k[0] == run):
            _, name, kind, norm, delta, eps = key
            table.append(summarise(run, name, kind, norm, delta, None if eps < 0 else eps, groups[key]))
        table.append(summarise(run, "all", "", "", None, None, members))
    return table


def format_summary(table: list[dict]) -> str:
    """The summary as a fixed-width text table."""
    width = max([len(r["network"]) for r in table] + [7])
    width = min(width, 40)
    header = (f"{'network':<{width}} {'prop':<5} {'norm':<4} {'domain':<14} {'delta':>8} {'eps':>7} {'queries':>7} "
              f"{'robust':>6} {'not rob':>7} {'tie':>4} {'unknown':>7} {'timeout':>7} {'error':>5} {'total s':>9} {'median s':>8}")
    lines = [header, "-" * len(header)]
    for r in table:
        if r["network"] == "all":
            lines.append("-" * len(header))
        delta = "" if r["delta"] is None else f"{r['delta']:.4g}"
        eps = "" if r["epsilon"] is None else f"{r['epsilon']:.4g}"
        if r["network"] != "all" and r["epsilon"] is None:
            eps = "-"
        lines.append(
            f"{r['network'][:width]:<{width}} {KIND_NAMES.get(r['kind'], r['kind']):<5} {r['norm']:<4} "
            f"{'' if r['network'] == 'all' else r['domain']:<14} {delta:>8} "
            f"{eps:>7} {r['queries']:>7} {r['robust']:>6} {r['not robust']:>7} {r['tie']:>4} {r['unknown']:>7} "
            f"{r['timeout']:>7} {r['error']:>5} {r['total_s']:>9.1f} {r['median_s']:>8.2f}"
        )
    return "\n".join(lines)


def certified_radii(rows: list[dict]) -> list[dict]:
    """Per (run, network, property, norm, epsilon, point): the largest delta of the sweep up to which every
    delta is ``robust`` (``certified``; None when the smallest is not), and the smallest delta found
    ``not robust``/``tie`` (``refuted``; None when none)."""
    points: dict[tuple, dict[float, str]] = {}
    for row in rows:
        eps = row.get("epsilon")
        key = (run_of(row), _name(row["network"]), row["kind"], row["norm"], -1.0 if eps is None else float(eps),
               int(row["point_index"]))
        points.setdefault(key, {})[float(row["delta"])] = row["verdict"]
    out = []
    for key in sorted(points):
        run, name, kind, norm, eps, index = key
        by_delta = points[key]
        certified = None
        for delta in sorted(by_delta):
            if by_delta[delta] != "robust":
                break
            certified = delta
        refuted = [d for d, v in by_delta.items() if v in ("not robust", "tie")]
        out.append({"run": run, "network": name, "kind": kind, "norm": norm, "epsilon": None if eps < 0 else eps,
                    "point_index": index, "certified": certified, "refuted": min(refuted) if refuted else None,
                    "deltas": len(by_delta)})
    return out


CSV_COLUMNS = ("network", "network_sha256", "point_index", "kind", "norm", "decision", "delta", "epsilon", "verdict",
               "solver_verdict", "label", "seconds", "attempts", "reason", "backend", "worker", "started", "finished",
               "boxes", "relu_splits", "input_splits", "key", "run", "domain", "domain_sha256")


def write_csv(rows: list[dict], path: str | os.PathLike) -> None:
    """One line per row (statistics flattened to a few counters; the run and the domain in words and as its
    sha256; no counterexample)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            stats = row.get("statistics") or {}
            values = {**row, "boxes": stats.get("boxes", ""), "relu_splits": stats.get("relu_splits", ""),
                      "input_splits": stats.get("input_splits", ""), "run": run_of(row),
                      "domain": domain_text(row["domain"]), "domain_sha256": domain_sha256(row["domain"])}
            writer.writerow(["" if values.get(c) is None else values.get(c) for c in CSV_COLUMNS])
