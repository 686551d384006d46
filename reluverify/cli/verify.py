"""``reluverify verify``: robustness properties at a point (Def. 1, Def. 3), at many points, or over a domain (Def. 2).

    reluverify verify NETWORK.onnx --point FILE --delta D [--norm inf|1] [--epsilon E] [--domain FILE]
    reluverify verify NETWORK.onnx [--points FILE] --delta D [D ...] [--epsilon E] [--verbose]
    reluverify verify NETWORK.onnx --global --domain FILE --delta D --epsilon E [--partitions N]
                      [--subdomain-timeout S]

Without ``--epsilon`` a point check is Def. 1 (the label stays the same); with it, Def. 3 (every
score moves by less than eps). ``--global`` checks Def. 2 on the domain. Prints the verdict
(robust / not robust / tie / unknown / timeout), the time, the splits and the violated disjunct;
``--json`` prints the result as JSON instead. ``--cex-out FILE`` writes a counterexample as JSON
to FILE and as .npz beside it (FILE's .json suffix replaced by .npz, or FILE.npz);
``--vnncomp-out FILE`` writes the VNN-COMP result file. Exit status 0 when a verdict was
reached (whatever it is), 2 for bad input.

With neither ``--point`` nor ``--global``, the property is checked at every evaluation point --
``--points FILE``, else those the network's model card names -- and the certified robust
accuracy is printed per delta (see :mod:`reluverify.cli.verify_points`).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

from reluverify.cli.common import add_memory_argument
from reluverify.solver.options import STRATEGIES


def add_common_arguments(parser, timeout_help: str = "seconds for the whole check (default 60)",
                         timeout_default: float = 60.0, cex_help: str | None = None) -> None:
    parser.add_argument("--norm", choices=("inf", "1"), default="inf", help="distance: L-infinity (default) or L1")
    parser.add_argument("--domain", metavar="FILE", help="box domain (.json/.npy/.csv with lower and upper bounds)")
    parser.add_argument("--timeout", type=float, default=timeout_default, help=timeout_help)
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes: one query's search shared among them, or sub-domains and points in parallel")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="solver strategy (default auto)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no live progress line on stderr")
    parser.add_argument("--cex-out", metavar="FILE",
                        help=cex_help or "write a counterexample as JSON to FILE and as .npz beside it "
                        "(FILE's .json suffix replaced by .npz, else FILE.npz)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="robustness at a point (delta-local, (delta, eps)-local) or over a domain ((delta, eps)-global)",
        description="Check delta-local robustness (Def. 1; the label of the point is computed), "
        "(delta, eps)-local robustness (Def. 3, with --epsilon) or (delta, eps)-global robustness "
        "(Def. 2, with --global) of an ONNX network (ReLU, or SRU with sigmoids and products), for the L-infinity or L1 distance. "
        "Points: .npy, .csv or .json (a JSON point may carry its domain). Without --point (and without --global) "
        "the property is checked at every point of --points FILE, or of the network's model card NAME.json, and the "
        "certified robust accuracy is printed per delta.",
    )
    parser.add_argument("network", help="ONNX file")
    parser.add_argument("--point", metavar="FILE", help="the point x0 (.npy, .csv or .json)")
    parser.add_argument("--points", metavar="FILE",
                        help="check every point of FILE (as 'sweep --points'; a JSON file may carry 'labels') and "
                        "print the certified robust accuracy; without --point, --points or --global: the points "
                        "the network's model card NAME.json names")
    parser.add_argument("--delta", type=float, nargs="+", required=True, metavar="D",
                        help="radius of the ball (>= 0); several radii with --points (one line each)")
    parser.add_argument("--epsilon", type=float, help="output tolerance: checks Def. 3 (point) or Def. 2 (--global)")
    parser.add_argument("--global", dest="global_", action="store_true",
                        help="(delta, eps)-global robustness on --domain (two network copies)")
    parser.add_argument("--partitions", type=int, default=1,
                        help="--global: split the domain into N sub-domains (exact; default 1)")
    parser.add_argument("--subdomain-timeout", type=float, metavar="S",
                        help="--global: give each sub-domain S seconds, halve the undecided ones and retry "
                        "(adaptive refinement, exact)")
    parser.add_argument("--decision", choices=("max", "min"),
                        help="Def. 1: the label is the top score (max, default; or the model card's rule) or the "
                        "lowest (min, e.g. ACAS Xu)")
    add_common_arguments(parser, timeout_help="seconds for the whole check, or per point with many points (default 60)",
                         cex_help="write a counterexample as JSON to FILE and as .npz beside it (FILE's .json suffix "
                         "replaced by .npz, else FILE.npz); with many points FILE is a folder, one file per refuted point")
    parser.add_argument("--vnncomp-out", metavar="FILE", help="write the VNN-COMP result file")
    parser.add_argument("--verbose", action="store_true", help="many points: one line per point and delta")
    parser.add_argument("--proof", metavar="FILE",
                        help="--point: for a robust answer, write a certificate to FILE and the property's query as "
                        "VNN-LIB beside it (FILE's suffix replaced by .vnnlib); 'reluverify check-proof NETWORK "
                        "FILE.vnnlib FILE' checks them (not for L1 balls or --global: their queries are not one-network "
                        "VNN-LIB instances)")
    parser.add_argument("--exact", action="store_true",
                        help="--point/--global: re-evaluate a counterexample in exact rational arithmetic on the "
                        "network's weights (does the violation hold exactly, or only within the tolerance?)")
    add_memory_argument(parser)
    parser.set_defaults(handler=run)


def command_options(args):
    """The command's solver options: ``--strategy``, ``--timeout`` and ``--jobs``, set once here."""
    from reluverify.solver import SolverOptions

    return SolverOptions(strategy=args.strategy).with_timeout(args.timeout).with_jobs(args.jobs)


