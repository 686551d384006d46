"""Tables of a sweep's results: a summary per (network, property, delta, epsilon), certified radii, CSV.

Works on the rows of a :class:`~reluverify.sweep.store.ResultStore` (plain dicts), so the same
functions print the table at the end of ``reluverify sweep`` and in ``reluverify report``.
"""

from __future__ import annotations

import csv
import os
import statistics
from collections import Counter

VERDICTS = ("robust", "not robust", "tie", "unknown", "timeout", "error")
KIND_NAMES = {"local-robustness": "Def.1", "eps-local-robustness": "Def.3"}


def load_rows(path: str | os.PathLike, lock_timeout: float = 10.0) -> list[dict]:
    """Every row of the sweep database at ``path``, opened read-only."""
    from reluverify.sweep.store import ResultStore

    with ResultStore(path, lock_timeout=lock_timeout, readonly=True) as store:
        return store.rows()


def _name(path: str) -> str:
    return os.path.basename(path or "?")


def _group_key(row: dict) -> tuple:
    eps = row.get("epsilon")
    return (_name(row["network"]), row["kind"], row["norm"], float(row["delta"]), -1.0 if eps is None else float(eps))


def summary_rows(rows: list[dict]) -> list[dict]:
    """One dict per (network, kind, norm, delta, epsilon), sorted, then a total row ``all``."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(_group_key(row), []).append(row)

    def summarise(name: str, kind: str, norm: str, delta, epsilon, members: list[dict]) -> dict:
        counts = Counter(r["verdict"] for r in members)
        seconds = [float(r["seconds"]) for r in members]
        out = {"network": name, "kind": kind, "norm": norm, "delta": delta, "epsilon": epsilon,
               "queries": len(members)}
        for verdict in VERDICTS:
            out[verdict] = counts.get(verdict, 0)
        out["total_s"] = sum(seconds)
        out["median_s"] = statistics.median(seconds) if seconds else 0.0
        out["max_s"] = max(seconds) if seconds else 0.0
        return out

    table = []
    for key in sorted(groups):
        name, kind, norm, delta, eps = key
        table.append(summarise(name, kind, norm, delta, None if eps < 0 else eps, groups[key]))
    if rows:
        table.append(summarise("all", "", "", None, None, rows))
    return table


def format_summary(table: list[dict]) -> str:
    """The summary as a fixed-width text table."""
    width = max([len(r["network"]) for r in table] + [7])
    width = min(width, 40)
    header = (f"{'network':<{width}} {'prop':<5} {'norm':<4} {'delta':>8} {'eps':>7} {'queries':>7} {'robust':>6} "
              f"{'not rob':>7} {'tie':>4} {'unknown':>7} {'timeout':>7} {'error':>5} {'total s':>9} {'median s':>8}")
    lines = [header, "-" * len(header)]
    for r in table:
        if r["network"] == "all":
            lines.append("-" * len(header))
        delta = "" if r["delta"] is None else f"{r['delta']:.4g}"
        eps = "" if r["epsilon"] is None else f"{r['epsilon']:.4g}"
        if r["network"] != "all" and r["epsilon"] is None:
            eps = "-"
        lines.append(
            f"{r['network'][:width]:<{width}} {KIND_NAMES.get(r['kind'], r['kind']):<5} {r['norm']:<4} {delta:>8} "
            f"{eps:>7} {r['queries']:>7} {r['robust']:>6} {r['not robust']:>7} {r['tie']:>4} {r['unknown']:>7} "
            f"{r['timeout']:>7} {r['error']:>5} {r['total_s']:>9.1f} {r['median_s']:>8.2f}"
        )
    return "\n".join(lines)


def certified_radii(rows: list[dict]) -> list[dict]:
    """Per (network, property, norm, epsilon, point): the largest delta of the sweep up to which every
    delta is ``robust`` (``certified``; None when the smallest is not), and the smallest delta found
    ``not robust``/``tie`` (``refuted``; None when none)."""
    points: dict[tuple, dict[float, str]] = {}
    for row in rows:
        eps = row.get("epsilon")
        key = (_name(row["network"]), row["kind"], row["norm"], -1.0 if eps is None else float(eps),
               int(row["point_index"]))
        points.setdefault(key, {})[float(row["delta"])] = row["verdict"]
    out = []
    for key in sorted(points):
        name, kind, norm, eps, index = key
        by_delta = points[key]
        certified = None
        for delta in sorted(by_delta):
            if by_delta[delta] != "robust":
                break
            certified = delta
        refuted = [d for d, v in by_delta.items() if v in ("not robust", "tie")]
        out.append({"network": name, "kind": kind, "norm": norm, "epsilon": None if eps < 0 else eps,
                    "point_index": index, "certified": certified, "refuted": min(refuted) if refuted else None,
                    "deltas": len(by_delta)})
    return out


CSV_COLUMNS = ("network", "network_sha256", "point_index", "kind", "norm", "decision", "delta", "epsilon", "verdict",
               "solver_verdict", "label", "seconds", "attempts", "reason", "backend", "worker", "started", "finished",
               "boxes", "relu_splits", "input_splits", "key")


def write_csv(rows: list[dict], path: str | os.PathLike) -> None:
    """One line per row (statistics flattened to a few counters; no counterexample)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            stats = row.get("statistics") or {}
            values = {**row, "boxes": stats.get("boxes", ""), "relu_splits": stats.get("relu_splits", ""),
                      "input_splits": stats.get("input_splits", "")}
            writer.writerow(["" if values.get(c) is None else values.get(c) for c in CSV_COLUMNS])
