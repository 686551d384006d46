"""Helpers shared by the property modules: options, network identity (and a dropped final Softmax),
points, counterexamples."""

from __future__ import annotations

import hashlib

import numpy as np

from reluverify import linear_ops
from reluverify.errors import SpecError
from reluverify.network import AffineNode, Network, softmax_refusal
from reluverify.properties.ball import distance
from reluverify.properties.inputs import Domain, check_in_domain, check_point
from reluverify.properties.result import PropertyCounterexample
from reluverify.properties.runner import Outcome
from reluverify.query import Query

DECISIONS = ("max", "min")


def solver_options(options=None, timeout: float | None = ..., jobs: int | None = None):
    """``options`` (a ``SolverOptions``; default ones when None) with ``timeout`` and ``jobs``
    (``parallel.jobs``) where they are given: the one place where those keywords become option fields."""
    from reluverify.solver.options import SolverOptions

    options = options or SolverOptions()
    if timeout is not ...:
        options = options.with_timeout(timeout)
    if jobs is not None:
        options = options.with_jobs(jobs)
    return options


def network_hash(network: Network) -> str:
    """sha256 of the ONNX file the network came from; of its float64 weights for in-memory networks."""
    if network.source_sha256:
        return network.source_sha256
    digest = hashlib.sha256()
    for node in network.nodes:
        digest.update(type(node).__name__.encode())
        if isinstance(node, AffineNode):
            for w in node.weights:
                if linear_ops.is_dense(w):
                    digest.update(np.ascontiguousarray(w, dtype=np.float64).tobytes())
                else:
                    linear_ops.update_digest(digest, w)
            digest.update(np.ascontiguousarray(node.bias, dtype=np.float64).tobytes())
        else:
            digest.update(repr(node).encode())
    return digest.hexdigest()


def network_info(network: Network) -> dict:
    """The network as results name it; with a dropped final Softmax, which one and the note saying so; for a
    file of several input (output) tensors, ``input_tensors`` (``output_tensors``): each tensor's name, shape
    and first index in the flat vector (the counterexample's ``inputs`` / ``outputs``)."""
    info = {
        "path": network.source_path,
        "sha256": network_hash(network),
        "hash_of": "onnx file" if network.source_sha256 else "float64 weights (in-memory network)",
        "inputs": network.input_size,
        "outputs": network.output_size,
        "relus": network.num_relus,
    }
    for side in ("input", "output"):  # how the flat vectors split into the file's tensors, when they do
        names, shapes, offsets = (getattr(network, f"{side}_{what}") for what in ("names", "shapes", "offsets"))
        if len(names) > 1:
            info[f"{side}_tensors"] = [{"name": name, "shape": list(shape), "first": first}
                                       for name, shape, first in zip(names, shapes, offsets)]
    if network.final_softmax:
        info.update(final_softmax=network.final_softmax, logits=network.output_name,
                    note=softmax_note(network.final_softmax))
    return info


def softmax_note(kind: str) -> str:
    """The one line that says a final ``kind`` (Softmax or LogSoftmax) was dropped, and why that is sound."""
    return (f"the network's final {kind} is dropped: scores are the logits it reads, whose order it keeps, "
            f"so labels and delta-local robustness (Def. 1) are unchanged")


def final_softmax_note(network: Network, prop: type) -> str | None:
    """None for a network that ends in no dropped Softmax; else :func:`softmax_note` when the property
    class ``prop`` reads only the order of the scores (``order_only``), and a one-line SpecError when
    it does not (:func:`~reluverify.network.softmax_refusal`)."""
    kind = network.final_softmax
    if not kind:
        return None
    if not getattr(prop, "order_only", False):
        raise SpecError(softmax_refusal(kind))
    return softmax_note(kind)


def reference_outputs(network: Network, x: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs at ``x`` (the ONNX file, or an export of an in-memory network)."""
    from reluverify.onnx_runtime import reference_for

    return np.atleast_1d(np.asarray(reference_for(network)(np.asarray(x, dtype=np.float64)), dtype=np.float64))


def pair_change(network: Network, chain, domain: Domain, delta: float, norm: str):
    """``change(x1, x2)`` for a search over pairs of Def. 2: None unless both points lie in ``domain`` at
    distance ``<= delta`` (float64) and onnxruntime's outputs are finite; else the output changes
    ``y(x2) - y(x1)``, the smaller of onnxruntime's (the ONNX file) and the IR's (``chain``), so a value
    it gives is reached by both."""

    def change(x1: np.ndarray, x2: np.ndarray) -> np.ndarray | None:
        if not (domain.contains(x1) and domain.contains(x2)) or distance(x1, x2, norm) > delta:
            return None
        reference = reference_outputs(network, x2) - reference_outputs(network, x1)
        if not np.all(np.isfinite(reference)):
            return None
        return np.minimum(reference, chain.evaluate(x2[None])[0] - chain.evaluate(x1[None])[0])

    return change


def check_decision(decision: str) -> str:
    if decision not in DECISIONS:
        raise SpecError(f"unknown decision rule {decision!r}: use 'max' (the label is the top score) or 'min'")
    return decision


def prepare_point(network: Network, point, domain) -> tuple[np.ndarray, Domain | None]:
    """The point as a checked float64 vector and the domain as a :class:`Domain` (or None)."""
    x0 = check_point(point, network.input_size)
    dom = None if domain is None else Domain.of(domain, network.input_size)
    if dom is not None:
        check_in_domain(x0, dom)
    return x0, dom


def pair_counterexample(
    query: Query,
    outcome: Outcome,
    norm: str,
    violated: str,
    network: Network,
    point: np.ndarray | None = None,
    subdomain: int | None = None,
) -> PropertyCounterexample:
    """The solver's counterexample as a pair of network inputs.

    With ``point`` given (local properties), the pair is (first copy's inputs, ``point``);
    otherwise (two copies) it is (first copy's inputs, second copy's inputs).
    """
    cex = outcome.counterexample
    n = network.input_size
    v = np.asarray(cex.inputs, dtype=np.float64)
    x = v[:n]
    if point is None:
        other = v[n : 2 * n]
        outputs, other_outputs = cex.outputs[: network.output_size], cex.outputs[network.output_size :]
        ir, other_ir = cex.ir_outputs[: network.output_size], cex.ir_outputs[network.output_size :]
    else:
        other = np.asarray(point, dtype=np.float64)
        outputs, ir = cex.outputs, cex.ir_outputs
        other_outputs = reference_outputs(network, other)
        other_ir = network.evaluate(other)
    return PropertyCounterexample(
        inputs=x.copy(),
        outputs=np.asarray(outputs, dtype=np.float64),
        ir_outputs=np.asarray(ir, dtype=np.float64),
        point=other.copy(),
        point_outputs=np.asarray(other_outputs, dtype=np.float64),
        point_ir_outputs=np.asarray(other_ir, dtype=np.float64),
        distance=distance(x, other, norm),
        norm=norm,
        disjunct=int(cex.disjunct),
        violated=violated,
        query_inputs=v.copy(),
        slack=float(cex.slack),
        subdomain=subdomain,
    )
