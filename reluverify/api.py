"""The Python API: load a network once, check several properties, get result objects back.

It mirrors the command line (``reluverify verify`` / ``reluverify max-delta`` / ``reluverify vnnlib``)::

    from reluverify import Verifier

    verifier = Verifier("networks/digits_mlp.onnx")
    result = verifier.local_robustness("networks/digits_point0.json", delta=0.02)
    print(result.verdict, result.seconds)        # 'robust' 0.2
    result = verifier.eps_robustness(point, delta=0.018, epsilon=0.03)
    result = verifier.global_robustness(domain, delta=0.01, epsilon=0.05, partitions=4)
    search = verifier.max_delta(point, precision=1e-3)

Every check returns a :class:`~reluverify.properties.result.PropertyResult` (``verdict``,
``holds``, ``counterexample``, ``statistics``, ``seconds``, ``summary()``, ``to_dict()``) or, for
:meth:`Verifier.max_delta`, a :class:`~reluverify.properties.max_delta.MaxDeltaResult`.
:meth:`Verifier.check` checks any property of :mod:`reluverify.properties.registry` by its kind
(``verifier.check("eps-local-robustness", point=point, delta=0.018, epsilon=0.03)``).

Points are arrays (any shape with the network's input size, flattened in C order) or paths to
``.npy``/``.csv``/``.json`` files; domains are :class:`~reluverify.properties.inputs.Domain`
values, ``(lower, upper)`` pairs (numbers broadcast), ``{"lower": ..., "upper": ...}`` dicts, or
paths to domain files. A point JSON file that carries a ``"domain"`` uses it when no domain is given.
"""

from __future__ import annotations

import os

import numpy as np

from reluverify.network import Network
from reluverify.properties.inputs import Domain, load_domain, load_point_and_domain
from reluverify.properties.result import PropertyResult, spec_verdict


def _is_path(value) -> bool:
    return isinstance(value, (str, os.PathLike))


