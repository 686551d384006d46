"""Writing certificates of ``unsat`` answers for the commands and the Python API (``--proof FILE``).

The format is docs/certificates.md; the checker is :mod:`reluverify.proof_check`. A certificate
names the SHA-256 of the ONNX file and of the VNN-LIB file it proves, so

* for a VNN-LIB instance it refers to the instance's two files;
* for a property (``verify``, ``Verifier.local_robustness`` ...), the property's compiled query is
  written as VNN-LIB beside the certificate (:func:`spec_path_for`, by
  :mod:`reluverify.vnnlib_export`), read back, and that query is the one solved and proven: then
  ``reluverify check-proof NETWORK.onnx FILE.vnnlib FILE`` checks it. A property whose query is not
  a one-network VNN-LIB instance (an L1 ball's auxiliary variables, global robustness's two copies)
  has no certificate: it is decided as usual and the note says so.
"""

from __future__ import annotations

import os
from dataclasses import replace

from reluverify.errors import ReluverifyError


def spec_path_for(proof_path) -> str:
    """Where a property's compiled query goes: the certificate's path with its suffix replaced by
    ``.vnnlib`` (``cert.npz`` -> ``cert.vnnlib``), or ``.vnnlib`` appended."""
    proof_path = os.fspath(proof_path)
    root, ext = os.path.splitext(proof_path)
    if not ext or ext == ".vnnlib":
        return proof_path + ".vnnlib"
    return root + ".vnnlib"


def write_certificate(result, network_path, spec_path, proof_path) -> dict:
    """Write ``result.certificate`` (an ``unsat`` result solved with ``proof=True``); what was written."""
    from reluverify.proof_check import sha256

    proof_path = os.fspath(proof_path)
    result.certificate.write(proof_path, sha256(network_path), sha256(spec_path))
    return {"certificate": proof_path, "spec": os.fspath(spec_path), "network": os.fspath(network_path),
            "leaves": int(result.certificate.num_leaves), "bytes": os.path.getsize(proof_path),
            "note": f"wrote the certificate {proof_path} ({result.certificate.num_leaves} leaves, "
            f"{os.path.getsize(proof_path)} bytes); check it with: reluverify check-proof {os.fspath(network_path)} "
            f"{os.fspath(spec_path)} {proof_path}"}


def no_certificate(verdict: str, proof_path) -> dict:
    return {"certificate": None, "note": f"no certificate written to {os.fspath(proof_path)} (the query is {verdict}: "
            "certificates prove unsat queries only, that is robust properties and unsat specifications)"}


def network_file(network) -> str:
    """The ONNX file a certificate names (an in-memory network has none)."""
    path = getattr(network, "source_path", None)
    if not path or not os.path.isfile(path):
        raise ReluverifyError("a certificate names the ONNX file's SHA-256: load the network from an ONNX file")
    return path


def solve_with_proof(query, options, network_path, spec_path, proof_path):
    """Solve a query read from ``spec_path`` with a proof; the result and what was written."""
    from reluverify.solver import solve

    result = solve(query, replace(options, proof=True))
    if result.verdict == "unsat" and result.certificate is not None:
        return result, write_certificate(result, network_path, spec_path, proof_path)
    return result, no_certificate(result.verdict, proof_path)


def _no_softmax_certificate(network) -> str:
    """Why a network imported without its final Softmax gets no certificate (empty for other networks)."""
    kind = network.final_softmax
    return "" if not kind else (f"no certificate for a network whose final {kind} is dropped: a certificate is "
                                f"checked against the file's outputs; export the logits to get one")


def check_property_with_proof(prop, options, proof_path, **check_args):
    """Decide a property (a :class:`~reluverify.properties.base.Property`) and write its certificate.

    A property whose query is a one-network VNN-LIB instance (Def. 1 or 3 at a point with an
    L-infinity ball) is solved from that instance with a proof; any other is checked as usual
    (``prop.check(options, **check_args)``) and the note says why there is no certificate.
    Returns the :class:`~reluverify.properties.result.PropertyResult` with ``proof`` filled in.
    """
    from reluverify.onnx_import import load_onnx
    from reluverify.properties.runner import Outcome
    from reluverify.vnnlib import load_query
    from reluverify.vnnlib_export import vnnlib_text

    if prop.settled() is not None:  # a tie at the point: no query runs
        result = prop.check(options, **check_args)
        result.proof = {"certificate": None, "note": "no certificate: the point's label is a tie, no query ran"}
        return result
    why_not = prop.no_certificate or _no_softmax_certificate(prop.network)
    if why_not:
        result = prop.check(options, **check_args)
        result.proof = {"certificate": None, "note": why_not}
        return result
    query = prop.query()
    try:
        text = vnnlib_text(query)
    except ReluverifyError as exc:
        result = prop.check(options, **check_args)
        result.proof = {"certificate": None, "note": f"no certificate is available for this property: {exc}"}
        return result
    network_path = network_file(prop.network)
    spec_path = spec_path_for(proof_path)
    with open(spec_path, "w") as handle:
        handle.write(text)
    compiled = load_query(load_onnx(network_path), spec_path)
    solved, proof = solve_with_proof(compiled, options, network_path, spec_path, proof_path)
    if proof["certificate"] is None:
        os.remove(spec_path)
    else:
        proof["note"] += f" (the property's query, as VNN-LIB: {spec_path})"
    cex = solved.counterexample
    outcome = Outcome(solved.verdict, cex, 0 if cex is not None else None, solved.statistics, solved.seconds,
                      solved.reason, [list(solved.disjunct_verdicts)], 1)
    result = prop.interpret([query], outcome)
    result.proof = proof
    return result
