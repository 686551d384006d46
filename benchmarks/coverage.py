"""Which ONNX networks reluverify imports, and whether it computes what onnxruntime computes.

For every ``.onnx`` or ``.onnx.gz`` file under the folders (or the files) given, in its own process
(at most ``--timeout`` seconds; a ``.gz`` file is decompressed to a temporary folder first):

1. import it as ``reluverify info`` does (``load_onnx(path, drop_final_softmax=True)``);
2. draw ``--samples`` random inputs from the network's input domain -- the box of the first VNN-LIB
   specification an ``*_instances.csv`` of an enclosing folder pairs with the file (the hull of its
   disjuncts' input bounds), else [0, 1] for every input -- and compare reluverify's outputs with
   onnxruntime's on the file (its logits where a final Softmax was dropped):
   ``max |ours - onnxruntime| / max(1, max |onnxruntime|)``.

It prints a Markdown table, one row per file (imported, ReLUs, other nonlinear units, ONNX nodes, the
difference, the domain used, the seconds of the import and comparison, the failure without its node
names) and a summary line, and writes every column, the whole failure message included, to
``--csv FILE``. Files over ``--max-mb`` MB are
skipped with a note.

    python benchmarks/coverage.py ../shared/benchmarks/breadth
    python benchmarks/coverage.py ../shared/benchmarks --csv coverage.csv
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["file", "imported", "relus", "nonlinear", "onnx_nodes", "max_rel_diff", "domain", "seconds", "message"]
TOLERANCE = 1e-4
"""The relative difference below which a file counts as matching onnxruntime (the issue's criterion)."""


# ------------------------------------------------------------------ one file, in its own process
def spec_domain(path: Path, size: int):
    """``(lower, upper, spec name)`` of the first VNN-LIB specification an ``*_instances.csv`` of an
    enclosing folder pairs with ``path``, when its input box is finite and of ``size`` inputs; else None."""
    import numpy as np

    from reluverify.vnnlib import read_vnnlib

    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    for folder in list(path.resolve().parents)[:3]:
        for listing in sorted(folder.glob("*instances.csv")):
            with open(listing, newline="") as handle:
                for row in csv.reader(handle):
                    if len(row) >= 2 and Path(row[0].strip()).name in (name, path.name):
                        spec = folder / row[1].strip()
                        try:
                            parsed = read_vnnlib(spec)
                        except Exception:  # noqa: BLE001 - a spec it cannot read leaves the default domain
                            return None
                        lower = np.min([d[0] for d in parsed.disjuncts], axis=0)
                        upper = np.max([d[1] for d in parsed.disjuncts], axis=0)
                        if lower.size != size or not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
                            return None
                        return lower, upper, spec.name
    return None


def onnx_node_count(path: Path) -> int | None:
    try:
        from reluverify import onnx_proto

        return len(onnx_proto.parse_model(path.read_bytes()).graph.node)
    except Exception:  # noqa: BLE001 - the import's own message says what is wrong
        return None


def check_one(path: Path, original: Path, samples: int) -> dict:
    """Import ``path`` and compare it with onnxruntime (``original``: where it came from, for its domain)."""
    import numpy as np

    from reluverify.onnx_import import load_onnx
    from reluverify.onnx_runtime import reference_for

    row = {"imported": "no", "onnx_nodes": onnx_node_count(path)}
    try:
        network = load_onnx(path, drop_final_softmax=True)
    except Exception as exc:  # noqa: BLE001 - every failure is a row, whatever its kind
        message = (str(exc).splitlines() or [type(exc).__name__])[0]
        row["message"] = message[len(f"{path}: "):] if message.startswith(f"{path}: ") else message
        return row
    row["imported"] = "yes"
    row["relus"] = network.num_relus
    row["nonlinear"] = sum(count for kind, count in network.activation_counts.items() if kind != "relu")
    found = spec_domain(original, network.input_size)
    lower, upper, row["domain"] = found if found else (np.zeros(network.input_size), np.ones(network.input_size),
                                                       "[0, 1]")
    x = np.random.default_rng(0).uniform(lower, upper, size=(samples, network.input_size))
    try:
        ours, ref = network.evaluate(x), reference_for(network)(x)
    except Exception as exc:  # noqa: BLE001
        row["message"] = "comparison failed: " + (str(exc).splitlines() or [type(exc).__name__])[0]
        return row
    scale = max(1.0, float(np.max(np.abs(ref))))
    row["max_rel_diff"] = float(np.max(np.abs(np.asarray(ours) - np.asarray(ref))) / scale)
    notes = [] if row["max_rel_diff"] <= TOLERANCE else [f"differs from onnxruntime by more than {TOLERANCE:g}"]
    if network.final_softmax:
        notes.append(f"final {network.final_softmax} dropped (logits compared)")
    if notes:
        row["message"] = "; ".join(notes)
    return row


def child(file: str, samples: int) -> None:
    """The worker: check ``file`` (decompressed first when it ends in .gz) and print the row as JSON."""
    sys.path.insert(0, str(REPO))
    original = Path(file)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        path = original
        if original.name.endswith(".gz"):
            path = Path(folder) / original.name[:-3]
            with gzip.open(original, "rb") as source, open(path, "wb") as target:
                shutil.copyfileobj(source, target)
        row = check_one(path, original, samples)
    row["seconds"] = round(time.monotonic() - start, 2)
    print(json.dumps(row))


# ------------------------------------------------------------------ the table
def network_files(paths: list[str]) -> list[Path]:
    files = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith((".onnx", ".onnx.gz")))
        elif path.is_file():
            files.append(path)
        else:
            print(f"coverage: {given}: no such file or folder", file=sys.stderr)
    return files


