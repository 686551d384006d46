"""ACAS Xu (or any VNN-COMP folder): reluverify and Marabou side by side in one run.

Each instance is decided by ``reluverify vnnlib`` and by Marabou's ``Marabou`` binary (from
``pip install maraboupy``), one after the other, each as a whole process with the same time
limit, so both see the same machine noise. Prints a table per property, writes a CSV and a
cactus plot (instances decided against time).

    python benchmarks/acasxu_vs_marabou.py ../shared/benchmarks/acasxu --timeout 60 \
        --csv results/acasxu_vs_marabou.csv --plot results/acasxu_vs_marabou.png

Marabou is looked up with ``--marabou PATH``, then on PATH; without it only reluverify runs.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reluverify.benchmark import load_instances  # noqa: E402

DECIDED = ("sat", "unsat")


def run_reluverify(onnx: str, vnnlib: str, timeout: float) -> tuple[str, float]:
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "reluverify", "vnnlib", onnx, vnnlib, "--timeout", str(timeout)],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
        )
        verdict = proc.stdout.split("\n", 1)[0].strip() if proc.returncode == 0 else "error"
    except subprocess.TimeoutExpired:
        verdict = "timeout"
    return verdict, time.monotonic() - start


def run_marabou(binary: str, onnx: str, vnnlib: str, timeout: float) -> tuple[str, float]:
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [binary, onnx, vnnlib, "--timeout", str(int(timeout)), "--verbosity", "0"],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
        )
        lines = [line.strip().lower() for line in proc.stdout.splitlines()]
        verdict = "unknown"
        for line in lines:
            if line in ("sat", "unsat"):
                verdict = line
            elif re.match(r"^(timeout|timed? ?out)", line):
                verdict = "timeout"
    except subprocess.TimeoutExpired:
        verdict = "timeout"
    return verdict, time.monotonic() - start


def find_marabou(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    return shutil.which("Marabou")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per instance and tool (default 60)")
    parser.add_argument("--filter", help="only instances whose file names contain this text")
    parser.add_argument("--limit", type=int, help="only the first N instances")
    parser.add_argument("--marabou", help="path of the Marabou binary")
    parser.add_argument("--csv", default="results/acasxu_vs_marabou.csv")
    parser.add_argument("--plot", default="results/acasxu_vs_marabou.png")
    args = parser.parse_args()

    instances = load_instances(args.folder)
    if args.filter:
        instances = [i for i in instances if args.filter in Path(i.onnx).name or args.filter in Path(i.vnnlib).name]
    if args.limit:
        instances = instances[: args.limit]
    marabou = find_marabou(args.marabou)
    if marabou is None:
        print("Marabou not found (pip install maraboupy, or --marabou PATH): running reluverify alone", file=sys.stderr)
    rows = []
    for k, inst in enumerate(instances, start=1):
        ours, ours_s = run_reluverify(inst.onnx, inst.vnnlib, args.timeout)
        theirs, theirs_s = run_marabou(marabou, inst.onnx, inst.vnnlib, args.timeout) if marabou else ("-", 0.0)
        row = {
            "onnx": Path(inst.onnx).name,
            "vnnlib": Path(inst.vnnlib).name,
            "expected": inst.expected or "",
            "reluverify": ours,
            "reluverify_s": round(ours_s, 3),
            "marabou": theirs,
            "marabou_s": round(theirs_s, 3),
        }
        rows.append(row)
        flag = ""
        for tool in ("reluverify", "marabou"):
            if row[tool] in DECIDED and row["expected"] in DECIDED and row[tool] != row["expected"]:
                flag += f"  WRONG({tool})"
        print(
            f"[{k:>3}/{len(instances)}] {row['onnx']:<34} {row['vnnlib']:<16} expected {row['expected']:<6} "
            f"reluverify {ours:<8} {ours_s:6.1f}s   marabou {theirs:<8} {theirs_s:6.1f}s{flag}",
            file=sys.stderr,
            flush=True,
        )
    print_table(rows, args.timeout)
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cactus(rows, args.plot, args.timeout, with_marabou=marabou is not None)
    print(f"\nCSV: {args.csv}\nplot: {args.plot}")
    return 0


def print_table(rows: list[dict], timeout: float) -> None:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(Path(row["vnnlib"]).stem, []).append(row)
    groups["all"] = rows
    header = f"{'property':<10} {'inst':>4} | {'reluverify':^26} | {'marabou':^26}"
    sub = f"{'':<10} {'':>4} | {'decided':>7} {'wrong':>5} {'total s':>11} | {'decided':>7} {'wrong':>5} {'total s':>11}"
    print(f"\nwhole-process wall time, {timeout:.0f} s limit per instance and tool")
    print(header)
    print(sub)
    print("-" * len(sub))
    for name in sorted(groups, key=lambda n: (n == "all", [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])):
        members = groups[name]
        cells = []
        for tool in ("reluverify", "marabou"):
            decided = sum(m[tool] in DECIDED for m in members)
            wrong = sum(m[tool] in DECIDED and m["expected"] in DECIDED and m[tool] != m["expected"] for m in members)
            total = sum(m[f"{tool}_s"] for m in members)
            cells.append(f"{decided:>7} {wrong:>5} {total:>11.1f}")
        if name == "all":
            print("-" * len(sub))
        print(f"{name:<10} {len(members):>4} | {cells[0]} | {cells[1]}")


def cactus(rows: list[dict], path: str, timeout: float, with_marabou: bool) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tool, style in (("reluverify", "-"), ("marabou", "--")):
        if tool == "marabou" and not with_marabou:
            continue
        times = sorted(r[f"{tool}_s"] for r in rows if r[tool] in DECIDED)
        ax.step(range(1, len(times) + 1), times, style, where="post", label=f"{tool} ({len(times)} decided)")
    ax.axhline(timeout, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("instances decided")
    ax.set_ylabel("seconds per instance (whole process)")
    ax.set_yscale("log")
    ax.set_title(f"{len(rows)} instances, {timeout:.0f} s limit")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
