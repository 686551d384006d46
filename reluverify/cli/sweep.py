"""``reluverify sweep``: many robustness queries in parallel, each answer written to SQLite at once.

    reluverify sweep NETWORK.onnx [NETWORK.onnx ...] --points FILE [--labels FILE] --delta D [D ...]
                     [--epsilon E [E ...]] [--norm inf|1] [--decision max|min] [--domain LO:HI|FILE]
                     --jobs N --db FILE.sqlite
                     [--timeout S] [--backend local|ray [--address ADDR]] [--plot FILE.png]

Every network x point x delta (x epsilon) is one query: Def. 1 (delta-local robustness; the
label is computed at the point) without ``--epsilon``, Def. 3 ((delta, eps)-local) with it.
Queries run in ``--jobs`` worker processes (or on a Ray cluster with ``--backend ray``), the
likeliest violations first; each finished query is one row of ``--db`` (SQLite, WAL), so
running the same command again runs only the queries that have no row yet (``--retry error``
also re-runs those that ended in error). A progress bar with an ETA goes to stderr, a summary
table to stdout at the end (headed by the run: property, domain, queries done), and ``--plot
FILE.png`` draws the verdict per point and delta.
The points are read as every command reads them; the domain is ``--domain``, else the one the
points file carries (a warning says so when there is none), and the true labels (``--labels``,
else the points file's) add the certified robust accuracy per delta below the table
(:mod:`reluverify.cli.inputs`).
Exit status 0 when the sweep ran to its end (whatever the verdicts), 2 for bad input, 130 when
interrupted (Ctrl-C): then one line says how many rows are saved and that the same command
resumes; a sweep stopped by an error says the same. With ``--fail-on-violation`` 1 when a query
of the plan is ``not robust`` or a ``tie``, with ``--fail-on-unknown`` 1 when one is ``unknown``,
``timeout`` or ``error``.
"""

from __future__ import annotations

import sys

from reluverify.solver.options import STRATEGIES

RETRYABLE = ("error", "timeout", "unknown")


def register(subparsers) -> None:
    from reluverify.cli.common import add_exit_status_arguments, add_memory_argument, add_numbers_argument, seconds
    from reluverify.cli.inputs import LABELS_HELP, add_domain_argument

    parser = subparsers.add_parser(
        "sweep",
        help="many robustness queries (networks x points x deltas) in parallel, results into SQLite",
        description="Check delta-local robustness (Def. 1) -- or (delta, eps)-local robustness (Def. 3) with "
        "--epsilon -- of every network at every point for every delta, in parallel worker processes, writing "
        "one row per finished query to a SQLite database at once. Rerunning the same command resumes: only "
        "queries without a row run. Points: .npy of shape (k, n), .csv with one point per line, .json (a list, or an "
        "object with 'points' and optional 'labels' and 'domain') or .npz.",
    )
    parser.add_argument("networks", nargs="+", metavar="NETWORK", help="ONNX file(s)")
    parser.add_argument("--points", metavar="FILE", required=True, help="the points (.npy, .csv, .json or .npz)")
    parser.add_argument("--labels", metavar="FILE",
                        help=LABELS_HELP + "; with labels the certified robust accuracy is printed per delta")
    add_numbers_argument(parser, "--delta", required=True, metavar="D",
                         help="radius or radii of the ball (several values, or comma-separated: 0.01,0.03)")
    add_numbers_argument(parser, "--epsilon", metavar="E",
                         help="output tolerance(s): checks Def. 3 instead of Def. 1 (as --delta)")
    parser.add_argument("--norm", choices=("inf", "1"), default="inf", help="distance: L-infinity (default) or L1")
    parser.add_argument("--decision", choices=("max", "min"), default="max",
                        help="Def. 1: the label is the top score (max, default) or the lowest (min, e.g. ACAS Xu)")
    add_domain_argument(parser)
    parser.add_argument("--db", metavar="FILE.sqlite", required=True, help="the results database (created if missing)")
    parser.add_argument("--jobs", type=int,
                        help="queries run in parallel (default 1; --backend ray: the cluster's CPUs)")
    parser.add_argument("--timeout", type=seconds(), default=60.0,
                        help="seconds per query (default 60); a worker still running --kill-grace seconds later is "
                        "killed and the query recorded as timeout")
    add_memory_argument(parser)
    parser.add_argument("--kill-grace", type=seconds(zero=True), default=5.0, help="seconds past --timeout before the kill (default 5)")
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
    parser.add_argument("--lock-timeout", type=seconds(zero=True), default=10.0,
                        help="seconds to wait for a database another process has locked (default 10)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the verdict per point and delta")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    add_exit_status_arguments(parser, "a query of the sweep (this run's or an earlier one's row) is not robust or a "
                              "tie", "unknown, timeout or error")
    parser.set_defaults(handler=run)


def _domain_source(args, carried) -> str | None:
    """The file the domain came from (for the run's description in the database): the file ``--domain``
    names, else the points file when it carries the domain (None for ``--domain LO:HI`` or no domain)."""
    import os

    source = getattr(args, "domain", None)
    if source is None:
        return args.points if carried is not None else None
    return source if os.path.isfile(source) else None


