"""Differential soak: reluverify under every strategy against an exact z3 encoding, on random queries.

Usage::

    python benchmarks/differential.py --cases 10000 [--seed 0] [--strategies auto,input-split,relu-split]
                                      [--jobs 2] [--timeout 10] [--z3-timeout 60] [--out results/differential]
    python benchmarks/differential.py --seed 0 --case 123        # replay one case and print it

Case ``i`` has its own random generator, seeded by ``(seed, i)``, so every case replays alone:

* **network** -- a random ReLU chain (1-4 inputs, 1-3 hidden layers of 1-8 units, 1-4 outputs;
  sometimes cancelling units, huge or tiny weights; half of them with 8-bit mantissas) from
  ``tests/random_queries.py``, its weights rounded to float32, written as a float32 ONNX file and
  imported back with ``load_onnx``. float32 weights are exact rationals, so z3 encodes exactly the
  network reluverify reasons about, and onnxruntime confirms counterexamples on the same file;
* **query** -- ``random_query`` from the same module: a random box (some inputs constant), random
  input rows, a DNF of 1-3 disjuncts (sub-boxes, empty boxes) whose right-hand sides lie near
  quantiles of their rows, exact ties between twin outputs; in a third of the cases one row is
  moved onto its value at a random point of its box, shifted by 0, +-1e-12 or +-1e-7 of its scale
  (a near-tie at the threshold);
* **deciders** -- ``decide_with_z3`` (exact rationals) and ``solve`` under every strategy
  (``--strategies``, by default every value of ``reluverify.solver.options.STRATEGIES``).

Every (case, strategy) ends in one outcome:

* ``agree`` -- both decided the same (a ``sat`` counterexample is also re-checked exactly);
* ``tolerance-sat`` -- reluverify ``sat``, z3 ``unsat``, and the counterexample satisfies its
  disjunct within the confirm tolerance (1e-6 of the row's scale) in exact rational arithmetic:
  the documented meaning of ``sat`` (README, "What the answers mean"), counted apart and reported;
* ``tolerance-unsat`` -- reluverify ``unsat``, z3 ``sat``, and z3 finds no point once every row is
  tightened by 1e-7 of its scale: the counterexamples lie within round-off of the threshold;
* ``disagree`` -- any other ``sat`` against ``unsat``, or a counterexample that misses its
  disjunct (or its box, or its input rows) in exact arithmetic;
* ``not compared`` -- either side ``unknown``, ``timeout`` or error.

The script prints a table per decider (cases, agree, disagree, tolerance cases, not compared,
verdict counts, total and median seconds) and the slowest cases, appends one CSV row per case and
decider to ``OUT/seed<S>.csv`` as each case finishes (run the same command again to resume: cases
already there are skipped; ``--fresh`` starts over), and writes each disagreement as a reproducible
instance ``OUT/seed<S>_disagreements/case<i>/`` (``network.onnx``, ``query.json`` with every number
exact, and the command that replays it). Progress goes to stderr. Needs the test extras
(``hypothesis``, for ``tests/random_queries.py``). A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from random_queries import chain_to_onnx, exact_residuals, exact_row_residuals, random_chain, random_query  # noqa: E402
from reluverify.network import ReluChain  # noqa: E402
from reluverify.query import Disjunct, LinearConstraints, Query  # noqa: E402
from reluverify.solver.options import STRATEGIES, SolverOptions  # noqa: E402

DECIDED = ("sat", "unsat")
TIE_SHIFTS = (0.0, 1e-12, -1e-12, 1e-7, -1e-7)
TIGHTEN = 1e-7
"""``tolerance-unsat`` needs z3 to find nothing once every row is tightened by this much of its scale."""
OUTCOMES = ("agree", "disagree", "tolerance-sat", "tolerance-unsat", "not compared")
CSV_FIELDS = ("case", "seed", "decider", "verdict", "outcome", "seconds", "inputs", "relus", "outputs", "disjuncts",
              "input_rows", "tie", "reason")


# ------------------------------------------------------------------ one case
def make_case(seed: int, case: int, folder: Path) -> tuple[Query, dict]:
    """The network (written to ``folder/network.onnx`` and imported back) and query of case ``case``."""
    from reluverify.onnx_import import load_onnx

    rng = np.random.default_rng([seed, case])
    n_in, n_out = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    hidden = [int(rng.integers(1, 9)) for _ in range(int(rng.integers(1, 4)))]
    flags = {name: bool(rng.random() < 0.2) for name in ("cancel", "huge", "tiny")}
    chain = random_chain(rng, [n_in, *hidden, n_out], float(rng.choice([1.0, 1.0, 0.3, 3.0])),
                         mantissa_bits=8 if rng.random() < 0.5 else None, **flags)
    chain = ReluChain(tuple(w.astype(np.float32).astype(np.float64) for w in chain.weights),
                      tuple(b.astype(np.float32).astype(np.float64) for b in chain.biases))
    path = chain_to_onnx(chain, folder / "network.onnx", dtype=np.float32)
    network = load_onnx(path)
    imported = network.relu_chain()
    if not all(np.array_equal(a, b) for a, b in zip(imported.weights + imported.biases, chain.weights + chain.biases)):
        raise RuntimeError("the imported network differs from the float32 chain written")
    generated = random_query(rng, chain)
    disjuncts = list(generated.disjuncts)
    tie = ""
    if rng.random() < 1 / 3:
        disjuncts, tie = _near_tie(rng, chain, disjuncts)
    query = Query((network,), generated.lower, generated.upper, tuple(disjuncts), generated.input_constraints,
                  description=f"differential seed {seed} case {case}")
    meta = {"inputs": n_in, "relus": sum(hidden), "outputs": n_out, "disjuncts": len(disjuncts),
            "input_rows": query.input_constraints.num_rows, "tie": tie}
    return query, meta


def _near_tie(rng, chain: ReluChain, disjuncts: list[Disjunct]) -> tuple[list[Disjunct], str]:
    """One row of one disjunct moved onto its value at a random point of the disjunct's box (then shifted)."""
    live = [k for k, d in enumerate(disjuncts) if not d.is_empty_box() and d.constraints.num_rows]
    if not live:
        return disjuncts, ""
    k = live[int(rng.integers(len(live)))]
    d = disjuncts[k]
    r = int(rng.integers(d.constraints.num_rows))
    lower, upper = np.maximum(d.lower, -1e9), np.minimum(d.upper, 1e9)
    point = lower + (upper - lower) * rng.random(lower.shape[0])
    full = np.concatenate([point, chain.evaluate(point[None, :])[0]])
    row = d.constraints.matrix[r]
    value = float(row @ full)
    shift = float(rng.choice(TIE_SHIFTS))
    rhs = d.constraints.rhs.copy()
    rhs[r] = value + shift * (1.0 + float(np.abs(row) @ np.abs(full)) + abs(value))
    disjuncts[k] = Disjunct(d.lower, d.upper, LinearConstraints(d.constraints.matrix, rhs), d.label)
    return disjuncts, f"disjunct {k} row {r} shift {shift:g}"


