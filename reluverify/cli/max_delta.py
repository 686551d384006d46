"""``reluverify max-delta NETWORK.onnx --point FILE``: the largest delta for which Def. 1 holds.

Binary search (see :mod:`reluverify.properties.max_delta`): prints the certified delta (proven
robust), the smallest delta with a confirmed counterexample, and that counterexample. ``--timeout``
is the budget of the whole search; ``--probe-timeout`` caps each probe. The domain is ``--domain``
when given, else the one the point file carries (:mod:`reluverify.cli.inputs`); without one, a
warning says the ball is not cut to an input range.
"""

from __future__ import annotations


def register(subparsers) -> None:
    from reluverify.cli.common import add_memory_argument, seconds
    from reluverify.cli.verify import add_common_arguments

    parser = subparsers.add_parser(
        "max-delta",
        help="the largest delta for which delta-local robustness (Def. 1) holds at a point",
        description="Binary search for the largest delta at which the label of the point cannot change, "
        "to --precision: reports the certified delta, the smallest delta with a counterexample, and "
        "that counterexample.",
    )
    parser.add_argument("network", help="ONNX file")
    parser.add_argument("--point", metavar="FILE", required=True, help="the point x0 (.npy, .csv, .json or .npz)")
    parser.add_argument("--precision", type=float, default=1e-3, help="width of the final bracket (default 1e-3)")
    parser.add_argument("--upper", type=float,
                        help="largest delta tried (default: the domain's reach from the point, or 1.0)")
    parser.add_argument("--decision", choices=("max", "min"), default="max",
                        help="the label is the top score (max, default) or the lowest (min)")
    parser.add_argument("--probe-timeout", type=seconds(), help="seconds per probe (default: what is left)")
    add_common_arguments(parser, "seconds for the whole search (default 300)", 300.0)
    add_memory_argument(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from reluverify.cli.inputs import check_points_in, choose_domain, note_no_domain
    from reluverify.cli.verify import command_options, live_progress, report
    from reluverify.errors import SpecError
    from reluverify.onnx_import import load_onnx
    from reluverify.properties.inputs import read_point
    from reluverify.properties.max_delta import max_delta

    if args.jobs < 1:
        raise SpecError("--jobs must be >= 1")
    options = command_options(args)
    network = load_onnx(args.network, drop_final_softmax=True)
    point, carried = read_point(args.point, network.input_size)
    domain, _ = choose_domain(args.domain, network.input_size, (carried, f"the domain in {args.point}"))
    check_points_in([point], domain, args.point)
    if domain is None:
        note_no_domain(args)
    with live_progress(args):
        result = max_delta(network, point, args.precision, args.norm, domain, args.upper, args.decision, options,
                           probe_timeout=args.probe_timeout)
    report(result, args)
    return 0
