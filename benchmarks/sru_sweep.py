"""Local robustness (Def. 1, L-infinity) of the shipped SRU classifier over held-out digits.

Usage::

    python benchmarks/sru_sweep.py [--points 20] [--deltas 0.01 0.02] [--timeout 30] [--jobs 1]
                                   [--network networks/digits_sru.onnx] [--csv results/sru_sweep.csv]

The points are the first ``--points`` held-out digits of ``reluverify.train.data.digits_split()``
(its fixed stratified split, in order: deterministic). At each point ``x0`` and radius ``delta``
the property is compiled by :class:`reluverify.properties.local.LocalRobustness` (the ball
``||x - x0||_inf <= delta`` clipped to the pixel domain ``[0, 1]^64``, the label ``N(x0)`` the
network's own prediction, one disjunct ``y_N(x0) - y_l <= 0`` per other label ``l``) and decided by
``reluverify.solver.solve``, which sends networks with sigmoids and products to
:mod:`reluverify.solver.nonlinear`. Every ``sat`` is replayed here through onnxruntime on the ONNX
file (the ``confirmed`` column) on top of the solver's own confirmation.

Columns: ``point`` (index in the held-out split), ``true`` and ``label`` (the digit and the
network's prediction), ``delta``, ``verdict`` (unsat = robust, sat = a confirmed counterexample,
timeout/unknown = undecided), ``seconds`` (solver wall clock), ``boxes``, ``splits``, ``depth``.
The summary gives the decided and undecided fractions per delta and overall. The CSV (one row per
query) goes under ``results/`` (git-ignored). This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NETWORK = str(REPO / "networks" / "digits_sru.onnx")
FIELDS = ("point", "true", "label", "delta", "verdict", "seconds", "boxes", "splits", "depth", "confirmed", "reason")


@functools.lru_cache(maxsize=4)
def _network(path: str):
    from reluverify.onnx_import import load_onnx

    return load_onnx(path)


@functools.lru_cache(maxsize=1)
def _digits():
    from reluverify.train.data import digits_split

    return digits_split()


def check_one(network_path: str, index: int, delta: float, timeout: float) -> dict:
    """Decide one (point, delta) and describe the result as a CSV row."""
    from reluverify.onnx_runtime import reference_model
    from reluverify.properties.local import LocalRobustness
    from reluverify.properties.inputs import Domain
    from reluverify.solver import SolverOptions, solve

    network = _network(network_path)
    split = _digits()
    x0 = split.test_inputs[index].astype(np.float64)
    n = network.input_size
    prop = LocalRobustness(network, x0, delta, norm="inf", domain=Domain(np.zeros(n), np.ones(n)))
    row = {"point": index, "true": int(split.test_labels[index]), "label": prop.label, "delta": delta,
           "boxes": 0, "splits": 0, "depth": 0, "confirmed": "", "reason": ""}
    if prop.label is None:
        return {**row, "verdict": "tie", "seconds": 0.0, "reason": f"tied labels {list(prop.ties)}"}
    query = prop.query()
    result = solve(query, SolverOptions(timeout=timeout))
    stats = result.statistics
    row.update(verdict=result.verdict, seconds=round(result.seconds, 3), boxes=stats.boxes, splits=stats.splits,
               depth=stats.max_depth, reason=result.reason)
    if result.counterexample is not None:
        x = result.counterexample.inputs[:n]
        y = reference_model(network_path)(x)
        row_y = query.disjuncts[result.counterexample.disjunct].constraints.matrix[0, -network.output_size :]
        other = int(np.argmin(row_y))  # the row is y_label - y_other <= 0
        tolerance = result.counterexample.tolerance * (1 + abs(y[other]) + abs(y[prop.label]))
        in_ball = bool(np.all(np.abs(x - x0) <= delta + 1e-12) and np.all((x >= 0) & (x <= 1)))
        row["confirmed"] = "onnxruntime" if in_ball and y[other] >= y[prop.label] - tolerance else "NO"
    return row


def summarise(rows: list[dict], deltas: list[float]) -> list[str]:
    lines = []
    for delta in deltas + [None]:
        group = [r for r in rows if delta is None or r["delta"] == delta]
        if not group:
            continue
        counts = {v: sum(r["verdict"] == v for r in group) for v in ("unsat", "sat", "timeout", "unknown", "tie")}
        decided = counts["unsat"] + counts["sat"]
        seconds = [r["seconds"] for r in group if r["verdict"] != "tie"]
        name = "all" if delta is None else f"delta {delta:g}"
        lines.append(
            f"{name:<12} {len(group):>3} queries: robust (unsat) {counts['unsat']}, violated (sat) {counts['sat']}, "
            f"timeout {counts['timeout']}, unknown {counts['unknown']}"
            + (f", tie {counts['tie']}" if counts["tie"] else "")
            + f" | decided {decided / len(group):.0%}, undecided {(counts['timeout'] + counts['unknown']) / len(group):.0%}"
            + (f" | seconds median {statistics.median(seconds):.1f}, mean {statistics.mean(seconds):.1f}, "
               f"max {max(seconds):.1f}" if seconds else "")
        )
    sats = [r for r in rows if r["verdict"] == "sat"]
    if sats:
        confirmed = sum(r["confirmed"] == "onnxruntime" for r in sats)
        lines.append(f"sat confirmed by onnxruntime on the file: {confirmed}/{len(sats)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default=DEFAULT_NETWORK)
    parser.add_argument("--points", type=int, default=20, help="the first N held-out digits")
    parser.add_argument("--deltas", type=float, nargs="+", default=[0.01, 0.02])
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per query")
    parser.add_argument("--jobs", type=int, default=1, help="queries run in parallel processes")
    parser.add_argument("--csv", default="results/sru_sweep.csv", help="one row per query (results/ is git-ignored)")
    args = parser.parse_args(argv)

    tasks = [(args.network, i, d, args.timeout) for d in args.deltas for i in range(args.points)]
    print(f"{Path(args.network).name}: {args.points} held-out digits x deltas {args.deltas}, "
          f"timeout {args.timeout:g} s per query, {args.jobs} job(s)")
    header = f"{'point':>5} {'true':>4} {'label':>5} {'delta':>6} {'verdict':>8} {'seconds':>8} {'boxes':>6} {'splits':>6} {'depth':>5}  confirmed"
    print(header)
    rows: list[dict] = []
    start = time.monotonic()

    def show(row: dict) -> None:
        rows.append(row)
        print(f"{row['point']:>5} {row['true']:>4} {str(row['label']):>5} {row['delta']:>6g} {row['verdict']:>8} "
              f"{row['seconds']:>8.2f} {row['boxes']:>6} {row['splits']:>6} {row['depth']:>5}  {row['confirmed']}", flush=True)

    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for row in pool.map(check_one, *zip(*tasks)):
                show(row)
    else:
        for task in tasks:
            show(check_one(*task))
    print()
    for line in summarise(rows, args.deltas):
        print(line)
    print(f"wall clock {time.monotonic() - start:.0f} s")
    if args.csv:
        os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(sorted(rows, key=lambda r: (r["delta"], r["point"])))
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
