"""Any VNN-COMP folder: reluverify and a peer (Marabou, or another reluverify checkout) side by side in one run.

Each instance is decided by ``reluverify vnnlib`` and by the peer, one after the other and in
alternating order (instance 1: ours first, instance 2: the peer first, ...), each as a whole process
under ``/usr/bin/time -v`` with the same time limit and one BLAS thread, so both see the same
machine noise. The package's bytecode is compiled once before the run, as an installed copy has it.
The limit is the instance's competition timeout, at most ``--cap`` seconds. Prints a table per group
(property or network) with decided, wrong, total and median seconds and the peak memory, writes a
CSV and a cactus plot (instances decided against time).

    python benchmarks/side_by_side.py ../shared/benchmarks/acasxu --cap 60 --peer marabou --marabou PATH
    python benchmarks/side_by_side.py ../shared/benchmarks/mnistfc --cap 60 --filter 0.03 --peer marabou
    python benchmarks/side_by_side.py ../shared/benchmarks/acasxu --cap 60 --peer checkout --baseline ../previous
    python benchmarks/side_by_side.py ../shared/benchmarks/acasxu --match _1_1_:prop_5 --jobs 2 --peer checkout --peer-jobs 1 --baseline .

Peers: ``marabou`` (Marabou 2.0.0 from ``pip install maraboupy``, in its own venv: it wants
``numpy<2``, ``onnx<2``, ``onnxruntime<2``; found by ``--marabou PATH`` or on PATH), ``checkout``
(``reluverify`` from another checkout, ``--baseline DIR``, e.g. the previous main) or ``none``.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reluverify.benchmark import load_instances  # noqa: E402

DECIDED = ("sat", "unsat")
REPO = Path(__file__).resolve().parents[1]


def timed(command: list[str], limit: float, env: dict | None = None, cwd: str | None = None) -> tuple[str, float, float]:
    """Run a whole process under /usr/bin/time -v: (stdout, wall seconds, peak resident MB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        wrapped = ["/usr/bin/time", "-v", "-o", report.name, *command] if Path("/usr/bin/time").exists() else command
        start = time.monotonic()
        # its own process group, killed whole at the limit: a tool that ignores its own timeout (Marabou
        # can) must not live on under /usr/bin/time and slow the instances after it
        proc = subprocess.Popen(wrapped, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True, cwd=cwd)
        try:
            stdout, stderr = proc.communicate(timeout=limit + 30)
            out = stdout if proc.returncode == 0 else "error\n" + stderr[-300:]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            out = "timeout"
        seconds = time.monotonic() - start
        text = report.read()
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return out, seconds, int(match.group(1)) / 1024.0 if match else float("nan")


def environment(pythonpath: str | None = None) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def compile_bytecode(checkout: Path) -> None:
    """Write the bytecode of ``checkout``'s package, as ``pip install`` does for an installed copy.

    An editable checkout on a machine with ``PYTHONDONTWRITEBYTECODE`` set (this one) would otherwise
    compile every module again in every process, about 0.25 s each time, which no installed copy pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(checkout / "reluverify")], check=True,
                   stdout=subprocess.DEVNULL)


def run_reluverify(onnx, vnnlib, limit, jobs=1, checkout: str | None = None):
    command = [sys.executable, "-m", "reluverify", "vnnlib", str(Path(onnx).resolve()), str(Path(vnnlib).resolve()),
               "--timeout", str(limit), "--quiet"]
    if jobs > 1:
        command += ["--jobs", str(jobs)]
    # run from inside the checkout: ``python -m`` puts the working folder first on sys.path, before
    # PYTHONPATH, so from this repository's root a baseline checkout would silently import this one
    out, seconds, memory = timed(command, limit, environment(checkout), cwd=checkout or str(REPO))
    # the solver's own seconds, from its statistics line ("time 1.23s  boxes ..."): the process less its start
    solve = re.search(r"^time ([0-9.]+)s", out, re.MULTILINE)
    return out.split("\n", 1)[0].strip(), seconds, memory, float(solve.group(1)) if solve else float("nan")


def run_marabou(binary, onnx, vnnlib, limit, workers=1):
    """Marabou on one instance: one worker, or ``workers`` threads in its split-and-conquer mode."""
    parallel = ["--snc", "--num-workers", str(workers)] if workers > 1 else []
    out, seconds, memory = timed([binary, onnx, vnnlib, "--timeout", str(int(limit)), "--verbosity", "0", *parallel],
                                 limit, environment())
    verdict = "unknown"
    for line in (line.strip().lower() for line in out.splitlines()):
        if line in ("sat", "unsat"):
            verdict = line
        elif re.match(r"^(timeout|timed? ?out)", line):
            verdict = "timeout"
    return verdict, seconds, memory, float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--cap", type=float, default=60.0, help="at most this many seconds per instance and tool (default 60)")
    parser.add_argument("--filter", action="append", help="only instances whose file names contain this text (repeatable: any)")
    parser.add_argument("--limit", type=int, help="only the first N instances")
    parser.add_argument("--match", action="append", metavar="ONNX_TEXT:SPEC_TEXT",
                        help="only instances whose network name contains ONNX_TEXT and spec name SPEC_TEXT (repeatable: any)")
    parser.add_argument("--peer", choices=("marabou", "checkout", "none"), default="marabou")
    parser.add_argument("--marabou", help="path of the Marabou binary")
    parser.add_argument("--baseline", help="--peer checkout: the other checkout's folder (its reluverify/ is run)")
    parser.add_argument("--jobs", type=int, default=1, help="reluverify --jobs (worker processes per instance)")
    parser.add_argument("--peer-jobs", type=int, help="--peer checkout: its --jobs (default: the same as --jobs), "
                        "e.g. --jobs 2 --peer-jobs 1 --baseline . for the speedup of sharing one query; "
                        "--peer marabou: above 1, that many threads in its split-and-conquer mode (default: one worker)")
    parser.add_argument("--name", default="side_by_side", help="file stem of the CSV and plot under results/")
    args = parser.parse_args()

    instances = load_instances(args.folder)
    if args.filter:
        instances = [i for i in instances if any(f in Path(i.onnx).name or f in Path(i.vnnlib).name for f in args.filter)]
    if args.match:
        pairs = [m.split(":", 1) for m in args.match]
        instances = [i for i in instances if any(a in Path(i.onnx).name and b in Path(i.vnnlib).name for a, b in pairs)]
    if args.limit:
        instances = instances[: args.limit]
    peer = args.peer
    marabou = None
    if peer == "marabou":
        marabou = args.marabou or shutil.which("Marabou")
        if marabou is None:
            print("Marabou not found (pip install maraboupy, or --marabou PATH): running reluverify alone", file=sys.stderr)
            peer = "none"
    if peer == "checkout" and not args.baseline:
        parser.error("--peer checkout needs --baseline DIR")
    peer_name = {"marabou": "marabou", "checkout": "baseline", "none": "-"}[peer]
    compile_bytecode(REPO)
    if peer == "checkout":
        compile_bytecode(Path(args.baseline).resolve())
    rows = []
    for k, inst in enumerate(instances, start=1):
        limit = min(inst.timeout, args.cap)
        runs = {}

        def ours():
            runs["reluverify"] = run_reluverify(inst.onnx, inst.vnnlib, limit, args.jobs, str(REPO))

        def theirs():
            if peer == "marabou":
                runs[peer_name] = run_marabou(marabou, inst.onnx, inst.vnnlib, limit, args.peer_jobs or 1)
            elif peer == "checkout":
                jobs = args.jobs if args.peer_jobs is None else args.peer_jobs
                runs[peer_name] = run_reluverify(inst.onnx, inst.vnnlib, limit, jobs, str(Path(args.baseline).resolve()))
            else:
                runs[peer_name] = ("-", 0.0, float("nan"), float("nan"))

        for step in ((ours, theirs) if k % 2 else (theirs, ours)):
            step()
        row = {"onnx": Path(inst.onnx).name, "vnnlib": Path(inst.vnnlib).name, "expected": inst.expected or "", "limit": limit}
        for tool, (verdict, seconds, memory, solve) in runs.items():
            # a verdict given after the cap (a tool overrunning its own timeout) is not a decision within
            # it; it is still checked for being wrong (``{tool}_verdict`` keeps it)
            row[tool] = f"late {verdict}" if verdict in DECIDED and seconds > limit else verdict
            row[f"{tool}_verdict"], row[f"{tool}_s"], row[f"{tool}_mb"] = verdict, round(seconds, 3), round(memory, 1)
            row[f"{tool}_solve_s"] = round(solve, 3)
        rows.append(row)
        flag = ""
        for tool in runs:
            if is_wrong(row, tool):
                flag += f"  WRONG({tool})"
        print(
            f"[{k:>3}/{len(instances)}] {row['onnx']:<32} {row['vnnlib'][:40]:<40} expected {row['expected']:<7} "
            + "   ".join(f"{t} {row[t]:<8} {row[t + '_s']:6.1f}s {row[t + '_mb']:6.0f}MB" for t in runs)
            + flag,
            file=sys.stderr,
            flush=True,
        )
    tools = ["reluverify"] + ([peer_name] if peer != "none" else [])
    print_table(rows, tools, args.cap)
    Path("results").mkdir(exist_ok=True)
    csv_path, plot_path = f"results/{args.name}.csv", f"results/{args.name}.png"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cactus(rows, tools, plot_path, args.cap)
    print(f"\nCSV: {csv_path}\nplot: {plot_path}")
    return 1 if any(is_wrong(r, t) for r in rows for t in tools) else 0


def is_wrong(row: dict, tool: str) -> bool:
    """The tool's verdict (within the cap or after it) contradicts a known answer."""
    verdict = row.get(f"{tool}_verdict", row[tool])
    return verdict in DECIDED and row["expected"] in DECIDED and verdict != row["expected"]


def print_table(rows: list[dict], tools: list[str], cap: float) -> None:
    by_property = len({r["vnnlib"] for r in rows}) <= len(rows) / 2
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(Path(row["vnnlib" if by_property else "onnx"]).stem, []).append(row)
    groups["all"] = rows
    width = 44
    print(f"\nwhole-process wall time, competition timeout capped at {cap:.0f} s, one BLAS thread, tools alternating")
    print(f"{'group':<24} {'inst':>4} | " + " | ".join(f"{t:^{width}}" for t in tools))
    print(f"{'':<24} {'':>4} | " + " | ".join(f"{'decided':>7} {'wrong':>5} {'total s':>9} {'median s':>8} {'peak MB':>9}" for _ in tools))
    for name in sorted(groups, key=lambda n: (n == "all", [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])):
        members = groups[name]
        cells = []
        for tool in tools:
            decided = sum(m[tool] in DECIDED for m in members)
            wrong = sum(is_wrong(m, tool) for m in members)
            seconds = [m[f"{tool}_s"] for m in members]
            peak = max((m[f"{tool}_mb"] for m in members), default=float("nan"))
            cells.append(f"{decided:>7} {wrong:>5} {sum(seconds):>9.1f} {statistics.median(seconds):>8.2f} {peak:>9.0f}")
        if name == "all":
            print("-" * (31 + (width + 3) * len(tools)))
        print(f"{name[:24]:<24} {len(members):>4} | " + " | ".join(cells))


def cactus(rows: list[dict], tools: list[str], path: str, cap: float) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for tool, style in zip(tools, ("-", "--", ":")):
        times = sorted(r[f"{tool}_s"] for r in rows if r[tool] in DECIDED)
        ax.step(range(1, len(times) + 1), times, style, where="post", label=f"{tool} ({len(times)} decided)")
    ax.axhline(cap, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("instances decided")
    ax.set_ylabel("seconds per instance (whole process)")
    ax.set_yscale("log")
    ax.set_title(f"{len(rows)} instances, at most {cap:.0f} s each")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
