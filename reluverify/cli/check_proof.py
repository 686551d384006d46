"""``reluverify check-proof NETWORK.onnx SPEC.vnnlib PROOF``: check a certificate of an ``unsat`` answer.

The checker (:mod:`reluverify.proof_check`, docs/certificates.md) rebuilds every bound from the
network's weights, the specification and the certificate, in float64 with a-priori rounding-error
bounds. Prints ``valid`` (exit 0) or ``invalid: <reason>`` naming the first failing leaf (exit 1);
unreadable files are one error line (exit 2).
"""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-proof",
        help="check a certificate of an unsat answer (written by --proof FILE)",
        description="Checks PROOF, a certificate written by 'vnnlib --proof' or 'verify --proof', against NETWORK "
        "and SPEC (their SHA-256 must match the certificate's header). Prints 'valid' (exit 0) or 'invalid: "
        "<reason>' naming the first leaf that fails and why (exit 1). The checker never uses the solver.",
    )
    parser.add_argument("network", help="ONNX file")
    parser.add_argument("spec", help="VNN-LIB 1.0 file (for a property: the .vnnlib written beside the certificate)")
    parser.add_argument("proof", help="the certificate (.npz)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from reluverify.proof_check import check_files

    result = check_files(args.network, args.spec, args.proof)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print("valid" if result.valid else f"invalid: {result.reason}")
        if result.valid:
            print(f"{result.trees} trees, {result.nodes} nodes, {result.leaves} leaves checked in {result.seconds:.2f} s")
    return 0 if result.valid else 1