def check_counterexample(query: Query, cex, tolerance: float) -> tuple[str, float]:
    """Why a reported counterexample is not one ('' when it holds within ``tolerance``), and its exact
    worst residual relative to the row's scale (<= 0: a counterexample in exact arithmetic)."""
    from reluverify.solver.confirm import INPUT_TOLERANCE

    v = np.asarray(cex.inputs, dtype=np.float64)
    d = query.disjuncts[cex.disjunct]
    if np.any(v < query.lower) or np.any(v > query.upper) or np.any(v < d.lower) or np.any(v > d.upper):
        return "the counterexample lies outside its box", np.inf
    rows = query.input_constraints
    if rows.num_rows and np.any(rows.residuals(v) > INPUT_TOLERANCE * (1.0 + np.abs(rows.rhs).max() + np.abs(v).max())):
        return "the counterexample breaks an input row", np.inf
    residuals, scale = exact_residuals(query, cex.disjunct, v)
    worst = max((float(res / Fraction(float(s))) for res, s in zip(residuals, scale)), default=-1.0)
    if rows.num_rows:
        # the input rows hold within INPUT_TOLERANCE (checked above); a point that needs that slack is a
        # counterexample within the tolerance, not in exact arithmetic (z3 may rightly say unsat)
        in_scale = Fraction(float(1.0 + np.abs(rows.rhs).max() + np.abs(v).max()))
        residuals = exact_row_residuals(rows, [Fraction(float(x)) for x in v])
        worst = max(worst, *(float(residual / in_scale) for residual in residuals))
    if worst > tolerance:
        return f"the counterexample misses disjunct {cex.disjunct} by {worst:.3g} of its scale in exact arithmetic", worst
    return "", worst


