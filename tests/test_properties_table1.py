"""benchmarks/table1.py runs and writes its CSV (one cell here; the full table is a benchmark)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_one_cell_of_table1(acasxu_dir, tmp_path):
    out = tmp_path / "table1.csv"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "table1.py"), "--network",
         str(acasxu_dir / "ACASXU_run2a_1_1_batch_2000.onnx"), "--points", "2", "--eps", "0.02", "--csv", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Table 1" in proc.stdout and "eps = 0.02" in proc.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1
    row = rows[0]
    assert row["point"] == "2" and float(row["delta"]) == 0.018
    assert row["robust"] == row["par_robust"] and row["robust"] in ("yes", "no")
    assert float(row["seq_seconds"]) > 0 and float(row["par_seconds"]) > 0