class Verifier:
    """One network and default solver options; each method checks one property.

    ``network`` is a path to an ONNX file or a :class:`~reluverify.network.Network`. A file whose
    last operator is a Softmax or LogSoftmax over the classes is loaded without it (its logits):
    local robustness and :meth:`max_delta` say so in their results (``notes``); the other checks
    refuse it with one line (:func:`~reluverify.network.softmax_refusal`).
    ``options`` is a :class:`~reluverify.solver.SolverOptions` (default ones when None);
    ``timeout`` (seconds, None for no limit) and ``jobs`` (worker processes; disjuncts or
    sub-domains run in parallel when > 1; default: the options' ``parallel.jobs``) are defaults every
    method can override: each check runs under ``options`` with its timeout and jobs set
    (``timeout``, ``parallel.jobs``).
    ``decision`` is how a label is read from the scores: ``"max"`` (classifiers) or ``"min"``
    (e.g. ACAS Xu, whose advisory is the lowest score).
    """

    def __init__(self, network, options=None, *, timeout: float | None = 60.0, jobs: int | None = None,
                 decision: str = "max") -> None:
        from reluverify.properties.common import check_decision, solver_options

        if isinstance(network, Network):
            self.network = network
        elif _is_path(network):
            from reluverify.onnx_import import load_onnx

            self.network = load_onnx(network, drop_final_softmax=True)  # the properties refuse it where it matters
        else:
            raise TypeError("network must be a path to an ONNX file or a reluverify Network")
        self.options = solver_options(options)
        self.timeout = timeout
        self.jobs = self.options.parallel.jobs if jobs is None else int(jobs)
        self.decision = check_decision(decision)

    def __repr__(self) -> str:
        where = self.network.source_path or "in-memory network"
        return f"Verifier({where!r}: {self.network.input_size} inputs, {self.network.num_relus} ReLUs)"

    # ------------------------------------------------------------ inputs
    def point(self, point) -> np.ndarray:
        """A point given as an array or a file, checked against the network's input size."""
        return self._point_and_domain(point, None)[0]

    def domain(self, domain) -> Domain:
        if _is_path(domain):
            return load_domain(domain, self.network.input_size)
        return Domain.of(domain, self.network.input_size)

    def _point_and_domain(self, point, domain):
        from reluverify.properties.inputs import check_point

        carried = None
        if _is_path(point):
            point, carried = load_point_and_domain(point, self.network.input_size)
        else:
            point = check_point(point, self.network.input_size)
        if domain is not None:
            return point, self.domain(domain)
        return point, carried

    def _options(self, timeout=..., jobs: int | None = None):
        """The options of one check: the verifier's, with this check's ``timeout`` and ``jobs`` (else the
        verifier's) set once."""
        from reluverify.properties.common import solver_options

        return solver_options(self.options, self.timeout if timeout is ... else timeout,
                              self.jobs if jobs is None else jobs)

    # ------------------------------------------------------------ properties
    def check(self, kind: str, *, timeout: float | None = ..., jobs: int | None = None, proof=None,
              exact: bool = False, **parameters) -> PropertyResult:
        """Check the property registered as ``kind`` (:mod:`reluverify.properties.registry`: e.g.
        ``"local-robustness"``) with ``parameters``, the keywords of its class after the network (and of
        its ``check``, such as ``subdomain_timeout``). A point and a domain may be arrays or files, as
        for the methods below; ``decision`` defaults to the verifier's. ``proof``, ``exact``: as for
        :meth:`local_robustness`."""
        from reluverify.properties.registry import property_kind

        entry = property_kind(kind)
        unknown = set(parameters) - set(entry.parameters) - set(entry.check_parameters)
        if unknown:
            raise TypeError(f"{kind} takes no parameter {sorted(unknown)[0]!r}")
        values = dict(parameters)
        if entry.scope == "point":
            values["point"], values["domain"] = self._point_and_domain(values.get("point"), values.get("domain"))
        else:
            values["domain"] = self.domain(values.get("domain"))
        if "decision" in entry.parameters:
            values["decision"] = values.get("decision") or self.decision
        extra = {name: values[name] for name in entry.check_parameters if name in values}
        prop = entry.build(self.network, **values)
        return self._check(prop, self._options(timeout, jobs), proof, exact, **extra)

    def local_robustness(self, point, delta: float, norm: str = "inf", domain=None, *, decision: str | None = None,
                         timeout: float | None = ..., jobs: int | None = None, proof=None,
                         exact: bool = False) -> PropertyResult:
        """Def. 1: is the label of ``point`` the same everywhere within ``delta`` (``norm`` "inf" or "1")?

        ``proof`` (a path): for a ``robust`` answer, write a certificate there and the property's query
        as VNN-LIB beside it (see :mod:`reluverify.proofs`; ``result.proof`` says what was written).
        ``exact``: re-check a counterexample in exact arithmetic (``result.exact``)."""
        return self.check("local-robustness", point=point, delta=delta, norm=norm, domain=domain, decision=decision,
                          timeout=timeout, jobs=jobs, proof=proof, exact=exact)

    def eps_robustness(self, point, delta: float, epsilon: float, norm: str = "inf", domain=None, *,
                       timeout: float | None = ..., jobs: int | None = None, proof=None,
                       exact: bool = False) -> PropertyResult:
        """Def. 3: does every score stay within ``epsilon`` of its value at ``point``, within ``delta``?
        (``proof``, ``exact``: as for :meth:`local_robustness`.)"""
        return self.check("eps-local-robustness", point=point, delta=delta, epsilon=epsilon, norm=norm, domain=domain,
                          timeout=timeout, jobs=jobs, proof=proof, exact=exact)

    def _check(self, prop, options, proof, exact, **check_args) -> PropertyResult:
        if proof is None:
            result = prop.check(options, **check_args)
        else:
            from reluverify.proofs import check_property_with_proof

            result = check_property_with_proof(prop, options, proof, **check_args)
        if exact and result.counterexample is not None:
            result.exact = prop.exact_check(result.counterexample)
        return result

    def global_robustness(self, domain, delta: float, epsilon: float, norm: str = "inf", partitions: int = 1, *,
                          subdomain_timeout: float | None = None, timeout: float | None = ...,
                          jobs: int | None = None) -> PropertyResult:
        """Def. 2: do any two points of ``domain`` within ``delta`` differ by ``epsilon`` or more in a score?

        ``partitions`` sub-domains (exact); with ``subdomain_timeout`` each gets that many seconds and
        the undecided ones are halved and retried.
        """
        return self.check("global-robustness", domain=domain, delta=delta, epsilon=epsilon, norm=norm,
                          partitions=partitions, subdomain_timeout=subdomain_timeout, timeout=timeout, jobs=jobs)

    def max_delta(self, point, precision: float = 1e-3, norm: str = "inf", domain=None, *, upper: float | None = None,
                  decision: str | None = None, timeout: float | None = ..., probe_timeout: float | None = None,
                  jobs: int | None = None):
        """The largest delta for which Def. 1 holds, to ``precision`` (a MaxDeltaResult)."""
        from reluverify.properties.max_delta import max_delta

        x0, dom = self._point_and_domain(point, domain)
        return max_delta(self.network, x0, precision, norm, dom, upper, decision or self.decision,
                         self._options(timeout, jobs), probe_timeout=probe_timeout)

    def vnnlib(self, spec_path, *, timeout: float | None = ..., proof=None, exact: bool = False) -> PropertyResult:
        """Decide a VNN-LIB 1.0 specification (it describes a counterexample: ``holds`` means unsat).

        ``proof`` (a path): for ``holds``, write a certificate there (``result.proof`` says what was
        written; ``reluverify check-proof NETWORK SPEC PROOF`` checks it). ``exact``: re-check a
        counterexample in exact rational arithmetic (``result.exact``)."""
        from reluverify.properties.common import network_info
        from reluverify.solver import solve
        from reluverify.vnnlib import load_query

        query = load_query(self.network, spec_path)
        options = self.options.with_timeout(self.timeout if timeout is ... else timeout)
        proof_written = {}
        if proof is None:
            result = solve(query, options)
        else:
            from reluverify.proofs import network_file, solve_with_proof

            result, proof_written = solve_with_proof(query, options, network_file(self.network), spec_path, proof)
        out = vnnlib_result(query, result, os.fspath(spec_path), network_info(self.network))
        out.proof = proof_written
        if exact and result.counterexample is not None:
            from reluverify.exact import exact_check

            out.exact = exact_check(query, result.counterexample.inputs, result.counterexample.disjunct).to_dict()
        return out