def _tightened(query: Query, v: np.ndarray, y: np.ndarray) -> Query:
    """``query`` with every row's right-hand side lowered by TIGHTEN of its scale at the point (v, y)."""
    full = np.concatenate([v, y])

    def tighten(c: LinearConstraints, point: np.ndarray) -> LinearConstraints:
        scale = 1.0 + np.abs(c.matrix) @ np.abs(point) + np.abs(c.rhs)
        return LinearConstraints(c.matrix, c.rhs - TIGHTEN * scale)

    disjuncts = [Disjunct(d.lower, d.upper, tighten(d.constraints, full), d.label) for d in query.disjuncts]
    return Query(query.networks, query.lower, query.upper, tuple(disjuncts),
                 tighten(query.input_constraints, v), query.num_auxiliary, query.description)


def compare(query: Query, z3, result, tolerance: float, z3_timeout: float) -> tuple[str, str]:
    """The outcome of one strategy's ``result`` against z3's (see the module docstring) and why."""
    from reluverify.solver.z3_encoding import decide_with_z3

    worst = None
    if result.verdict == "sat":
        error, worst = check_counterexample(query, result.counterexample, tolerance)
        if error:
            return "disagree", error
    if result.verdict not in DECIDED or z3.verdict not in DECIDED:
        return "not compared", ""
    if result.verdict == z3.verdict:
        return "agree", ""
    if result.verdict == "sat":  # z3 unsat; the counterexample holds within the tolerance (checked above)
        if worst <= 0:
            return "disagree", "z3 unsat, but the counterexample holds in exact arithmetic"
        return "tolerance-sat", f"misses by {worst:.2g} of its scale (tolerance {tolerance:g}), z3 unsat"
    strict = decide_with_z3(_tightened(query, z3.inputs, z3.outputs), timeout_s=z3_timeout)
    if strict.verdict == "unsat":
        return "tolerance-unsat", f"z3's counterexamples lie within {TIGHTEN:g} of the threshold"
    return "disagree", f"reluverify unsat, z3 sat (tightened by {TIGHTEN:g}: {strict.verdict})"


def run_case(seed: int, case: int, strategies: tuple[str, ...], timeout: float, z3_timeout: float,
             out: str | None) -> dict:
    """Decide case ``case`` with z3 and every strategy; plain data out (runs in a worker process)."""
    from reluverify.solver import solve
    from reluverify.solver.z3_encoding import decide_with_z3

    folder = Path(tempfile.mkdtemp(prefix=f"differential-{seed}-{case}-"))
    try:
        query, meta = make_case(seed, case, folder)
        z3 = decide_with_z3(query, timeout_s=z3_timeout)
        rows = [{"decider": "z3", "verdict": z3.verdict, "seconds": z3.seconds, "outcome": "", "reason": z3.reason}]
        disagreements = []
        for strategy in strategies:
            options = SolverOptions(timeout=timeout, strategy=strategy)
            result = solve(query, options)
            outcome, why = compare(query, z3, result, options.tolerances.confirm, z3_timeout)
            rows.append({"decider": strategy, "verdict": result.verdict, "seconds": result.seconds,
                         "outcome": outcome, "reason": why or result.reason})
            if outcome == "disagree":
                disagreements.append((strategy, result, why))
        if disagreements and out:
            _write_instance(Path(out), seed, case, folder, query, z3, disagreements)
        return {"case": case, "meta": meta, "rows": rows}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_instance(out: Path, seed: int, case: int, folder: Path, query: Query, z3, disagreements) -> None:
    """``network.onnx`` and ``query.json`` (numbers as exact hex floats too) of a disagreement."""
    target = out / f"seed{seed}_disagreements" / f"case{case}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "network.onnx", target / "network.onnx")

    def numbers(a) -> dict:
        a = np.asarray(a, dtype=np.float64)
        return {"values": a.tolist(), "hex": [float(x).hex() for x in a.reshape(-1)], "shape": list(a.shape)}

    payload = {
        "seed": seed, "case": case,
        "replay": f"python benchmarks/differential.py --seed {seed} --case {case}",
        "network": "network.onnx",
        "query": {"lower": numbers(query.lower), "upper": numbers(query.upper),
                  "input_rows": {"matrix": numbers(query.input_constraints.matrix),
                                 "rhs": numbers(query.input_constraints.rhs)},
                  "disjuncts": [{"lower": numbers(d.lower), "upper": numbers(d.upper),
                                 "matrix": numbers(d.constraints.matrix), "rhs": numbers(d.constraints.rhs)}
                                for d in query.disjuncts]},
        "z3": {"verdict": z3.verdict, "inputs": None if z3.inputs is None else z3.inputs.tolist()},
        "disagreements": [{"strategy": s, "verdict": r.verdict, "why": why,
                           "counterexample": None if r.counterexample is None else r.counterexample.to_dict()}
                          for s, r, why in disagreements],
    }
    (target / "query.json").write_text(json.dumps(payload, indent=1))


