"""``reluverify report FILE.sqlite``: print or plot a sweep's results (finished or still running).

    reluverify report FILE.sqlite [--run ID] [--domain TEXT] [--property DEF]
                      [--plot FILE.png] [--csv FILE.csv] [--radii] [--rows] [--json]

Prints the results run by run (a run: one property on one domain, :mod:`reluverify.sweep.runs`):
a heading naming the run's property and domain and how many of its planned queries finished
("3 of 60 done"), then its summary table (one line per network, property, norm, delta and
epsilon: queries and verdict counts, total and median seconds) and its own total. Runs are never
summed together; ``--run``, ``--domain`` and ``--property`` keep the runs they name.
``--radii`` adds the certified radius per point (the largest delta of the sweep up to which every
delta is robust), ``--rows`` one line per query, ``--json`` prints everything as JSON instead;
``--csv`` writes one line per query and ``--plot`` draws the verdict per point and delta. The
database is opened read-only, so a sweep may still be writing it.
"""

from __future__ import annotations

import json
import os


def register(subparsers) -> None:
    from reluverify.cli.common import seconds

    parser = subparsers.add_parser(
        "report",
        help="print or plot the results of a sweep (its SQLite database)",
        description="Summarise a reluverify sweep database run by run (a run: one property on one domain; runs "
        "are never summed together): verdict counts and times per network, property, delta and epsilon, and how "
        "many of the planned queries finished; optionally the certified radius per point, one line per query, a "
        "CSV file or a picture.",
    )
    parser.add_argument("db", metavar="FILE.sqlite", help="the sweep's results database")
    parser.add_argument("--run", metavar="ID",
                        help="only the run whose fingerprint starts with ID (as the headings show it)")
    parser.add_argument("--domain", metavar="TEXT",
                        help="only the runs on this domain: its words as the headings show them (e.g. '[0, 1]^64'), "
                        "its file name, 'none', or the start of its sha256")
    parser.add_argument("--property", metavar="DEF", dest="prop",
                        help="only the runs of this property: Def.1 (local) or Def.3 (eps-local)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the verdict per point and delta")
    parser.add_argument("--csv", metavar="FILE.csv", help="write one line per query")
    parser.add_argument("--radii", action="store_true", help="print the certified radius per point")
    parser.add_argument("--rows", action="store_true", help="print one line per query")
    parser.add_argument("--json", action="store_true", help="print the runs, summary (and radii, rows) as JSON")
    parser.add_argument("--lock-timeout", type=seconds(zero=True), default=10.0,
                        help="seconds to wait for a database another process has locked (default 10)")
    parser.set_defaults(handler=run)


def _row_line(row: dict) -> str:
    eps = "-" if row.get("epsilon") is None else f"{row['epsilon']:.4g}"
    label = "" if row.get("label") is None else f"label {row['label']}"
    reason = f"  ({row['reason']})" if row.get("reason") and row["verdict"] not in ("robust", "not robust") else ""
    return (f"{os.path.basename(row['network']):<34} point {row['point_index']:>4}  delta {row['delta']:<8.4g} eps {eps:<7} "
            f"{row['verdict']:<10} {row['seconds']:7.2f}s  {label}{reason}")


def _radii_lines(radii: list[dict]) -> list[str]:
    lines = [f"{'network':<34} {'prop':<5} {'eps':>7} {'point':>5} {'certified':>9} {'refuted':>9}"]
    for r in radii:
        eps = "-" if r["epsilon"] is None else f"{r['epsilon']:.4g}"
        cert = "-" if r["certified"] is None else f"{r['certified']:.4g}"
        ref = "-" if r["refuted"] is None else f"{r['refuted']:.4g}"
        kind = "Def.1" if r["kind"] == "local-robustness" else "Def.3"
        lines.append(f"{r['network'][:34]:<34} {kind:<5} {eps:>7} {r['point_index']:>5} {cert:>9} {ref:>9}")
    return lines


def _print_runs(args, runs: list) -> None:
    from reluverify.sweep.report import certified_radii, format_summary, summary_rows

    if len(runs) > 1:
        print(f"{args.db}: {len(runs)} runs (different properties or domains), each summarised apart; "
              "--run ID keeps one")
    for number, group in enumerate(runs):
        if number or len(runs) > 1:
            print()
        print(group.heading())
        if not group.rows:
            continue
        print(format_summary(summary_rows(group.rows)))
        radii = certified_radii(group.rows) if args.radii else []
        if radii:
            print()
            print("\n".join(_radii_lines(radii)))
        if args.rows:
            print()
            for row in group.rows:
                print(_row_line(row))


def _json(args, runs: list, rows: list[dict]) -> dict:
    from reluverify.sweep.report import certified_radii, summary_rows
    from reluverify.sweep.runs import run_of

    payload = {"database": args.db, "queries": len(rows), "runs": [], "summary": [], "radii": []}
    for group in runs:
        summary, radii = summary_rows(group.rows), certified_radii(group.rows)
        payload["runs"].append({**group.to_dict(), "summary": summary, "radii": radii})
        payload["summary"] += summary
        payload["radii"] += radii
    if args.rows:
        payload["rows"] = [{**row, "run": run_of(row)} for row in rows]
    return payload


def run(args) -> int:
    from reluverify.errors import SpecError
    from reluverify.sweep.report import load_sweep, select_runs, split_runs, write_csv

    for option in ("plot", "csv"):
        target = getattr(args, option)
        if target:
            folder = os.path.dirname(os.path.abspath(target))
            if not os.path.isdir(folder):
                raise SpecError(f"--{option} {target}: the folder {folder} does not exist")
    rows, planned, described = load_sweep(args.db, lock_timeout=args.lock_timeout)
    runs = select_runs(split_runs(rows, planned, described), args.run, args.domain, args.prop)
    rows = [row for group in runs for row in group.rows]
    if args.json:
        print(json.dumps(_json(args, runs, rows), indent=2))
    elif not runs:
        print(f"{args.db}: no results yet")
    else:
        _print_runs(args, runs)
    if args.csv:
        try:
            write_csv(rows, args.csv)
        except OSError as exc:
            raise SpecError(f"--csv {args.csv}: cannot write: {exc.strerror or exc}") from None
    if args.plot:
        from reluverify.sweep.plot import plot_sweep

        try:
            plot_sweep(rows, args.plot, title=os.path.basename(args.db))
        except OSError as exc:
            raise SpecError(f"--plot {args.plot}: cannot write the picture: {exc.strerror or exc}") from None
    return 0
