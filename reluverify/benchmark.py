"""Run a VNN-COMP benchmark folder and compare with its expected verdicts.

A folder holds ``*_instances.csv`` (onnx, vnnlib, timeout seconds) and optionally
``expected_verdicts.csv`` (onnx, vnnlib, expected, ...). Each instance runs in its own
process (whole-process wall time, as the peers are measured) with the competition timeout
times ``timeout_scale``; a process that overstays is killed and counted as a timeout.
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from reluverify.errors import SpecError
from reluverify.parallel import run_tasks

DECIDED = ("sat", "unsat")


@dataclass(frozen=True)
class Instance:
    onnx: str
    vnnlib: str
    timeout: float
    expected: str | None = None


@dataclass
class InstanceResult:
    instance: Instance
    verdict: str
    seconds: float
    reason: str = ""
    statistics: dict = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return self.verdict in DECIDED and self.verdict == self.instance.expected

    @property
    def wrong(self) -> bool:
        return self.verdict in DECIDED and self.instance.expected in DECIDED and self.verdict != self.instance.expected


def load_instances(folder: str | Path) -> list[Instance]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SpecError(f"{folder}: not a benchmark folder")
    csvs = sorted(folder.glob("*_instances.csv")) or sorted(folder.glob("instances.csv"))
    if not csvs:
        raise SpecError(f"{folder}: no *_instances.csv file")
    expected: dict[tuple[str, str], str] = {}
    verdicts = folder / "expected_verdicts.csv"
    if verdicts.exists():
        with open(verdicts, newline="") as handle:
            for row in csv.DictReader(handle):
                expected[(row["onnx"].strip(), row["vnnlib"].strip())] = row["expected"].strip()
    instances = []
    for path in csvs:
        with open(path, newline="") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) < 3:
                    raise SpecError(f"{path}:{line}: expected onnx,vnnlib,timeout")
                onnx, vnnlib = row[0].strip(), row[1].strip()
                try:
                    timeout = float(row[2])
                except ValueError:
                    raise SpecError(f"{path}:{line}: timeout {row[2]!r} is not a number") from None
                if not math.isfinite(timeout) or timeout <= 0:
                    raise SpecError(f"{path}:{line}: timeout {row[2]!r} is not a finite number of seconds > 0")
                instances.append(Instance(str(folder / onnx), str(folder / vnnlib), timeout, expected.get((onnx, vnnlib))))
    return instances


def solve_instance(onnx_path: str, vnnlib_path: str, options) -> dict:
    """Worker: load, compile and solve one instance with ``options`` (a ``SolverOptions``); plain data out."""
    from reluverify.solver import solve
    from reluverify.vnnlib import load_instance

    _, query = load_instance(onnx_path, vnnlib_path)
    result = solve(query, options)
    return {"verdict": result.verdict, "reason": result.reason, "statistics": result.statistics.to_dict()}


def run_benchmark(
    instances: list[Instance],
    timeout_scale: float = 1.0,
    jobs: int = 1,
    options=None,
    progress=None,
    cap: float | None = None,
) -> list[InstanceResult]:
    """Run every instance; ``progress(result, done, total)`` is called as each one finishes.

    ``options`` (a ``SolverOptions``, default ones when None) solve each instance; an instance gets its
    competition timeout times ``timeout_scale``, at most ``cap`` seconds."""
    from reluverify.solver import SolverOptions

    options = options or SolverOptions()
    limits = {i: min(inst.timeout * timeout_scale, cap or float("inf")) for i, inst in enumerate(instances)}
    tasks = (
        (i, solve_instance, (inst.onnx, inst.vnnlib, options.with_timeout(max(1.0, limits[i] - 1.0))))
        for i, inst in enumerate(instances)
    )
    results: list[InstanceResult | None] = [None] * len(instances)
    done = 0
    for outcome in run_tasks(tasks, jobs=jobs, time_limit=lambda i: limits[i] + 5.0):
        inst = instances[outcome.key]
        if outcome.status == "ok":
            value = outcome.value
            result = InstanceResult(inst, value["verdict"], outcome.seconds, value["reason"], value["statistics"])
        elif outcome.status == "timeout":
            result = InstanceResult(inst, "timeout", outcome.seconds, outcome.message)
        else:
            result = InstanceResult(inst, "error", outcome.seconds, outcome.message)
        results[outcome.key] = result
        done += 1
        if progress is not None:
            progress(result, done, len(instances))
    return [r for r in results if r is not None]


def group_key(result: InstanceResult, by: str) -> str:
    path = result.instance.vnnlib if by == "property" else result.instance.onnx
    return Path(path).stem


def choose_grouping(instances: list[Instance]) -> str:
    """Group by property when properties repeat across networks (ACAS Xu), else by network."""
    properties = {i.vnnlib for i in instances}
    return "property" if len(properties) <= len(instances) / 2 else "network"


def summary_rows(results: list[InstanceResult], by: str) -> list[dict]:
    groups: dict[str, list[InstanceResult]] = {}
    for r in results:
        groups.setdefault(group_key(r, by), []).append(r)

    def row(name, members):
        seconds = [m.seconds for m in members]
        return {
            "group": name,
            "instances": len(members),
            "solved": sum(m.verdict in DECIDED for m in members),
            "correct": sum(m.correct for m in members),
            "wrong": sum(m.wrong for m in members),
            "unknown/timeout": sum(m.verdict not in DECIDED for m in members),
            "total_s": sum(seconds),
            "median_s": statistics.median(seconds) if seconds else 0.0,
        }

    rows = [row(name, groups[name]) for name in sorted(groups, key=_natural)]
    rows.append(row("all", results))
    return rows


def _natural(text: str):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def format_table(rows: list[dict]) -> str:
    header = f"{'group':<22} {'inst':>5} {'solved':>6} {'correct':>7} {'wrong':>5} {'unk/to':>6} {'total s':>9} {'median s':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        if r["group"] == "all":
            lines.append("-" * len(header))
        lines.append(
            f"{r['group'][:22]:<22} {r['instances']:>5} {r['solved']:>6} {r['correct']:>7} {r['wrong']:>5} "
            f"{r['unknown/timeout']:>6} {r['total_s']:>9.1f} {r['median_s']:>9.2f}"
        )
    return "\n".join(lines)


def write_csv(results: list[InstanceResult], path: str) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["onnx", "vnnlib", "expected", "verdict", "correct", "wrong", "seconds", "reason", "boxes", "relu_splits", "pivots"])
        for r in results:
            s = r.statistics
            writer.writerow([
                Path(r.instance.onnx).name, Path(r.instance.vnnlib).name, r.instance.expected or "", r.verdict,
                int(r.correct), int(r.wrong), f"{r.seconds:.3f}", r.reason, s.get("boxes", ""), s.get("relu_splits", ""), s.get("pivots", ""),
            ])


def timestamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
