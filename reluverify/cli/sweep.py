"""``reluverify sweep``: many robustness queries in parallel, each answer written to SQLite at once.

    reluverify sweep NETWORK.onnx [NETWORK.onnx ...] --points FILE --delta D [D ...] [--epsilon E [E ...]]
                     [--norm inf|1] [--decision max|min] [--domain FILE] --jobs N --db FILE.sqlite
                     [--timeout S] [--backend local|ray [--address ADDR]] [--plot FILE.png]

Every network x point x delta (x epsilon) is one query: Def. 1 (delta-local robustness; the
label is computed at the point) without ``--epsilon``, Def. 3 ((delta, eps)-local) with it.
Queries run in ``--jobs`` worker processes (or on a Ray cluster with ``--backend ray``), the
likeliest violations first; each finished query is one row of ``--db`` (SQLite, WAL), so
running the same command again runs only the queries that have no row yet (``--retry error``
also re-runs those that ended in error). A progress bar with an ETA goes to stderr, a summary
table to stdout at the end, and ``--plot FILE.png`` draws the verdict per point and delta.
Exit status 0 when the sweep ran to its end (whatever the verdicts), 2 for bad input.
"""

from __future__ import annotations

import sys

from reluverify.solver.options import STRATEGIES

RETRYABLE = ("error", "timeout", "unknown")


def _numbers(values: list[str], what: str) -> list[float]:
    from reluverify.errors import SpecError

    out = []
    for value in values:
        for part in str(value).split(","):
            if not part.strip():
                continue
            try:
                out.append(float(part))
            except ValueError:
                raise SpecError(f"--{what}: {part.strip()!r} is not a number") from None
    return out


