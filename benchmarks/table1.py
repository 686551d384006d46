"""Table 1 of Katz et al. (FVAV 2017): (delta, eps)-local robustness (Def. 3) on an ACAS Xu network.

Usage::

    python benchmarks/table1.py [--network PATH] [--delta 0.018] [--eps 0.01 0.02 0.03]
                                [--jobs 2] [--timeout 600] [--points 1 2 3 4 5] [--csv results/table1.csv]

One ACAS Xu network (default ``ACASXU_run2a_1_1_batch_2000.onnx`` from ``../shared/benchmarks/acasxu``,
or ``$RELUVERIFY_BENCHMARKS/acasxu``), the five fixed points below, delta = 0.018 (L-infinity, in
the network's normalised input units, the ball clipped to the normalised ACAS Xu input domain),
eps in {0.01, 0.02, 0.03} (in the network's output units). For each cell:

* ``robust`` -- yes (unsat) / no (sat, a counterexample confirmed by onnxruntime) / the verdict;
* ``seq s`` -- wall-clock seconds of one solver run on the whole query (10 disjuncts: label x sign);
* ``par s`` -- wall-clock seconds with the disjuncts split across ``--jobs`` worker processes
  (``reluverify.parallel.run_tasks``), stopping at the first violation; process start-up included.
  By default the 10 disjuncts go to ``--jobs`` groups (disjunct i to worker i mod jobs), which keeps
  what the solver shares between disjuncts of one box; ``--per-disjunct`` makes 10 single-disjunct
  queries instead (the paper's literal scheme; slower here, see docs/properties.md).

Seconds are the property check only (the network is loaded once beforehand). The paper's
Reluplex needed 5 to 38,161 s per cell. The table is printed and written as CSV (one row per cell).
This is a benchmark, not a test: it asserts nothing.

The points (normalised inputs rho, theta, psi, v_own, v_int) are the centres of the input boxes of
ACAS Xu properties 1, 3, 5, 6 and 9 (for property 6, of the bounding box of its two boxes), rounded
to 4 decimals: encounters far and fast (1), head-on close (3), close and slow (5), mid-range crossing
(6) and close with an intruder from behind (9).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NETWORK = "ACASXU_run2a_1_1_batch_2000.onnx"

POINTS = {
    1: (0.6399, 0.0, 0.0, 0.475, -0.475),  # centre of property 1's input box
    2: (-0.301, 0.0, 0.4967, 0.4, 0.4),  # property 3
    3: (-0.323, 0.0477, -0.4996, -0.3636, -0.3333),  # property 5
    4: (0.2856, 0.0, -0.4996, 0.0, 0.0),  # property 6 (bounding box of its two boxes)
    5: (-0.2537, -0.043, -0.4992, -0.4773, -0.4375),  # property 9
}

# The normalised ACAS Xu input domain: (raw bound - mean) / range for rho, theta, psi, v_own, v_int.
DOMAIN_LOWER = (-0.328422877, -0.5, -0.5, -0.5, -0.5)
DOMAIN_UPPER = (0.679857769, 0.5, 0.5, 0.5, 0.5)


def default_network() -> str:
    bench = Path(os.environ.get("RELUVERIFY_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
    return str(bench / "acasxu" / NETWORK)


def run_cell(network, point, delta, epsilon, jobs, timeout, per_disjunct=False):
    from reluverify.properties.eps_local import EpsLocalRobustness
    from reluverify.properties.inputs import Domain
    from reluverify.solver import SolverOptions

    prop = EpsLocalRobustness(network, point, delta, epsilon, "inf", Domain(DOMAIN_LOWER, DOMAIN_UPPER))
    options = SolverOptions(timeout=timeout)
    start = time.perf_counter()
    sequential = prop.check(options, jobs=1)
    seq_seconds = time.perf_counter() - start
    start = time.perf_counter()
    parallel = prop.check(options, jobs=jobs, split_disjuncts=True if per_disjunct else jobs)
    par_seconds = time.perf_counter() - start
    return sequential, seq_seconds, parallel, par_seconds


def answer(result) -> str:
    return {"robust": "yes", "not robust": "no"}.get(result.verdict, result.verdict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default=default_network(), help=f"ONNX file (default: {NETWORK})")
    parser.add_argument("--delta", type=float, default=0.018)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.02, 0.03])
    parser.add_argument("--points", type=int, nargs="+", default=sorted(POINTS), choices=sorted(POINTS))
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the parallel column (default 2)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per cell and mode (default 600)")
    parser.add_argument("--per-disjunct", action="store_true",
                        help="parallel column: one task per disjunct instead of --jobs groups")
    parser.add_argument("--csv", default="results/table1.csv", help="CSV output (results/ is git-ignored)")
    args = parser.parse_args(argv)

    from reluverify.onnx_import import load_onnx

    network = load_onnx(args.network)
    rows = []
    for p in args.points:
        point = np.array(POINTS[p])
        for epsilon in args.eps:
            seq, seq_s, par, par_s = run_cell(network, point, args.delta, epsilon, args.jobs, args.timeout,
                                              args.per_disjunct)
            if answer(seq) != answer(par) and {answer(seq), answer(par)} <= {"yes", "no"}:
                print(f"point {p} eps {epsilon}: sequential and parallel disagree", file=sys.stderr)
            rows.append({
                "point": p, "x0": " ".join(f"{v:g}" for v in point), "delta": args.delta, "epsilon": epsilon,
                "robust": answer(seq), "seq_seconds": round(seq_s, 4), "par_seconds": round(par_s, 4),
                "par_robust": answer(par), "seq_boxes": seq.statistics.get("boxes", 0),
                "seq_splits": seq.splits, "par_tasks": par.queries,
                "violated": seq.counterexample.violated if seq.counterexample else "",
            })
            print(f"  point {p} eps {epsilon}: {answer(seq)} seq {seq_s:.3f} s, par {par_s:.3f} s", file=sys.stderr)

    print(format_table(rows, args))
    os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.csv}")
    return 0


def format_table(rows: list[dict], args) -> str:
    eps_values = list(dict.fromkeys(r["epsilon"] for r in rows))
    head1 = f"{'':8}" + "".join(f"| {'eps = ' + format(e, 'g'):^26}" for e in eps_values)
    head2 = f"{'point':8}" + "".join(f"| {'robust':>6} {'seq s':>8} {'par s':>8}  " for _ in eps_values)
    lines = [
        f"Table 1: (delta, eps)-local robustness, {os.path.basename(args.network)}, delta = {args.delta:g} "
        f"(L-inf), parallel = {args.jobs} workers" + (", one task per disjunct" if args.per_disjunct else ""),
        head1,
        head2,
        "-" * len(head2),
    ]
    for p in dict.fromkeys(r["point"] for r in rows):
        cells = {r["epsilon"]: r for r in rows if r["point"] == p}
        line = f"{p:<8}"
        for e in eps_values:
            r = cells[e]
            line += f"| {r['robust']:>6} {r['seq_seconds']:>8.3f} {r['par_seconds']:>8.3f}  "
        lines.append(line)
    seq_total = sum(r["seq_seconds"] for r in rows)
    par_total = sum(r["par_seconds"] for r in rows)
    lines.append(f"total {len(rows)} cells: sequential {seq_total:.2f} s, parallel {par_total:.2f} s; "
                 f"slowest cell {max(r['seq_seconds'] for r in rows):.3f} s sequential")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