# ------------------------------------------------------------------ many cases
def _read_done(path: Path, deciders: set[str]) -> tuple[list[dict], set[int]]:
    if not path.exists():
        return [], set()
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    have: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        have[int(row["case"])].add(row["decider"])
    done = {case for case, names in have.items() if deciders <= names}
    return [r for r in rows if int(r["case"]) in done], done


def table(rows: list[dict], deciders: list[str]) -> str:
    header = (f"{'decider':<12} {'cases':>6} {'agree':>6} {'disagree':>8} {'tol-sat':>7} {'tol-unsat':>9} {'n/c':>5} "
              f"{'sat':>6} {'unsat':>6} {'unknown':>7} {'timeout':>7} {'error':>5} {'total s':>9} {'median s':>8}")
    lines = [header, "-" * len(header)]
    for name in deciders:
        mine = [r for r in rows if r["decider"] == name]
        outcomes = Counter(r["outcome"] for r in mine)
        verdicts = Counter(r["verdict"] for r in mine)
        seconds = [float(r["seconds"]) for r in mine]
        errors = sum(v for k, v in verdicts.items() if k not in ("sat", "unsat", "unknown", "timeout"))

        def cell(key: str, name=name, outcomes=outcomes):
            return "-" if name == "z3" else outcomes[key]

        lines.append(
            f"{name:<12} {len(mine):>6} {cell('agree'):>6} {cell('disagree'):>8} {cell('tolerance-sat'):>7} "
            f"{cell('tolerance-unsat'):>9} {cell('not compared'):>5} {verdicts['sat']:>6} {verdicts['unsat']:>6} "
            f"{verdicts['unknown']:>7} {verdicts['timeout']:>7} {errors:>5} {sum(seconds):>9.1f} "
            f"{statistics.median(seconds) if seconds else 0.0:>8.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=300, help="number of random cases (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole run (default 0)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated strategies to run (default all: {','.join(STRATEGIES)})")
    parser.add_argument("--jobs", type=int, default=1, help="cases decided in parallel worker processes (default 1)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per solver run (default 10)")
    parser.add_argument("--z3-timeout", type=float, default=60.0, help="seconds per z3 run (default 60)")
    parser.add_argument("--out", default="results/differential", help="folder for the CSV and the disagreements")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming from the CSV")
    parser.add_argument("--case", type=int, help="replay this one case and print it")
    args = parser.parse_args(argv)
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        parser.error(f"unknown strategies {unknown}: choose from {', '.join(STRATEGIES)}")
    if args.case is not None:
        return replay(args, strategies)
    return soak(args, strategies)


def replay(args, strategies) -> int:
    folder = Path(tempfile.mkdtemp(prefix="differential-replay-"))
    query, meta = make_case(args.seed, args.case, folder)
    print(f"case {args.case} (seed {args.seed}): {meta}")
    for k, d in enumerate(query.disjuncts):
        print(f"  disjunct {k}: box [{d.lower}, {d.upper}]", *d.constraints.describe(query.variable_names()), sep="\n    ")
    shutil.rmtree(folder, ignore_errors=True)
    answer = run_case(args.seed, args.case, strategies, args.timeout, args.z3_timeout, args.out)
    for row in answer["rows"]:
        print(f"{row['decider']:<12} {row['verdict']:<8} {row['seconds']:8.3f}s  {row['outcome']:<16} {row['reason']}")
    return 0


def soak(args, strategies) -> int:
    import onnxruntime  # noqa: F401 - imported once here: the forked workers start warm

    import reluverify.onnx_import  # noqa: F401
    import reluverify.onnx_runtime  # noqa: F401
    import reluverify.solver.z3_encoding  # noqa: F401
    from reluverify.parallel import run_tasks
    from reluverify.solver.decide import _blas_controller

    _blas_controller()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"seed{args.seed}.csv"
    deciders = ["z3", *strategies]
    if args.fresh and path.exists():
        path.unlink()
    previous, done = _read_done(path, set(deciders))
    previous = [r for r in previous if int(r["case"]) < args.cases]
    todo = [i for i in range(args.cases) if i not in done]
    print(f"differential: {args.cases} cases (seed {args.seed}), {args.cases - len(todo)} already in {path}; "
          f"deciders {', '.join(deciders)}; {args.jobs} worker(s)", file=sys.stderr, flush=True)
    new_file = not path.exists() or path.stat().st_size == 0
    handle = open(path, "a", newline="")
    writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
    if new_file:
        writer.writeheader()
    limit = len(strategies) * (args.timeout + 10.0) + 2 * args.z3_timeout + 30.0
    tasks = ((i, run_case, (args.seed, i, strategies, args.timeout, args.z3_timeout, str(out))) for i in todo)
    rows = list(previous)
    start = time.monotonic()
    last = 0.0
    disagreements = sum(r["outcome"] == "disagree" for r in previous)
    for count, task in enumerate(run_tasks(tasks, jobs=args.jobs, time_limit=lambda key: limit), start=1):
        if task.status == "ok":
            value = task.value
            new = [{**row, **value["meta"], "case": value["case"], "seed": args.seed} for row in value["rows"]]
        else:  # the worker was killed, crashed or raised: every decider of the case gets an error row
            new = [{"case": task.key, "seed": args.seed, "decider": name, "verdict": f"error ({task.status})",
                    "outcome": "" if name == "z3" else "not compared", "seconds": task.seconds,
                    "reason": task.message} for name in deciders]
        for row in new:
            row["seconds"] = f"{float(row['seconds']):.4f}"
            writer.writerow(row)
        handle.flush()
        rows += [{k: str(v) for k, v in row.items()} for row in new]
        disagreements += sum(row.get("outcome") == "disagree" for row in new)
        now = time.monotonic() - start
        if now - last > 10.0 or count == len(todo):
            last = now
            eta = now / count * (len(todo) - count)
            print(f"[{count:>6}/{len(todo)}] {100 * count / max(1, len(todo)):5.1f}%  elapsed {now / 60:6.1f} min  "
                  f"ETA {eta / 60:6.1f} min  disagreements {disagreements}", file=sys.stderr, flush=True)
    handle.close()
    wall = time.monotonic() - start
    print(table(rows, deciders))
    slowest = sorted(rows, key=lambda r: -float(r["seconds"]))[:10]
    print("\nslowest cases:")
    for r in slowest:
        print(f"  case {r['case']:>6}  {r['decider']:<12} {r['verdict']:<8} {float(r['seconds']):8.2f}s  "
              f"({r.get('inputs', '?')} inputs, {r.get('relus', '?')} ReLUs, {r.get('disjuncts', '?')} disjuncts)")
    tolerance = [r for r in rows if r["outcome"] in ("tolerance-sat", "tolerance-unsat")]
    if tolerance:
        print("\ntolerance cases (documented tolerance effects, not wrong answers):")
        for r in tolerance[:20]:
            print(f"  case {r['case']:>6}  {r['decider']:<12} {r['outcome']:<16} {r['reason']}; tie: {r.get('tie') or '-'}")
    wrong = [r for r in rows if r["outcome"] == "disagree"]
    print(f"\n{len(wrong)} disagreements" + (f", instances in {out / f'seed{args.seed}_disagreements'}" if wrong else ""))
    for r in wrong[:20]:
        print(f"  case {r['case']:>6}  {r['decider']:<12} {r['reason']}")
    print(f"{len(todo)} cases decided in {wall:.0f} s with {args.jobs} worker(s); rows in {path}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
