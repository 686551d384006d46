"""``reluverify verify NETWORK.onnx --delta D [D ...]`` without ``--point``: certified robust accuracy.

    reluverify verify NETWORK.onnx [--points FILE] --delta D [D ...] [--epsilon E] [--norm inf|1]
                      [--decision max|min] [--domain FILE] [--jobs N] [--timeout S]
                      [--verbose] [--json] [--cex-out DIR]

The points are ``--points FILE`` (the sweep's reader; a JSON file may carry ``"labels"``), else
those the network's model card ``NAME.json`` names (:mod:`reluverify.sweep.evaluation`, with the
card's domain and decision rule unless ``--domain`` / ``--decision`` are given). Without either,
a one-line error names ``--point``, ``--points`` and ``--global --domain``.

Every point x delta is one query of a sweep plan (Def. 1, or Def. 3 with ``--epsilon``), run by
the sweep's own backend and loop (:class:`~reluverify.sweep.backends.LocalBackend` with
``--jobs`` worker processes, :func:`~reluverify.sweep.run.run_sweep`) into a temporary results
store; ``--timeout`` is per query. The rows are then summarised by
:mod:`reluverify.sweep.accuracy`: one line per delta with the certified robust accuracy
(certified / total; with known labels a misclassified point is never certified).
``--verbose`` adds one line per point, ``--json`` prints everything as JSON instead, and
``--cex-out DIR`` writes one counterexample (JSON and ``.npz``, as ``verify --cex-out``) per
refuted query, named ``point{i}_delta{d}.json``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

NORM_WORDS = {"inf": "L-inf", "1": "L1"}


def _points(args, network):
    from reluverify.errors import SpecError
    from reluverify.sweep.evaluation import card_path, from_card, from_file

    if args.points:
        return from_file(args.points, network.input_size)
    found = from_card(args.network, network.input_size)
    if found is None:
        card = card_path(args.network)
        why = f"its model card {card} names no evaluation points" if os.path.isfile(card) else \
            f"it has no model card {card} naming evaluation points"
        raise SpecError(f"no points to check ({why}): give --point FILE, --points FILE or --global --domain FILE")
    return found


def _domain(args, evaluation, size):
    from reluverify.properties.inputs import check_in_domain, load_domain

    domain, where = evaluation.domain, "the model card's domain"
    if args.domain:
        domain, where = load_domain(args.domain, size), args.domain
    if domain is not None:
        for index, point in enumerate(evaluation.points):
            check_in_domain(point, domain, what=f"{evaluation.file}: point {index}")
    return domain, where


def _deltas_line(acc, labels_known: bool) -> str:
    order = ("robust", "not robust", "tie", "unknown", "timeout", "error")
    verdicts = ", ".join(f"{v} {acc.counts[v]}" for v in order if acc.counts.get(v))
    line = (f"delta {acc.delta:<7g} certified robust accuracy {acc.accuracy:6.1%} ({acc.certified}/{acc.total})"
            f"   {verdicts}")
    if labels_known:
        line += f", misclassified {acc.misclassified}"
    return line + f"   {acc.seconds:.1f} s"


def _point_line(outcome) -> str:
    truth = "" if outcome.true_label is None else f" (true {outcome.true_label})"
    label = "tie" if outcome.label is None else str(outcome.label)
    mark = "certified" if outcome.certified else ("misclassified" if outcome.misclassified else "")
    line = f"  point {outcome.index:<4d} label {label}{truth:<10} {outcome.verdict:<11} {mark:<13} {outcome.seconds:.2f} s"
    if outcome.reason and outcome.verdict not in ("robust", "not robust"):
        line += f"  ({outcome.reason})"
    return line.rstrip()


def run_points(args, options) -> int:
    """Check every point (see the module docstring); ``options`` are the command's solver options: its
    ``parallel.jobs`` worker processes each run one point's query, within ``timeout`` seconds."""
    from reluverify.errors import SpecError
    from reluverify.onnx_import import load_onnx
    from reluverify.properties.common import final_softmax_note
    from reluverify.properties.registry import select
    from reluverify.sweep.accuracy import network_labels, robust_accuracy
    from reluverify.sweep.backends import LocalBackend
    from reluverify.sweep.plan import NetworkRef, make_plan
    from reluverify.sweep.run import run_sweep
    from reluverify.sweep.store import ResultStore
    from reluverify.sweep.worker import remember_network

    if getattr(args, "vnncomp_out", None):
        raise SpecError("--vnncomp-out writes the result of one point: use it with --point FILE")
    if options.timeout is not None and options.timeout <= 0:
        raise SpecError("--timeout must be positive")
    if args.cex_out and os.path.exists(args.cex_out) and not os.path.isdir(args.cex_out):
        raise SpecError(f"--cex-out {args.cex_out}: with many points this is a folder (one file per refuted point), "
                        "and a file of that name exists")
    network = load_onnx(args.network, drop_final_softmax=True)
    remember_network(network)
    evaluation = _points(args, network)
    kind = select("point", point=evaluation.points, delta=args.delta, epsilon=args.epsilon)
    note = final_softmax_note(network, kind.cls)  # refuses Def. 3 on a network that ends in Softmax
    domain, domain_source = _domain(args, evaluation, network.input_size)
    decision = args.decision or evaluation.decision or "max"
    ref = NetworkRef(os.path.abspath(args.network), network.source_sha256, network.input_size)
    bounds = None if domain is None else (domain.lower, domain.upper)
    jobs = make_plan([ref], evaluation.points, args.delta, [args.epsilon], args.norm, decision, bounds)
    backend = LocalBackend(options.parallel.jobs, timeout=options.timeout)
    with tempfile.TemporaryDirectory(prefix="reluverify-verify-") as folder:
        with ResultStore(os.path.join(folder, "points.sqlite")) as store:
            run_sweep(jobs, store, backend, {"strategy": options.strategy}, progress=None)
            rows = store.rows([j.key for j in jobs])
    labels = network_labels(network.evaluate(evaluation.points), decision)
    table, outcomes = robust_accuracy(rows, labels, evaluation.labels)

    files = []
    refuted = [r for r in rows if r.get("counterexample") is not None]
    if args.cex_out:
        from reluverify.sweep.evidence import write_row_counterexample

        for row in sorted(refuted, key=lambda r: (float(r["delta"]), int(r["point_index"]))):
            files.extend(write_row_counterexample(row, network, args.cex_out))
        if not refuted:
            print(f"reluverify: no counterexample to write to {args.cex_out} (no point was refuted)", file=sys.stderr)

    prop = f"{kind.title} ({kind.definition})" + ("" if args.epsilon is None else f", eps {args.epsilon:g}")
    if args.json:
        payload = {
            "network": args.network,
            "points": {"file": evaluation.file, "card": evaluation.card, "count": len(evaluation.points),
                       "labels": evaluation.labels is not None, "description": evaluation.description},
            "property": kind.name,
            "norm": args.norm,
            "epsilon": args.epsilon,
            "decision": decision if args.epsilon is None else None,
            "domain": None if domain is None else domain.to_dict(),
            "accuracy": [acc.to_dict() for acc in table],
            "per_point": [o.to_dict() for o in outcomes],
            "files": files,
            **({"notes": [note]} if note else {}),
        }
        print(json.dumps(payload, indent=2))
        return 0
    labelled = "with their true labels" if evaluation.labels is not None else "no labels (accuracy = robust / total)"
    print(f"points    {len(evaluation.points)} from {evaluation.source}, {labelled}")
    rule = "" if args.epsilon is not None or decision == "max" else ", label = lowest score"
    inside = "" if domain is None else f", balls cut to {domain_source}"
    print(f"property  {prop}, {NORM_WORDS[args.norm]}{rule}{inside}")
    if note:
        print(f"note      {note}")
    for acc in table:
        print(_deltas_line(acc, evaluation.labels is not None))
        if args.verbose:
            for outcome in outcomes:
                if outcome.delta == acc.delta:
                    print(_point_line(outcome))
    if files:
        print(f"wrote     {len(files) // 2} counterexamples to {args.cex_out}")
    return 0
