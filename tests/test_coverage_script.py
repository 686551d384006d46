"""benchmarks/coverage.py: imports each network, compares it with onnxruntime, prints the table and the CSV."""

from __future__ import annotations

import csv
import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
from onnx import helper

from onnx_builders import model, save, value
from random_queries import chain_to_onnx, random_chain

REPO = Path(__file__).resolve().parents[1]


def test_coverage_table_and_csv(tmp_path):
    folder = tmp_path / "bench"
    (folder / "onnx").mkdir(parents=True)
    (folder / "vnnlib").mkdir()
    good = chain_to_onnx(random_chain(np.random.default_rng(0), [3, 5, 2]), folder / "onnx" / "good.onnx",
                         dtype=np.float32)
    (folder / "onnx" / "zipped.onnx.gz").write_bytes(gzip.compress(Path(good).read_bytes()))
    nodes = [helper.make_node("Hardmax", ["x"], ["a"], name="h"), helper.make_node("Erf", ["a"], ["y"], name="s")]
    save(model(nodes, [value("x", [1, 3])], [value("y", [1, 3])]), folder / "onnx" / "unsupported.onnx")
    (folder / "onnx" / "junk.onnx").write_bytes(b"not a protobuf")
    (folder / "onnx" / "huge.onnx").write_bytes(b"\0" * 300_000)
    (folder / "vnnlib" / "spec.vnnlib").write_text(
        "".join(f"(declare-const X_{i} Real)\n(assert (>= X_{i} 10))\n(assert (<= X_{i} 11))\n" for i in range(3))
        + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n(assert (<= Y_0 Y_1))\n")
    (folder / "bench_instances.csv").write_text("onnx/good.onnx,vnnlib/spec.vnnlib,60\n")
    out = tmp_path / "coverage.csv"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "coverage.py"), str(folder), "--csv", str(out),
                           "--max-mb", "0.2", "--samples", "4"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {Path(row["file"]).name: row for row in csv.DictReader(out.open())}
    assert set(rows) == {"good.onnx", "zipped.onnx.gz", "unsupported.onnx", "junk.onnx", "huge.onnx"}
    assert rows["good.onnx"]["imported"] == "yes" and float(rows["good.onnx"]["max_rel_diff"]) < 1e-5
    assert rows["good.onnx"]["relus"] == "5" and rows["good.onnx"]["domain"] == "spec.vnnlib"
    assert rows["zipped.onnx.gz"]["imported"] == "yes" and rows["zipped.onnx.gz"]["domain"] == "[0, 1]"
    assert rows["unsupported.onnx"]["imported"] == "no"
    assert "'Hardmax' x1 (node 'h'), 'Erf' x1 (node 's')" in rows["unsupported.onnx"]["message"]
    assert rows["junk.onnx"]["imported"] == "no" and "not a valid ONNX file" in rows["junk.onnx"]["message"]
    assert rows["huge.onnx"]["imported"] == "skipped" and "--max-mb" in rows["huge.onnx"]["message"]
    assert "| onnx/good.onnx | yes | 5 |" in proc.stdout
    assert "2 of 4 networks import, 2 match onnxruntime" in proc.stdout
