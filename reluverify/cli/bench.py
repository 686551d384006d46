"""``reluverify bench FOLDER``: run a VNN-COMP benchmark folder and compare with expected verdicts."""

from __future__ import annotations

import sys

from reluverify.solver.options import STRATEGIES, SolverOptions


def register(subparsers) -> None:
    from reluverify.cli.common import add_backend_arguments, add_memory_argument, seconds

    parser = subparsers.add_parser(
        "bench",
        help="run every instance of a VNN-COMP benchmark folder and compare with expected verdicts",
        description="Runs each instance of FOLDER/*_instances.csv in its own process with the competition "
        "timeout (times --timeout-scale), compares with FOLDER/expected_verdicts.csv when present, and prints "
        "a table per property or network. Wrong answers are printed loudly and make the exit status 1.",
    )
    parser.add_argument("folder", help="benchmark folder (holds *_instances.csv)")
    parser.add_argument("--timeout-scale", type=seconds(unit=""), default=1.0, help="multiply every instance timeout (default 1)")
    parser.add_argument("--cap", type=seconds(), metavar="S", help="at most S seconds per instance (after --timeout-scale)")
    parser.add_argument("--jobs", type=int, default=1, help="instances run in parallel (default 1)")
    parser.add_argument("--jobs-per-instance", type=int, default=1, metavar="N",
                        help="worker processes sharing each instance's search (default 1)")
    add_backend_arguments(parser)
    add_memory_argument(parser)
    parser.add_argument("--csv", metavar="OUT", help="write one row per instance")
    parser.add_argument("--filter", metavar="TEXT", help="only instances whose onnx or vnnlib name contains TEXT")
    parser.add_argument("--limit", type=int, help="only the first N instances (after --filter)")
    parser.add_argument("--group-by", choices=("auto", "property", "network"), default="auto")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto")
    parser.add_argument("--quiet", action="store_true", help="no line per instance")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from pathlib import Path

    from reluverify.benchmark import (
        choose_grouping,
        format_table,
        load_instances,
        run_benchmark,
        summary_rows,
        write_csv,
    )
    from reluverify.cli.common import with_backend
    from reluverify.errors import ReluverifyError

    if args.timeout_scale <= 0:
        raise ReluverifyError("--timeout-scale must be positive")
    if args.cap is not None and args.cap <= 0:
        raise ReluverifyError("--cap must be positive")
    if args.jobs < 1 or args.jobs_per_instance < 1:
        raise ReluverifyError("--jobs and --jobs-per-instance must be at least 1")
    options = with_backend(SolverOptions(strategy=args.strategy).with_jobs(args.jobs_per_instance), args,
                           "--jobs-per-instance")
    instances = load_instances(args.folder)
    if args.filter:
        instances = [i for i in instances if args.filter in Path(i.onnx).name or args.filter in Path(i.vnnlib).name]
    if args.limit is not None:
        instances = instances[: args.limit]
    if not instances:
        raise ReluverifyError("no instance matches")

    def progress(result, done, total):
        if args.quiet and not result.wrong:
            return
        mark = "  WRONG" if result.wrong else ""
        expected = result.instance.expected or "?"
        print(
            f"[{done:>4}/{total}] {Path(result.instance.onnx).name:<36} {Path(result.instance.vnnlib).name:<20} "
            f"{result.verdict:<8} expected {expected:<8} {result.seconds:7.2f}s{mark}",
            file=sys.stderr,
            flush=True,
        )

    results = run_benchmark(instances, args.timeout_scale, args.jobs, options, progress, cap=args.cap)
    by = choose_grouping(instances) if args.group_by == "auto" else args.group_by
    print(format_table(summary_rows(results, by)))
    wrong = [r for r in results if r.wrong]
    for r in wrong:
        print(
            f"!!! WRONG ANSWER: {Path(r.instance.onnx).name} {Path(r.instance.vnnlib).name}: "
            f"reluverify says {r.verdict}, expected {r.instance.expected}",
        )
    if args.csv:
        write_csv(results, args.csv)
    return 1 if wrong else 0
