"""How a robustness sweep scales with worker processes: the same ACAS Xu sweep with --jobs 1, 2, ...

Usage::

    python benchmarks/sweep_scaling.py [--networks 1_1 2_1 3_1 4_1] [--points 20] [--deltas 0.01 0.02]
                                       [--epsilons 0.02 0.05] [--jobs 1 2] [--timeout 60] [--repeat 2]
                                       [--csv results/sweep_scaling.csv]

The sweep: (delta, eps)-local robustness (Def. 3, L-infinity) of each network
``ACASXU_run2a_<net>_batch_2000.onnx`` (from ``../shared/benchmarks/acasxu`` or
``$RELUVERIFY_BENCHMARKS/acasxu``) at ``--points`` points drawn uniformly (seed 0) from the
normalised ACAS Xu input domain, for every delta and eps, each ball clipped to that domain: by
default 4 x 20 x 2 x 2 = 320 queries of about 0.1 to 2 s each (Table 1 of the paper uses delta
0.018 and eps 0.01 to 0.03). ``--epsilons`` with no value checks Def. 1 instead (delta-local
robustness, ``decision=min`` since an ACAS Xu advisory is the lowest score); its queries are
mostly shorter (about 0.1 s).

For each ``--jobs`` value the whole ``reluverify sweep`` command runs as a subprocess on a fresh
database (so the wall time includes start-up, planning, prioritisation and the SQLite writes),
``--repeat`` times (the worker counts interleaved, so a change in the machine's load hits them
alike), keeping the fastest run. The table gives the wall seconds, the speedup over
the first ``--jobs`` value, the efficiency (speedup / jobs), the summed per-query seconds and the
verdict counts (which must not depend on the number of workers), and the machine's load average
when the run started (on a machine shared with others, the kernel's autogroup scheduling gives
each busy terminal session an equal share of the CPUs, so a second worker only helps as far as
the other sessions leave a core idle). Written as CSV too. This is a benchmark, not a test: it
asserts nothing, and warns when the verdicts differ between runs.
"""

from __future__ import annotations

import argparse
import csv
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DOMAIN_LOWER = (-0.328422877, -0.5, -0.5, -0.5, -0.5)
DOMAIN_UPPER = (0.679857769, 0.5, 0.5, 0.5, 0.5)


def acasxu_folder() -> Path:
    return Path(os.environ.get("RELUVERIFY_BENCHMARKS", REPO.parent / "shared" / "benchmarks")) / "acasxu"


def run_once(networks: list[str], points: Path, domain: Path, deltas: list[str], epsilons: list[str], jobs: int,
             timeout: float, folder: Path) -> dict:
    db = folder / f"sweep-jobs{jobs}-{time.monotonic_ns()}.sqlite"
    command = [sys.executable, "-m", "reluverify", "sweep", *networks, "--points", str(points), "--domain", str(domain),
               "--delta", *deltas, "--decision", "min", "--jobs", str(jobs), "--timeout", str(timeout),
               "--db", str(db), "--quiet"]
    if epsilons:
        command += ["--epsilon", *epsilons]
    load = os.getloadavg()[0]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"sweep failed ({done.returncode}): {done.stderr.strip()}")
    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT key, verdict, seconds FROM results").fetchall()
    connection.close()
    return {"wall": wall, "verdicts": {k: v for k, v, _ in rows}, "query_s": sum(s for _, _, s in rows),
            "counts": Counter(v for _, v, _ in rows), "load": load}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["1_1", "2_1", "3_1", "4_1"],
                        help="ACAS Xu networks, as 1_1 (default 1_1 2_1 3_1 4_1)")
    parser.add_argument("--points", type=int, default=20, help="points per network (default 20)")
    parser.add_argument("--deltas", nargs="+", default=["0.01", "0.02"], help="radii (default 0.01 0.02)")
    parser.add_argument("--epsilons", nargs="*", default=["0.02", "0.05"],
                        help="output tolerances, Def. 3 (default 0.02 0.05); none: Def. 1")
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2], help="worker counts to compare (default 1 2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per query (default 60)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per worker count, the fastest is kept (default 2)")
    parser.add_argument("--csv", default=str(REPO / "results" / "sweep_scaling.csv"), help="CSV output")
    args = parser.parse_args()

    folder = acasxu_folder()
    networks = [str(folder / f"ACASXU_run2a_{name}_batch_2000.onnx") for name in args.networks]
    missing = [n for n in networks if not os.path.exists(n)]
    if missing:
        raise SystemExit(f"missing network(s): {', '.join(missing)}")
    rng = np.random.default_rng(0)
    points = rng.uniform(DOMAIN_LOWER, DOMAIN_UPPER, size=(args.points, 5))
    queries = len(networks) * args.points * len(args.deltas) * max(1, len(args.epsilons))
    kind = f"Def. 3, eps {' '.join(args.epsilons)}" if args.epsilons else "Def. 1"
    print(f"sweep: {len(networks)} ACAS Xu networks x {args.points} points x {len(args.deltas)} deltas ({kind}) = "
          f"{queries} queries; jobs {args.jobs}; {os.cpu_count()} CPUs", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "points.npy", points)
        (tmp / "domain.json").write_text(f'{{"lower": {list(DOMAIN_LOWER)}, "upper": {list(DOMAIN_UPPER)}}}')
        reference = None
        best: dict[int, dict] = {}
        for attempt in range(args.repeat):
            for jobs in args.jobs:
                run = run_once(networks, tmp / "points.npy", tmp / "domain.json", args.deltas, args.epsilons, jobs,
                               args.timeout, tmp)
                print(f"  jobs {jobs} run {attempt + 1}: {run['wall']:.1f} s (load average {run['load']:.1f})",
                      file=sys.stderr)
                if reference is None:
                    reference = run["verdicts"]
                elif run["verdicts"] != reference:
                    changed = sum(reference[k] != v for k, v in run["verdicts"].items())
                    print(f"  WARNING: {changed} verdicts differ from the first run (timeouts?)", file=sys.stderr)
                if jobs not in best or run["wall"] < best[jobs]["wall"]:
                    best[jobs] = run
        results = [(jobs, best[jobs]) for jobs in args.jobs]
    base = results[0][1]["wall"]
    header = f"{'jobs':>4} {'wall s':>8} {'speedup':>8} {'effic.':>7} {'query s':>8} {'queries':>7} {'robust':>6} " \
             f"{'not rob':>7} {'other':>5} {'load':>5}"
    print(header)
    print("-" * len(header))
    lines = []
    for jobs, run in results:
        counts = run["counts"]
        speedup = base / run["wall"]
        other = sum(counts.values()) - counts["robust"] - counts["not robust"]
        print(f"{jobs:>4} {run['wall']:>8.1f} {speedup:>8.2f} {speedup / jobs * results[0][0]:>7.2f} "
              f"{run['query_s']:>8.1f} {sum(counts.values()):>7} {counts['robust']:>6} {counts['not robust']:>7} {other:>5} "
              f"{run['load']:>5.1f}")
        lines.append({"jobs": jobs, "wall_s": round(run["wall"], 3), "speedup": round(speedup, 3),
                      "query_s": round(run["query_s"], 3), "queries": sum(counts.values()),
                      "robust": counts["robust"], "not_robust": counts["not robust"], "other": other,
                      "networks": " ".join(args.networks), "points": args.points, "deltas": " ".join(args.deltas),
                      "epsilons": " ".join(args.epsilons), "repeat": args.repeat, "cpus": os.cpu_count(),
                      "load_average": round(run["load"], 2)})
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerows(lines)
    print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
