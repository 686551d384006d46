"""Certificates on a VNN-COMP folder: what a proof costs to write and to check.

Per instance (its competition timeout, at most ``--cap`` seconds), three whole processes, one
after the other, with one BLAS thread:

1. ``reluverify vnnlib NET SPEC --json`` (no proof);
2. ``reluverify vnnlib NET SPEC --json --proof FILE``;
3. ``reluverify check-proof NET SPEC FILE --json`` (when a certificate was written).

The table shows the times each process measures itself (the solver's ``seconds``, the checker's
``seconds``: no interpreter start-up or imports), the overhead of recording the proof
(solve with proof / solve without), the certificate's size and leaves, and the checker's answer;
the CSV also has each process's wall time.

    python benchmarks/certificates.py ../shared/benchmarks/test
    python benchmarks/certificates.py ../shared/benchmarks/acasxu --filter prop_3. --filter prop_4. --networks 10 --cap 60
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reluverify.benchmark import load_instances  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["network", "spec", "verdict", "verdict_proof", "solve_s", "solve_proof_s", "overhead", "bytes", "leaves",
           "check_s", "valid", "reason", "solve_wall_s", "solve_proof_wall_s", "check_wall_s"]


def run(args: list[str], limit: float) -> tuple[dict, float]:
    """A ``reluverify`` command with --json in its own process: (its JSON or an error dict, wall seconds)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "reluverify", *args, "--json"], capture_output=True, text=True,
                              timeout=limit + 60, env=env)
    except subprocess.TimeoutExpired:
        return {"verdict": "killed"}, time.monotonic() - start
    wall = time.monotonic() - start
    try:
        return json.loads(proc.stdout), wall
    except json.JSONDecodeError:
        return {"verdict": "error", "reason": (proc.stderr.strip().splitlines() or [""])[-1]}, wall


def measure(onnx: str, spec: str, limit: float, folder: Path) -> dict:
    proof = folder / "proof.npz"
    if proof.exists():
        proof.unlink()
    plain, plain_wall = run(["vnnlib", onnx, spec, "--timeout", str(limit), "--quiet"], limit)
    proved, proved_wall = run(["vnnlib", onnx, spec, "--timeout", str(limit), "--quiet", "--proof", str(proof)], limit)
    row = {"network": Path(onnx).name, "spec": Path(spec).name, "verdict": plain.get("verdict"),
           "verdict_proof": proved.get("verdict"), "solve_s": plain.get("seconds"), "solve_proof_s": proved.get("seconds"),
           "solve_wall_s": round(plain_wall, 3), "solve_proof_wall_s": round(proved_wall, 3)}
    if row["solve_s"] and row["solve_proof_s"]:
        row["overhead"] = row["solve_proof_s"] / max(row["solve_s"], 1e-3)
    written = (proved.get("proof") or {}).get("certificate")
    if written:
        row["bytes"], row["leaves"] = proved["proof"]["bytes"], proved["proof"]["leaves"]
        checked, check_wall = run(["check-proof", onnx, spec, str(proof)], limit)
        row.update(check_s=checked.get("seconds"), valid=checked.get("valid"), reason=checked.get("reason", ""),
                   check_wall_s=round(check_wall, 3))
    return row


def fmt(value, spec: str = ".3f") -> str:
    if value is None or value == "":
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="VNN-COMP benchmark folder (*_instances.csv or instances.csv)")
    parser.add_argument("--filter", action="append", default=[], metavar="TEXT",
                        help="keep instances whose 'onnx,vnnlib' contains TEXT (repeatable: any of them)")
    parser.add_argument("--networks", type=int, help="keep the first N networks (in the CSV's order)")
    parser.add_argument("--limit", type=int, help="at most N instances")
    parser.add_argument("--cap", type=float, default=60.0, help="time limit per process, at most (default 60 s)")
    parser.add_argument("--out", default="certificates.csv", help="CSV file (default certificates.csv)")
    args = parser.parse_args(argv)
    instances = [i for i in load_instances(args.folder)
                 if not args.filter or any(t in f"{Path(i.onnx).name},{Path(i.vnnlib).name}" for t in args.filter)]
    if args.networks:
        keep = list(dict.fromkeys(i.onnx for i in instances))[: args.networks]
        instances = [i for i in instances if i.onnx in keep]
    instances = instances[: args.limit] if args.limit else instances
    rows = []
    header = (f"{'network':<34} {'spec':<20} {'verdict':<8} {'solve s':>8} {'proof s':>8} {'x':>5} {'bytes':>9} "
              f"{'leaves':>7} {'check s':>8} valid")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for instance in instances:
            row = measure(instance.onnx, instance.vnnlib, min(instance.timeout, args.cap), Path(tmp))
            rows.append(row)
            verdict = row["verdict"] if row["verdict"] == row["verdict_proof"] else f"{row['verdict']}/{row['verdict_proof']}"
            print(f"{row['network'][:34]:<34} {row['spec'][:20]:<20} {verdict:<8} {fmt(row['solve_s']):>8} "
                  f"{fmt(row['solve_proof_s']):>8} {fmt(row.get('overhead')):>5} {fmt(row.get('bytes')):>9} "
                  f"{fmt(row.get('leaves')):>7} {fmt(row.get('check_s')):>8} {fmt(row.get('valid'))}", flush=True)
    proven = [r for r in rows if r.get("valid") is not None]
    if proven:
        print(f"\n{len(proven)} certificates, {sum(bool(r['valid']) for r in proven)} valid; median overhead "
              f"{statistics.median(r['overhead'] for r in proven):.2f}x, total solve {sum(r['solve_s'] for r in proven):.1f} s, "
              f"with proof {sum(r['solve_proof_s'] for r in proven):.1f} s, check {sum(r['check_s'] for r in proven):.1f} s, "
              f"largest certificate {max(r['bytes'] for r in proven)} bytes")
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in COLUMNS} for r in rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
