"""eps*(delta) of Def. 2 over whole domains: the bracket ``reluverify max-eps`` reaches, per network and delta.

Each network x delta is one whole process, ``reluverify max-eps NET --global --domain D --delta d
--timeout S --gap G --json``, under ``/usr/bin/time -v`` (peak memory) with one BLAS thread, ``--jobs N``
of them at a time (in the order given; each line is printed when its run ends). The table
has the network, delta, the witnessed lower end L, the certified upper end U, the relative gap
(U - L) / L, why it stopped, the share of the pairs settled, the wall seconds and the peak memory;
``--csv`` writes it, ``--plot`` draws L and U per delta (one line per network).

    python benchmarks/max_eps.py ../shared/benchmarks/acasxu/ACASXU_run2a_1_1_batch_2000.onnx \\
        --domain ../shared/benchmarks/acasxu/whole_domain.json --delta 0.001 0.005 0.01 0.02 0.05 --timeout 600
    python benchmarks/max_eps.py ../shared/benchmarks/acasxu/*.onnx --domain ../shared/benchmarks/acasxu/whole_domain.json \\
        --delta 0.01 --timeout 600 --csv results/max_eps_acasxu.csv --plot results/max_eps_acasxu.png
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["network", "delta", "lower", "upper", "gap", "status", "settled", "seconds", "peak_mb"]


def measure(network: str, domain: str, delta: float, timeout: float, gap: float, norm: str) -> dict:
    """One ``max-eps`` process: its bracket, wall seconds and peak resident memory."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    network = os.path.abspath(network)
    domain = os.path.abspath(domain) if os.path.exists(domain) else domain
    command = [sys.executable, "-m", "reluverify", "max-eps", network, "--global", f"--domain={domain}",
               "--delta", str(delta), "--timeout", str(timeout), "--gap", str(gap), "--norm", norm, "--json", "--quiet"]
    timed = ["/usr/bin/time", "-v", *command] if os.path.exists("/usr/bin/time") else command
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.run(timed, capture_output=True, text=True, timeout=timeout + 300, env=env, cwd=folder)
    wall = time.monotonic() - start
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    row = {"network": Path(network).name, "delta": delta, "seconds": round(wall, 1),
           "peak_mb": round(int(peak.group(1)) / 1024) if peak else ""}
    try:
        bracket = json.loads(proc.stdout)["brackets"][0]
    except (json.JSONDecodeError, KeyError, IndexError):
        lines = [line for line in proc.stderr.splitlines() if line.startswith("reluverify:")]
        return {**row, "status": "error: " + (lines[-1] if lines else f"exit {proc.returncode}")}
    return {**row, "lower": bracket["lower"], "upper": bracket["upper"], "gap": bracket["gap"],
            "status": bracket["status"], "settled": bracket["settled"]}


def line(row: dict) -> str:
    if "lower" not in row:
        return f"{row['network']:<36} {row['delta']:<8g} {row['status']}"
    gap = f"{100 * row['gap']:.1f}%" if row["gap"] != float("inf") else "-"
    return (f"{row['network']:<36} {row['delta']:<8g} {row['lower']:>10.4g} {row['upper']:>10.4g} {gap:>9} "
            f"{row['status']:<8} {100 * row['settled']:6.1f}% {row['seconds']:8.1f} {row['peak_mb']:>7}")


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for name in dict.fromkeys(r["network"] for r in rows):
        mine = sorted((r for r in rows if r["network"] == name and "lower" in r), key=lambda r: r["delta"])
        if not mine:
            continue
        deltas = [r["delta"] for r in mine]
        shown = axes.plot(deltas, [r["lower"] for r in mine], "^-", label=f"{name}: L (pair)")
        axes.plot(deltas, [r["upper"] for r in mine], "v--", color=shown[0].get_color(), label=f"{name}: U (certified)")
        axes.fill_between(deltas, [r["lower"] for r in mine], [r["upper"] for r in mine], color=shown[0].get_color(),
                          alpha=0.15)
    axes.set_xscale("log") if len({r["delta"] for r in rows}) > 1 else None
    axes.set_yscale("log")
    axes.set_xlabel("delta")
    axes.set_ylabel("eps*(delta): largest score change")
    if 0 < len({r["network"] for r in rows if "lower" in r}) <= 6:
        axes.legend(fontsize=7)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("networks", nargs="+", help="ONNX files")
    parser.add_argument("--domain", required=True, help="the domain (a file or LO:HI)")
    parser.add_argument("--delta", type=float, nargs="+", required=True)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per network and delta")
    parser.add_argument("--gap", type=float, default=0.05)
    parser.add_argument("--norm", choices=("inf", "1"), default="inf")
    parser.add_argument("--csv", help="write the table as CSV")
    parser.add_argument("--plot", help="draw L and U per delta")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    args = parser.parse_args()
    print(f"{'network':<36} {'delta':<8} {'L':>10} {'U':>10} {'gap':>9} {'status':<8} {'settled':>7} {'s':>8} {'peak MB':>7}")
    runs = [(network, delta) for network in args.networks for delta in args.delta]
    started = time.monotonic()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # each thread waits on its own process
        futures = [pool.submit(measure, network, args.domain, delta, args.timeout, args.gap, args.norm)
                   for network, delta in runs]
        rows = []
        for future in as_completed(futures):
            rows.append(future.result())
            print(line(rows[-1]), flush=True)
    order = {run: i for i, run in enumerate(runs)}
    rows.sort(key=lambda r: order.get((next(n for n in args.networks if Path(n).name == r["network"]), r["delta"]), 0))
    print(f"total {sum(r['seconds'] for r in rows):.1f} s of runs, {time.monotonic() - started:.1f} s wall, "
          f"{len(rows)} runs, {args.jobs} at a time")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({key: row.get(key, "") for key in COLUMNS} for row in rows)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
