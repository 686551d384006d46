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
:meth:`Verifier.max_delta`, a :class:`~reluverify.properties.max_delta.MaxDeltaResult`. The verdicts
are the command line's words: ``robust`` / ``not robust`` / ``tie`` / ``unknown`` / ``timeout`` for
robustness properties, ``sat`` / ``unsat`` / ``unknown`` / ``timeout`` for a VNN-LIB specification
(``sat``: a counterexample exists); ``holds`` is the same as a boolean (None when undecided).
:meth:`Verifier.certified_accuracy` gives the certified robust accuracy over many points per delta
(a :class:`~reluverify.sweep.certified.CertifiedAccuracy`), as ``reluverify verify --points`` does.
:meth:`Verifier.check` checks any property of :mod:`reluverify.properties.registry` by its kind
(``verifier.check("eps-local-robustness", point=point, delta=0.018, epsilon=0.03)``).

Points are arrays (any shape with the network's input size, flattened in C order) or paths to
``.npy``/``.csv``/``.json``/``.npz`` files (read as the command line reads them:
:func:`reluverify.properties.inputs.read_point`); domains are
:class:`~reluverify.properties.inputs.Domain` values, ``(lower, upper)`` pairs (numbers broadcast),
``{"lower": ..., "upper": ...}`` dicts, paths to domain files, or the ``"LO:HI"`` shorthand of
``--domain``. A point file that carries a domain uses it when no domain is given; a given domain
replaces it.
"""

from __future__ import annotations

import os

import numpy as np

from reluverify.errors import SpecError
from reluverify.network import Network
from reluverify.properties.inputs import Domain, read_domain, read_point
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
    Options with a checkpoint (``SolverOptions().with_checkpoint("run.npz", every=60)``,
    :mod:`reluverify.solver.checkpoint`) keep the open work of each search of :meth:`vnnlib` and of the
    checks of one property in that file and resume from it, as ``--checkpoint`` does (not with
    ``proof``; :meth:`certified_accuracy` runs its points without it).
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
        self.timeout = _time(timeout)
        self.jobs = self.options.parallel.jobs if jobs is None else _jobs(jobs)
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
            return read_domain(domain, self.network.input_size, what="domain")
        return Domain.of(domain, self.network.input_size)

    def _point_and_domain(self, point, domain):
        """The point and its domain: ``domain`` when given, else the one a point file carries, checked
        to hold the point."""
        from reluverify.properties.inputs import check_in_domain, check_point

        carried, where = None, "point"
        if _is_path(point):
            where = os.fspath(point)
            point, carried = read_point(point, self.network.input_size)
        else:
            point = check_point(point, self.network.input_size)
        chosen = self.domain(domain) if domain is not None else carried
        if chosen is not None:
            check_in_domain(point, chosen, what=where)
        return point, chosen

    def _options(self, timeout=..., jobs: int | None = None):
        """The options of one check: the verifier's, with this check's ``timeout`` and ``jobs`` (else the
        verifier's) set once."""
        from reluverify.properties.common import solver_options

        return solver_options(self.options, self.timeout if timeout is ... else _time(timeout),
                              self.jobs if jobs is None else _jobs(jobs))

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

    def max_eps(self, domain, deltas, norm: str = "inf", *, gap: float = 0.01, timeout: float | None = 60.0,
                seed: int = 0):
        """Def. 2's threshold eps*(delta) on ``domain`` for each of ``deltas`` (one or several), as a certified
        bracket: a :class:`~reluverify.properties.max_eps.MaxEpsResult` whose ``brackets`` hold, per delta,
        ``lower`` (a pair's change that onnxruntime confirmed: Def. 2 fails for every eps up to it),
        ``upper`` (the network is (delta, eps)-globally robust for every eps above it), per output too,
        and ``status`` (``gap``: within the relative ``gap``; ``timeout``: ``timeout`` seconds per delta
        spent; ``settled``: nothing left to search). The network must be affine layers and ReLUs."""
        from reluverify.properties.max_eps import max_eps

        return max_eps(self.network, self.domain(domain), _values(deltas), norm, gap, timeout, seed)

    def certified_accuracy(self, points, labels=None, deltas=None, norm: str = "inf", domain=None, *,
                           epsilon=None, decision: str | None = None, timeout: float | None = ...,
                           jobs: int | None = None):
        """The certified robust accuracy on ``points`` per delta: the numbers ``reluverify verify NETWORK
        --points FILE --delta D ...`` prints, computed by the same code (:func:`reluverify.sweep.certified.certify`).

        ``points``: an array of ``k`` points (shape ``(k, n)``, or ``(k, ...)`` holding ``n`` values each) or
        a points file (``.npy``, ``.csv``, ``.json``; a JSON object's ``"labels"`` are used when ``labels``
        is None). ``labels``: the true label of each point, or None (then a point counts when it is
        robust). ``deltas``: one radius or several. Each point x delta is Def. 1 (or Def. 3 with
        ``epsilon``, one value or several), in ``jobs`` worker processes with ``timeout`` seconds per
        point. A point is certified when its verdict is ``robust`` and the network gives it its true label.

        Returns a :class:`~reluverify.sweep.certified.CertifiedAccuracy`: ``per_delta`` (per delta:
        ``certified``, ``robust``, ``not_robust``, ``tie``, ``unknown``, ``timeout``, ``misclassified``,
        ``total``, ``accuracy``), ``points`` (each point's outcome), ``at(delta)``, ``summary()``, ``to_dict()``.
        """
        from reluverify.properties.common import check_decision
        from reluverify.properties.inputs import check_in_domain
        from reluverify.sweep.certified import certify

        if deltas is None:
            raise TypeError("certified_accuracy needs deltas (one radius or several)")
        array, carried = self._points(points)
        true = carried if labels is None else self._labels(labels, len(array))
        dom = None if domain is None else self.domain(domain)
        if dom is not None:
            for index, point in enumerate(array):
                check_in_domain(point, dom, what=f"point {index}")
        options = self._options(timeout, jobs)
        return certify(self.network, array, _values(deltas), _values(epsilon), true_labels=true, norm=norm,
                       decision=check_decision(decision or self.decision), domain=dom, jobs=options.parallel.jobs,
                       timeout=options.timeout, strategy=options.strategy, progress=False)

    def _points(self, points) -> tuple[np.ndarray, np.ndarray | None]:
        """Many points as a checked ``(k, n)`` array, with the labels a points file carries (else None)."""
        from reluverify.errors import SpecError
        from reluverify.properties.inputs import check_point

        size = self.network.input_size
        if _is_path(points):
            from reluverify.sweep.evaluation import from_file

            found = from_file(points, size)
            return found.points, found.labels
        array = np.asarray(points, dtype=np.float64)
        rows = array.reshape(1, -1) if array.ndim == 1 else array.reshape(len(array), -1)
        if rows.shape[0] == 0 or rows.shape[1] != size:
            raise SpecError(f"points of shape {array.shape}: expected k points of {size} values each")
        return np.stack([check_point(row, size, what=f"point {i}") for i, row in enumerate(rows)]), None

    def _labels(self, labels, count: int) -> np.ndarray:
        """``labels`` checked: one integer label of the network per point."""
        from reluverify.errors import SpecError

        values = list(labels.reshape(-1)) if isinstance(labels, np.ndarray) else list(labels)
        if len(values) != count:
            raise SpecError(f"{len(values)} labels for {count} points")
        classes = self.network.output_size
        for index, value in enumerate(values):
            if not (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
                    and 0 <= value < classes):
                shown = value.item() if isinstance(value, np.generic) else value
                raise SpecError(f"labels: entry {index} is {shown!r}; a label is an integer 0 .. {classes - 1}")
        return np.asarray(values, dtype=np.int64)

    def vnnlib(self, spec_path, *, timeout: float | None = ..., proof=None, exact: bool = False) -> PropertyResult:
        """Decide a VNN-LIB 1.0 specification, as ``reluverify vnnlib`` does: the verdict is ``sat`` (the
        specification's condition can be met: a counterexample exists, the property is violated), ``unsat``
        (it cannot: the property holds), ``unknown`` or ``timeout``; ``result.holds`` is True for unsat.

        ``proof`` (a path): for ``unsat``, write a certificate there (``result.proof`` says what was
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


def _time(timeout):
    """A caller's ``timeout``: None (no limit) or a finite number of seconds > 0, else a SpecError."""
    if timeout is None:
        return None
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        raise SpecError(f"timeout must be a number of seconds or None, got {timeout!r}") from None
    if not (np.isfinite(seconds) and seconds > 0):
        raise SpecError(f"timeout must be a finite number of seconds > 0 (or None for no limit), got {timeout!r}")
    return seconds


def _jobs(jobs) -> int:
    """A caller's ``jobs``: an integer >= 1, else a SpecError."""
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise SpecError(f"jobs must be an integer >= 1, got {jobs!r}")
    return int(jobs)


def _values(value) -> list:
    """One number or several as a list (None as ``[None]``: Def. 1 for an absent epsilon)."""
    if value is None:
        return [None]
    return [value] if np.ndim(value) == 0 else list(np.asarray(value, dtype=np.float64).reshape(-1))


def vnnlib_result(query, result, spec: str, network: dict) -> PropertyResult:
    """A solver result on a VNN-LIB query as a :class:`PropertyResult` (verdict ``sat`` / ``unsat`` /
    ``unknown`` / ``timeout``, as the solver's)."""
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