def run(args) -> int:
    from reluverify.errors import SpecError
    from reluverify.onnx_import import load_onnx
    from reluverify.properties.inputs import load_domain, load_point_and_domain
    from reluverify.properties.registry import select

    if args.global_:
        if args.point or args.points:
            raise SpecError("--global checks a domain, not points: drop --point/--points")
        if not args.domain:
            raise SpecError("--global needs --domain FILE")
        if args.epsilon is None:
            raise SpecError("--global needs --epsilon")
    elif args.partitions != 1 or args.subdomain_timeout is not None:
        raise SpecError("--partitions and --subdomain-timeout apply to --global only")
    if args.point and args.points:
        raise SpecError("give --point FILE (one point) or --points FILE (many), not both")
    if args.jobs < 1:
        raise SpecError("--jobs must be >= 1")
    options = command_options(args)
    if not args.global_ and not args.point:
        if args.proof or args.exact:
            raise SpecError("--proof and --exact apply to one property (--point or --global), not to many points")
        from reluverify.cli.verify_points import run_points

        return run_points(args, options)
    if args.verbose:
        raise SpecError("--verbose applies to many points (--points, or a model card's points)")
    if len(args.delta) > 1:
        raise SpecError("several deltas need many points (--points FILE); --point and --global take one")
    args.delta = args.delta[0]
    args.decision = args.decision or "max"
    network = load_onnx(args.network, drop_final_softmax=True)
    if args.global_:
        point, domain = None, load_domain(args.domain, network.input_size)
    else:
        point, domain = load_point_and_domain(args.point, network.input_size)
        if args.domain:
            from reluverify.properties.inputs import check_in_domain

            domain = load_domain(args.domain, network.input_size)
            check_in_domain(point, domain, what=args.point)
    values = {"point": point, "domain": domain, "delta": args.delta, "epsilon": args.epsilon, "norm": args.norm,
              "decision": args.decision, "partitions": args.partitions}
    kind = select("domain" if args.global_ else "point", **values)
    prop = kind.build(network, **values)
    if args.global_ and args.subdomain_timeout is not None and not args.subdomain_timeout > 0:
        raise SpecError("--subdomain-timeout must be > 0 seconds")
    extra = {"subdomain_timeout": args.subdomain_timeout} if "subdomain_timeout" in kind.check_parameters else {}
    with live_progress(args):
        if args.proof:
            from reluverify.proofs import check_property_with_proof

            result = check_property_with_proof(prop, options, args.proof, **extra)
        else:
            result = prop.check(options, **extra)
    if args.exact and result.counterexample is not None:
        result.exact = prop.exact_check(result.counterexample)
    report(result, args)
    return 0


@contextmanager
def live_progress(args):
    """The live progress line on stderr (a terminal only) while the block runs; cleared after it."""
    from reluverify.cli.common import ProgressLine
    from reluverify.solver.progress import observe

    line = ProgressLine(args.timeout, enabled=not getattr(args, "quiet", False))
    try:
        with observe(line):
            yield
    finally:
        line.close()


def report(result, args) -> None:
    """Write the files asked for and print the result (summary or JSON)."""
    from reluverify.properties.export import vnncomp_text, write_counterexample

    files = []
    if args.cex_out:
        if result.counterexample is not None:
            files = list(write_counterexample(result, args.cex_out))
        else:
            print(f"reluverify: no counterexample to write to {args.cex_out} (verdict: {result.verdict})",
                  file=sys.stderr)
    if getattr(args, "vnncomp_out", None):
        with open(args.vnncomp_out, "w") as handle:
            handle.write(vnncomp_text(result))
        files.append(args.vnncomp_out)
    if args.json:
        payload = result.to_dict()
        payload["files"] = files
        print(json.dumps(payload, indent=2))
    else:
        print(result.summary())
        if files:
            print(f"wrote     {', '.join(files)}")
