"""``reluverify vnnlib NETWORK.onnx SPEC.vnnlib``: decide a VNN-LIB 1.0 specification.

The verdict is the same word in the text, in ``--json`` and in ``Verifier.vnnlib``: ``sat`` (the
specification's condition can be met: a counterexample exists, the property is violated),
``unsat`` (it cannot: the property holds), ``unknown`` or ``timeout`` (:data:`MEANING`).
Exit status 0 when a verdict was reached, 2 for bad input, 4 when ``--cross-check`` disagrees;
with ``--fail-on-violation`` 1 for ``sat``, with ``--fail-on-unknown`` 1 for ``unknown`` or ``timeout``.
"""

from __future__ import annotations

import json
import sys

from reluverify.cli.common import add_backend_arguments, add_checkpoint_arguments, add_quiet_argument, seconds
from reluverify.solver.options import STRATEGIES

MEANING = ("sat = the specification's condition can be met: a counterexample exists (the property is violated); "
           "unsat = it cannot (the property holds); unknown / timeout = not decided within the budget")


def register(subparsers) -> None:
    from reluverify.cli.common import add_exit_status_arguments, add_memory_argument

    parser = subparsers.add_parser(
        "vnnlib",
        help="decide a VNN-LIB 1.0 specification (sat = violated, with a counterexample; unsat = holds)",
        description="Decides whether SPEC (a VNN-LIB 1.0 file describing a counterexample) is satisfiable on "
        f"NETWORK. Verdicts, the same in the text, --json and the Python API: {MEANING}. Prints the verdict "
        "and a summary; --out writes the VNN-COMP result file (sat with ((X_0 v) ... (Y_0 v) ...), unsat, "
        "unknown or timeout).",
    )
    parser.add_argument("network", help="ONNX file")
    parser.add_argument("spec", help="VNN-LIB 1.0 file")
    parser.add_argument("--timeout", type=seconds(), default=60.0, help="seconds (default 60)")
    add_memory_argument(parser)
    parser.add_argument("--out", metavar="FILE", help="write the VNN-COMP result file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--cross-check", choices=("z3",), help="decide the same query independently and compare")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto")
    parser.add_argument("--proof", metavar="FILE",
                        help="for an unsat answer, write a certificate to FILE (docs/certificates.md) that "
                        "'reluverify check-proof NETWORK SPEC FILE' checks; the search then runs in one process and "
                        "refutes only with evidence the checker recomputes")
    parser.add_argument("--exact", action="store_true",
                        help="for a sat answer, re-evaluate the counterexample in exact rational arithmetic on the "
                        "network's weights and say whether the violation holds exactly or only within the tolerance")
    add_quiet_argument(parser)
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="worker processes sharing the search (boxes or sub-problems); all stop at the first "
                        "confirmed counterexample (default 1)")
    add_backend_arguments(parser)
    add_checkpoint_arguments(parser)
    add_exit_status_arguments(parser, "the answer is sat (a counterexample exists)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from reluverify.cli.common import print_summary, run_cross_check, verdict_status, with_backend, with_checkpoint
    from reluverify.onnx_import import load_onnx
    from reluverify.solver import SolverOptions, solve
    from reluverify.vnncomp import format_result
    from reluverify.vnnlib import file_outputs, load_instance, load_query

    if args.proof:  # a certificate is about the file's own outputs: no Softmax is dropped
        network = load_onnx(args.network)
        query = load_query(network, args.spec)
    else:
        network, query = load_instance(args.network, args.spec)
    if args.exact:  # refuse a network without rational outputs before the search, not after it
        from reluverify.exact import require_rational

        require_rational(query)
    if args.jobs < 1:
        from reluverify.errors import ReluverifyError

        raise ReluverifyError("--jobs must be at least 1")
    from reluverify.cli.verify import live_progress

    options = SolverOptions(timeout=args.timeout, strategy=args.strategy).with_jobs(args.jobs)
    options = with_checkpoint(with_backend(options, args), args)
    proof = exact = None
    with live_progress(args):
        if args.proof:
            from reluverify.proofs import solve_with_proof

            result, proof = solve_with_proof(query, options, args.network, args.spec, args.proof)
        else:
            result = solve(query, options)
    if args.exact and result.counterexample is not None:
        from reluverify.exact import exact_check

        exact = exact_check(query, result.counterexample.inputs, result.counterexample.disjunct).to_dict()
    status = verdict_status([result.verdict], args)
    check = None
    if args.cross_check:
        check = run_cross_check(query, result, args.timeout)
        status = 4 if check["disagreement"] else status
    if result.counterexample is not None and network.final_softmax:  # report the file's outputs, not the logits
        from dataclasses import replace

        cex = result.counterexample
        result = replace(result, counterexample=replace(cex, outputs=file_outputs(network, cex.inputs, cex.outputs)))
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(format_result(result))
    if args.json:
        payload = result.to_dict()
        if check is not None:
            payload["cross_check"] = check
        if proof is not None:
            payload["proof"] = proof
        if exact is not None:
            payload["exact"], payload["exact_check"] = exact["holds"], exact
        print(json.dumps(payload, indent=2))
    else:
        print_summary(query, result, check)
        if exact is not None:
            print(f"exact: {exact['note']}")
        if proof is not None:
            print(f"proof: {proof['note']}")
    return status