def register(subparsers) -> None:
    from reluverify.cli.common import add_memory_argument

    parser = subparsers.add_parser(
        "sweep",
        help="many robustness queries (networks x points x deltas) in parallel, results into SQLite",
        description="Check delta-local robustness (Def. 1) -- or (delta, eps)-local robustness (Def. 3) with "
        "--epsilon -- of every network at every point for every delta, in parallel worker processes, writing "
        "one row per finished query to a SQLite database at once. Rerunning the same command resumes: only "
        "queries without a row run. Points: .npy of shape (k, n), .csv with one point per line, or .json list.",
    )
    parser.add_argument("networks", nargs="+", metavar="NETWORK", help="ONNX file(s)")
    parser.add_argument("--points", metavar="FILE", required=True, help="the points (.npy, .csv or .json)")
    parser.add_argument("--delta", nargs="+", required=True, metavar="D",
                        help="radius or radii of the ball (several values, or comma-separated)")
    parser.add_argument("--epsilon", nargs="+", metavar="E",
                        help="output tolerance(s): checks Def. 3 instead of Def. 1")
    parser.add_argument("--norm", choices=("inf", "1"), default="inf", help="distance: L-infinity (default) or L1")
    parser.add_argument("--decision", choices=("max", "min"), default="max",
                        help="Def. 1: the label is the top score (max, default) or the lowest (min, e.g. ACAS Xu)")
    parser.add_argument("--domain", metavar="FILE", help="box domain every ball is cut to (.json/.npy/.csv)")
    parser.add_argument("--db", metavar="FILE.sqlite", required=True, help="the results database (created if missing)")
    parser.add_argument("--jobs", type=int,
                        help="queries run in parallel (default 1; --backend ray: the cluster's CPUs)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds per query (default 60); a worker still running --kill-grace seconds later is "
                        "killed and the query recorded as timeout")
    add_memory_argument(parser)
    parser.add_argument("--kill-grace", type=float, default=5.0, help="seconds past --timeout before the kill (default 5)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="solver strategy (default auto)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local worker processes (default) or a Ray cluster (pip install 'reluverify[distributed]')")
    parser.add_argument("--address", metavar="ADDR",
                        help="--backend ray: the cluster's address ('auto': the one 'ray start' runs here; default: "
                        "RAY_ADDRESS, else a fresh local Ray instance with --jobs CPUs)")
    parser.add_argument("--order", choices=("priority", "plan"), default="priority",
                        help="run the likeliest violations first (priority, default) or in the plan's order")
    parser.add_argument("--retry", nargs="+", choices=RETRYABLE, default=[], metavar="VERDICT",
                        help="also re-run queries whose row has this verdict (error, timeout, unknown)")
    parser.add_argument("--lock-timeout", type=float, default=10.0,
                        help="seconds to wait for a database another process has locked (default 10)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the verdict per point and delta")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    parser.set_defaults(handler=run)


def run(args) -> int:
    import os

    from reluverify.errors import SpecError
    from reluverify.onnx_import import load_onnx
    from reluverify.properties.common import final_softmax_note
    from reluverify.properties.inputs import load_domain
    from reluverify.properties.registry import select
    from reluverify.sweep.backends import LocalBackend, RayBackend
    from reluverify.sweep.plan import NetworkRef, make_plan
    from reluverify.sweep.point_sets import read_points
    from reluverify.sweep.report import format_summary, summary_rows
    from reluverify.sweep.run import run_sweep
    from reluverify.sweep.store import ResultStore
    from reluverify.sweep.worker import remember_network

    if args.jobs is not None and args.jobs < 1:
        raise SpecError("--jobs must be >= 1")
    if args.timeout is not None and args.timeout <= 0:
        raise SpecError("--timeout must be positive")
    if args.kill_grace < 0:
        raise SpecError("--kill-grace must be >= 0")
    if args.address and args.backend != "ray":
        raise SpecError("--address applies to --backend ray only")
    if args.plot:
        folder = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(folder):
            raise SpecError(f"--plot {args.plot}: the folder {folder} does not exist")
    deltas = _numbers(args.delta, "delta")
    epsilons = _numbers(args.epsilon, "epsilon") if args.epsilon else [None]
    kind = select("point", point=args.points, delta=deltas, epsilon=epsilons[0])
    networks, notes = [], []
    for path in args.networks:
        network = load_onnx(path, drop_final_softmax=True)
        note = final_softmax_note(network, kind.cls)  # refuses Def. 3 on a network that ends in Softmax
        notes += [f"{path}: {note}"] if note else []
        ref = NetworkRef(os.path.abspath(path), network.source_sha256, network.input_size)
        remember_network(network)
        networks.append(ref)
    size = networks[0].input_size
    points = read_points(args.points, size)
    domain = None
    if args.domain:
        dom = load_domain(args.domain, size)
        domain = (dom.lower, dom.upper)
        from reluverify.properties.inputs import check_in_domain

        for index, point in enumerate(points):
            check_in_domain(point, dom, what=f"{args.points}: point {index}")
    jobs = make_plan(networks, points, deltas, epsilons, args.norm, args.decision, domain)
    if args.backend == "ray":
        backend = RayBackend(args.address, jobs=args.jobs, timeout=args.timeout, kill_grace=args.kill_grace)
    else:
        backend = LocalBackend(args.jobs or 1, timeout=args.timeout, kill_grace=args.kill_grace)
    with ResultStore(args.db, lock_timeout=args.lock_timeout) as store:
        done = len(store.verdicts([j.key for j in jobs]))
        shape = f"{len(networks)} network{'s' if len(networks) > 1 else ''} x {len(points)} points x " \
                f"{len(deltas)} delta{'s' if len(deltas) > 1 else ''}"
        if args.epsilon:
            shape += f" x {len(epsilons)} epsilon{'s' if len(epsilons) > 1 else ''}"
        if not args.quiet:
            print(f"sweep: {shape} = {len(jobs)} queries; {done} already in {args.db}; running the rest on "
                  f"{backend.describe()}", file=sys.stderr, flush=True)
            for note in notes:
                print(f"note: {note}", file=sys.stderr, flush=True)
        settings = {"strategy": args.strategy, "max_memory": args.max_memory}
        run_info = run_sweep(jobs, store, backend, settings, order=args.order,
                             retry=tuple(args.retry), progress=False if args.quiet else None)
        rows = store.rows([j.key for j in jobs])
    if not args.quiet:
        print(format_summary(summary_rows(rows)))
        print(f"ran {run_info.ran} queries in {run_info.seconds:.1f} s ({run_info.skipped} had a result already"
              + (f", {run_info.retried_rows} re-run" if run_info.retried_rows else "") + f"); results in {args.db}")
    if args.plot:
        from reluverify.sweep.plot import plot_sweep

        try:
            plot_sweep(rows, args.plot)
        except OSError as exc:
            raise SpecError(f"--plot {args.plot}: cannot write the picture: {exc.strerror or exc}") from None
        if not args.quiet:
            print(f"picture   {args.plot}")
    return 0