def _saved(store, jobs, db) -> str:
    """``N rows saved in DB (M of the sweep's queries still to run); rerun the same command to resume``."""
    from reluverify.errors import ReluverifyError

    try:
        saved = len(store.verdicts([job.key for job in jobs]))
    except ReluverifyError:
        return f"the rows finished so far are saved in {db}; rerun the same command to resume"
    return (f"{saved} rows saved in {db} ({len(jobs) - saved} of the sweep's {len(jobs)} queries still to run); "
            "rerun the same command to resume")


def _stopped(exc: Exception, store, jobs, db, done_before: int) -> None:
    """Re-raise ``exc``, which stopped the sweep, saying how to resume when this sweep had saved rows: in the
    one-line message of a :class:`~reluverify.errors.ReluverifyError`, else on a line of its own before it."""
    from reluverify.errors import ReluverifyError

    try:
        saved = len(store.verdicts([job.key for job in jobs]))
    except ReluverifyError:
        saved = done_before
    if saved <= done_before:
        raise exc
    if isinstance(exc, ReluverifyError):
        stopped = ReluverifyError(f"{exc}; the sweep stopped: {_saved(store, jobs, db)}")
        stopped.exit_code = exc.exit_code
        raise stopped from exc
    print(f"reluverify: the sweep stopped: {_saved(store, jobs, db)}", file=sys.stderr, flush=True)
    raise exc


def run(args) -> int:
    import os

    from reluverify.cli.common import verdict_status
    from reluverify.cli.inputs import check_points_in, choose_domain, note_no_domain, print_warnings
    from reluverify.errors import SpecError
    from reluverify.onnx_import import load_onnx
    from reluverify.properties.common import final_softmax_note
    from reluverify.properties.inputs import read_labels, read_point_set
    from reluverify.properties.registry import select
    from reluverify.sweep.backends import LocalBackend, RayBackend
    from reluverify.sweep.plan import NetworkRef, make_plan
    from reluverify.sweep.report import format_summary, split_runs, summary_rows
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
    deltas = args.delta
    epsilons = args.epsilon or [None]
    kind = select("point", point=args.points, delta=deltas, epsilon=epsilons[0])
    networks, loaded, notes = [], [], []
    for path in args.networks:
        network = load_onnx(path, drop_final_softmax=True)
        note = final_softmax_note(network, kind.cls)  # refuses Def. 3 on a network that ends in Softmax
        notes += [f"{path}: {note}"] if note else []
        ref = NetworkRef(os.path.abspath(path), network.source_sha256, network.input_size)
        remember_network(network)
        networks.append(ref)
        loaded.append(network)
    size = networks[0].input_size
    outputs = min(network.output_size for network in loaded)
    found = read_point_set(args.points, size, outputs)
    points = found.points
    labels = read_labels(args.labels, len(points), outputs) if args.labels is not None else found.labels
    dom, _ = choose_domain(args.domain, size, (found.domain, f"the domain in {args.points}"))
    check_points_in(points, dom, args.points)
    domain = None if dom is None else (dom.lower, dom.upper)
    jobs = make_plan(networks, points, deltas, epsilons, args.norm, args.decision, domain)
    if args.backend == "ray":
        backend = RayBackend(args.address, jobs=args.jobs, timeout=args.timeout, kill_grace=args.kill_grace)
    else:
        backend = LocalBackend(args.jobs or 1, timeout=args.timeout, kill_grace=args.kill_grace)
    if dom is None:
        note_no_domain(args)
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
        try:
            run_info = run_sweep(jobs, store, backend, settings, order=args.order, retry=tuple(args.retry),
                                 progress=False if args.quiet else None,
                                 domain_source=_domain_source(args, found.domain))
        except KeyboardInterrupt:
            print(f"reluverify: interrupted: {_saved(store, jobs, args.db)}", file=sys.stderr, flush=True)
            return 130
        except Exception as exc:
            _stopped(exc, store, jobs, args.db, done)
        rows = store.rows([j.key for j in jobs])
        described = store.plan()[1]
    if not args.quiet:
        for group in split_runs(rows, {job.key: job.run for job in jobs}, described):
            print(group.heading())
            print(format_summary(summary_rows(group.rows)))
        if labels is not None:
            print_accuracy(rows, loaded, points, labels, args)
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
    print_warnings(args)
    return verdict_status([row["verdict"] for row in rows], args)


def print_accuracy(rows, networks, points, labels, args) -> None:
    """The certified robust accuracy per network, property and delta, against the true ``labels``."""
    import os

    from reluverify.sweep.accuracy import network_labels, robust_accuracy

    source = args.labels or args.points
    print(f"true labels from {source} (a misclassified point is never certified):")
    for network in networks:
        mine = [r for r in rows if r["network_sha256"] == network.source_sha256]
        computed = network_labels(network.evaluate(points), args.decision)
        table, _ = robust_accuracy(mine, computed, labels)
        name = os.path.basename(network.source_path or "")
        for acc in table:
            eps = "" if acc.epsilon is None else f"eps {acc.epsilon:g} "
            print(f"  {name} {eps}{acc.line(True)}")