def vnnlib_result(query, result, spec: str, network: dict) -> PropertyResult:
    """A solver result on a VNN-LIB query as a :class:`PropertyResult` (``holds`` / ``violated``)."""
    from reluverify.properties.result import PropertyCounterexample

    cex = None
    if result.counterexample is not None:
        c = result.counterexample
        n = query.num_network_inputs
        cex = PropertyCounterexample(
            inputs=c.inputs[:n], outputs=c.outputs, ir_outputs=c.ir_outputs, point=np.zeros(0),
            point_outputs=np.zeros(0), point_ir_outputs=np.zeros(0), distance=0.0, norm="inf",
            disjunct=c.disjunct, violated=query.disjuncts[c.disjunct].label, query_inputs=c.inputs, slack=c.slack,
        )
    return PropertyResult(
        kind="vnnlib",
        verdict=spec_verdict(result.verdict),
        description=f"VNN-LIB specification {spec}",
        parameters={"spec": spec},
        solver_verdict=result.verdict,
        counterexample=cex,
        statistics=result.statistics.to_dict(),
        seconds=result.seconds,
        reason=result.reason,
        queries=1,
        disjunct_verdicts=list(result.disjunct_verdicts),
        disjunct_labels=[d.label for d in query.disjuncts],
        network=network,
    )