def measure(path: Path, samples: int, timeout: float, max_mb: float) -> dict:
    row = {"file": str(path)}
    size_mb = path.stat().st_size / 1e6
    if size_mb > max_mb:
        return {**row, "imported": "skipped", "message": f"{size_mb:.0f} MB, over --max-mb {max_mb:g}"}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, __file__, "--one", str(path), "--samples", str(samples)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**row, "imported": "no", "seconds": round(time.monotonic() - start, 1),
                "message": f"still running after {timeout:g} s"}
    try:
        return {**row, **json.loads(proc.stdout.strip().splitlines()[-1])}
    except (json.JSONDecodeError, IndexError):
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {**row, "imported": "no", "seconds": round(time.monotonic() - start, 1), "message": last}


def shown(row: dict, column: str, root: Path | None) -> str:
    value = row.get(column)
    if value is None:
        return "-"
    if column == "file":
        path = Path(value)
        return str(path.relative_to(root)) if root and path.is_relative_to(root) else str(value)
    if column == "max_rel_diff":
        return f"{value:.1e}"
    if column == "message":  # the node names stay in the CSV
        return re.sub(r" \(nodes? [^()]*\)", "", str(value))
    return str(value)


def print_table(rows: list[dict], root: Path | None, width: int = 120) -> None:
    """A Markdown table (the message without node names, cut to ``width`` characters) and a summary line."""
    columns = ["file", "imported", "relus", "nonlinear", "onnx_nodes", "max_rel_diff", "domain", "seconds", "message"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join(" --- " for _ in columns) + "|")
    for row in rows:
        cells = [shown(row, c, root) for c in columns]
        cells[-1] = cells[-1] if len(cells[-1]) <= width else cells[-1][: width - 3] + "..."
        print("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    imported = [r for r in rows if r.get("imported") == "yes"]
    matching = [r for r in imported if r.get("max_rel_diff") is not None and r["max_rel_diff"] <= TOLERANCE]
    skipped = sum(r.get("imported") == "skipped" for r in rows)
    print(f"\n{len(imported)} of {len(rows) - skipped} networks import, {len(matching)} match onnxruntime "
          f"(relative difference <= {TOLERANCE:g})" + (f"; {skipped} skipped (size)" if skipped else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="folders (searched recursively) or ONNX files")
    parser.add_argument("--csv", metavar="FILE", help="write every row, whole messages included")
    parser.add_argument("--samples", type=int, default=16, help="random inputs per network (default 16)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per network (default 300)")
    parser.add_argument("--max-mb", type=float, default=50.0, help="skip files larger than this (default 50)")
    parser.add_argument("--width", type=int, default=120, help="characters of the message shown in the table")
    parser.add_argument("--one", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        child(args.one, args.samples)
        return 0
    files = network_files(args.paths)
    if not files:
        parser.error("no .onnx or .onnx.gz files found")
    roots = [Path(p).resolve() for p in args.paths if Path(p).is_dir()]
    root = Path(os.path.commonpath(roots)) if roots else None
    rows = []
    for path in files:
        rows.append(measure(path.resolve() if root else path, args.samples, args.timeout, args.max_mb))
        print(f"{shown(rows[-1], 'file', root)}: {rows[-1].get('imported')}", file=sys.stderr)
    print_table(rows, root, args.width)
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
