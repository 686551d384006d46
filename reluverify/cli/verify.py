"""``reluverify verify``: robustness properties at a point (Def. 1, Def. 3), at many points, or over a domain (Def. 2).

    reluverify verify NETWORK.onnx --point FILE --delta D [D ...] [--norm inf|1] [--epsilon E [E ...]]
                      [--domain LO:HI|FILE]
    reluverify verify NETWORK.onnx [--points FILE] [--labels FILE] --delta D [D ...] [--epsilon E] [--verbose]
    reluverify verify NETWORK.onnx --global --domain LO:HI|FILE --delta D [D ...] --epsilon E [E ...]
                      [--partitions N] [--subdomain-timeout S]
    ... [--fail-on-violation] [--fail-on-unknown]

Without ``--epsilon`` a point check is Def. 1 (the label stays the same); with it, Def. 3 (every
score moves by less than eps). ``--global`` checks Def. 2 on the domain. Prints the verdict
(robust / not robust / tie / unknown / timeout), the time, the splits and the violated disjunct;
``--json`` prints the result as JSON instead. ``--cex-out FILE`` writes a counterexample as JSON
to FILE and as .npz beside it (FILE's .json suffix replaced by .npz, or FILE.npz);
``--vnncomp-out FILE`` writes the VNN-COMP result file.

``--delta`` (and ``--epsilon``) take one value or several, as separate words or comma-separated
(``--delta 0.01 0.03``, ``--delta 0.01,0.03``). Several at one point (or with ``--global``) check
each (delta, epsilon) in turn: one line each, a JSON list with ``--json``, and ``--cex-out DIR``
a folder with one counterexample per refuted check (:mod:`reluverify.cli.verify_each`).

Exit status 0 when a verdict was reached (whatever it is), 2 for bad input; with
``--fail-on-violation`` 1 when a check is ``not robust`` or a ``tie`` (or, with many points, a
point is misclassified), with ``--fail-on-unknown`` 1 when one is ``unknown`` or ``timeout``.

The domain is ``--domain`` when given, else the one the point file carries (see
:mod:`reluverify.cli.inputs`); without one, a warning says the ball is not cut to an input range.

With neither ``--point`` nor ``--global``, the property is checked at every evaluation point --
``--points FILE``, else those the network's model card names -- and the certified robust
accuracy is printed per delta (see :mod:`reluverify.cli.verify_points`).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

from reluverify.cli.common import (add_backend_arguments, add_checkpoint_arguments, add_exit_status_arguments,
                                   add_memory_argument, add_numbers_argument, seconds, verdict_status, with_backend)
from reluverify.cli.inputs import LABELS_HELP, add_domain_argument
from reluverify.solver.options import STRATEGIES


def add_common_arguments(parser, timeout_help: str = "seconds for the whole check (default 60)",
                         timeout_default: float = 60.0, cex_help: str | None = None) -> None:
    parser.add_argument("--norm", choices=("inf", "1"), default="inf", help="distance: L-infinity (default) or L1")
    add_domain_argument(parser)
    parser.add_argument("--timeout", type=seconds(), default=timeout_default, help=timeout_help)
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes: one query's search shared among them, or sub-domains and points in parallel")
    add_backend_arguments(parser)
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
        "Points: .npy, .csv, .json or .npz (a JSON point may carry its domain, which --domain replaces). Without "
        "--point (and without --global) the property is checked at every point of --points FILE, or of the network's "
        "model card NAME.json, and the certified robust accuracy is printed per delta. Verdicts: robust, not robust "
        "(with a counterexample), tie (the point's top score is shared), unknown, timeout.",
    )
    parser.add_argument("network", help="ONNX file")
    parser.add_argument("--point", metavar="FILE", help="the point x0 (.npy, .csv, .json or .npz)")
    parser.add_argument("--points", metavar="FILE",
                        help="check every point of FILE (as 'sweep --points'; a JSON file may carry 'labels' and "
                        "'domain') and print the certified robust accuracy; without --point, --points or --global: "
                        "the points the network's model card NAME.json names")
    parser.add_argument("--labels", metavar="FILE", help="many points: " + LABELS_HELP)
    add_numbers_argument(parser, "--delta", required=True, metavar="D",
                         help="radius of the ball (>= 0); several radii (--delta 0.01 0.03 or --delta 0.01,0.03) "
                         "are checked one by one, one line each")
    add_numbers_argument(parser, "--epsilon", metavar="E",
                         help="output tolerance: checks Def. 3 (point) or Def. 2 (--global); several values at "
                         "one point or with --global, as for --delta")
    parser.add_argument("--global", dest="global_", action="store_true",
                        help="(delta, eps)-global robustness on --domain (two network copies)")
    parser.add_argument("--partitions", type=int, default=1,
                        help="--global: split the domain into N sub-domains (exact; default 1). Each is a query "
                        "of its own: it finds violations sooner and runs in parallel with --jobs N, but makes a "
                        "proof slower; for a query that times out, use --subdomain-timeout instead")
    parser.add_argument("--subdomain-timeout", type=seconds(), metavar="S",
                        help="--global: give each sub-domain S seconds, halve the undecided ones and retry "
                        "(adaptive refinement, exact)")
    parser.add_argument("--decision", choices=("max", "min"),
                        help="Def. 1: the label is the top score (max, default; or the model card's rule) or the "
                        "lowest (min, e.g. ACAS Xu)")
    add_common_arguments(parser, timeout_help="seconds for the whole check, or per point with many points (default 60)",
                         cex_help="write a counterexample as JSON to FILE and as .npz beside it (FILE's .json suffix "
                         "replaced by .npz, else FILE.npz); with many points or several deltas FILE is a folder, one "
                         "file per refuted check (point3_delta0.05.json)")
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
    add_checkpoint_arguments(parser)
    add_exit_status_arguments(parser, "a check is not robust or a tie (with many points: also a point the "
                              "network misclassifies)")
    add_memory_argument(parser)
    parser.set_defaults(handler=run)


def command_options(args):
    """The command's solver options: ``--strategy``, ``--timeout``, ``--jobs``, ``--backend`` and (``verify``)
    ``--checkpoint``, set once here."""
    from reluverify.cli.common import with_checkpoint
    from reluverify.solver import SolverOptions

    options = SolverOptions(strategy=args.strategy).with_timeout(args.timeout).with_jobs(args.jobs)
    return with_checkpoint(with_backend(options, args), args)


def run(args) -> int:
    from reluverify.errors import SpecError
    from reluverify.onnx_import import load_onnx
    from reluverify.cli.inputs import check_points_in, choose_domain, note_no_domain
    from reluverify.properties.inputs import read_domain, read_point
    from reluverify.properties.registry import select

    if args.global_:
        if args.point or args.points:
            raise SpecError("--global checks a domain, not points: drop --point/--points")
        if not args.domain:
            raise SpecError("--global needs --domain FILE (or --domain LO:HI)")
        if args.epsilon is None:
            raise SpecError("--global needs --epsilon")
    elif args.partitions != 1 or args.subdomain_timeout is not None:
        raise SpecError("--partitions and --subdomain-timeout apply to --global only")
    if args.point and args.points:
        raise SpecError("give --point FILE (one point) or --points FILE (many), not both")
    if args.labels is not None and (args.point or args.global_):
        raise SpecError("--labels gives the true labels of many points: use it with --points FILE (or a model "
                        "card's points)")
    if args.jobs < 1:
        raise SpecError("--jobs must be >= 1")
    options = command_options(args)
    epsilons = args.epsilon or [None]
    if not args.global_ and not args.point:
        if args.backend == "ray":
            raise SpecError("--backend ray spreads one query's search over a cluster: use it with --point or --global "
                            "(many points on a cluster: 'reluverify sweep ... --backend ray')")
        if args.checkpoint:
            raise SpecError("--checkpoint keeps the search of one property (--point or --global), not of many points")
        if args.proof or args.exact:
            raise SpecError("--proof and --exact apply to one property (--point or --global), not to many points")
        if len(epsilons) > 1:
            raise SpecError("several --epsilon values apply to one --point or --global; with many points give one "
                            "(or use 'reluverify sweep', which takes several)")
        args.epsilon = epsilons[0]
        from reluverify.cli.verify_points import run_points

        return run_points(args, options)
    if args.verbose:
        raise SpecError("--verbose applies to many points (--points, or a model card's points)")
    checks = list(dict.fromkeys((delta, epsilon) for delta in args.delta for epsilon in epsilons))  # repeats once
    if len(checks) > 1:
        from reluverify.cli.verify_each import check_arguments

        check_arguments(args)
    args.decision = args.decision or "max"
    network = load_onnx(args.network, drop_final_softmax=True)
    if args.global_:
        point, domain = None, read_domain(args.domain, network.input_size)
    else:
        point, carried = read_point(args.point, network.input_size)
        domain, _ = choose_domain(args.domain, network.input_size, (carried, f"the domain in {args.point}"))
        check_points_in([point], domain, args.point)
    props = []
    for delta, epsilon in checks:
        values = {"point": point, "domain": domain, "delta": delta, "epsilon": epsilon, "norm": args.norm,
                  "decision": args.decision, "partitions": args.partitions}
        kind = select("domain" if args.global_ else "point", **values)
        props.append(kind.build(network, **values))
    if args.global_ and args.subdomain_timeout is not None and not args.subdomain_timeout > 0:
        raise SpecError("--subdomain-timeout must be > 0 seconds")
    extra = {"subdomain_timeout": args.subdomain_timeout} if "subdomain_timeout" in kind.check_parameters else {}
    if domain is None:
        note_no_domain(args)
    results = [check_one(prop, options, args, extra) for prop in props]
    if len(results) == 1:
        report(results[0], args)
    else:
        from reluverify.cli.verify_each import report_each

        report_each(results, kind, args)
    return verdict_status([result.verdict for result in results], args)


def check_one(prop, options, args, extra: dict):
    """Check one property as the command asks (live progress, ``--proof``, ``--exact``); its result."""
    with live_progress(args):
        if args.proof:
            from reluverify.proofs import check_property_with_proof

            result = check_property_with_proof(prop, options, args.proof, **extra)
        else:
            result = prop.check(options, **extra)
    if args.exact and result.counterexample is not None:
        result.exact = prop.exact_check(result.counterexample)
    return result


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
    """Write the files asked for and print the result (summary or JSON), then the warnings on stderr."""
    from reluverify.cli.inputs import print_warnings
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
        if getattr(args, "warnings", None):
            payload["warnings"] = list(args.warnings)
        print(json.dumps(payload, indent=2))
    else:
        print(result.summary())
        if files:
            print(f"wrote     {', '.join(files)}")
    print_warnings(args)
