"""``reluverify report FILE.sqlite``: print or plot a sweep's results (finished or still running).

    reluverify report FILE.sqlite [--plot FILE.png] [--csv FILE.csv] [--radii] [--rows] [--json]

Prints the summary table (one line per network, property, norm, delta and epsilon: queries and
verdict counts, total and median seconds). ``--radii`` adds the certified radius per point
(the largest delta of the sweep up to which every delta is robust), ``--rows`` one line per
query, ``--json`` prints everything as JSON instead; ``--csv`` writes one line per query and
``--plot`` draws the verdict per point and delta. The database is opened read-only, so a sweep
may still be writing it.
"""

from __future__ import annotations

import json
import os


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="print or plot the results of a sweep (its SQLite database)",
        description="Summarise a reluverify sweep database: verdict counts and times per network, property, "
        "delta and epsilon; optionally the certified radius per point, one line per query, a CSV file or a picture.",
    )
    parser.add_argument("db", metavar="FILE.sqlite", help="the sweep's results database")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the verdict per point and delta")
    parser.add_argument("--csv", metavar="FILE.csv", help="write one line per query")
    parser.add_argument("--radii", action="store_true", help="print the certified radius per point")
    parser.add_argument("--rows", action="store_true", help="print one line per query")
    parser.add_argument("--json", action="store_true", help="print the summary (and radii, rows) as JSON")
    parser.add_argument("--lock-timeout", type=float, default=10.0,
                        help="seconds to wait for a database another process has locked (default 10)")
    parser.set_defaults(handler=run)


def _row_line(row: dict) -> str:
    eps = "-" if row.get("epsilon") is None else f"{row['epsilon']:.4g}"
    label = "" if row.get("label") is None else f"label {row['label']}"
    reason = f"  ({row['reason']})" if row.get("reason") and row["verdict"] not in ("robust", "not robust") else ""
    return (f"{os.path.basename(row['network']):<34} point {row['point_index']:>4}  delta {row['delta']:<8.4g} eps {eps:<7} "
            f"{row['verdict']:<10} {row['seconds']:7.2f}s  {label}{reason}")


def run(args) -> int:
    from reluverify.errors import SpecError
    from reluverify.sweep.report import certified_radii, format_summary, load_rows, summary_rows, write_csv

    for option in ("plot", "csv"):
        target = getattr(args, option)
        if target:
            folder = os.path.dirname(os.path.abspath(target))
            if not os.path.isdir(folder):
                raise SpecError(f"--{option} {target}: the folder {folder} does not exist")
    rows = load_rows(args.db, lock_timeout=args.lock_timeout)
    table = summary_rows(rows)
    radii = certified_radii(rows) if args.radii or args.json else []
    if args.json:
        payload = {"database": args.db, "queries": len(rows), "summary": table, "radii": radii}
        if args.rows:
            payload["rows"] = rows
        print(json.dumps(payload, indent=2))
    else:
        if not rows:
            print(f"{args.db}: no results yet")
        else:
            print(format_summary(table))
        if args.radii and radii:
            print()
            print(f"{'network':<34} {'prop':<5} {'eps':>7} {'point':>5} {'certified':>9} {'refuted':>9}")
            for r in radii:
                eps = "-" if r["epsilon"] is None else f"{r['epsilon']:.4g}"
                cert = "-" if r["certified"] is None else f"{r['certified']:.4g}"
                ref = "-" if r["refuted"] is None else f"{r['refuted']:.4g}"
                kind = "Def.1" if r["kind"] == "local-robustness" else "Def.3"
                print(f"{r['network'][:34]:<34} {kind:<5} {eps:>7} {r['point_index']:>5} {cert:>9} {ref:>9}")
        if args.rows:
            print()
            for row in rows:
                print(_row_line(row))
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
