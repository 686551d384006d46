"""``reluverify verify NETWORK.onnx --delta D [D ...]`` without ``--point``: certified robust accuracy.

    reluverify verify NETWORK.onnx [--points FILE] [--labels FILE] --delta D [D ...] [--epsilon E]
                      [--norm inf|1] [--decision max|min] [--domain LO:HI|FILE] [--jobs N] [--timeout S]
                      [--verbose] [--json] [--cex-out DIR]

The points are ``--points FILE`` (read as every command reads points; the file may carry
``"labels"`` and ``"domain"``), else those the network's model card ``NAME.json`` names
(:mod:`reluverify.sweep.evaluation`, with the card's domain and decision rule). ``--labels FILE``
replaces the labels, ``--domain`` the domain and ``--decision`` the rule (:mod:`reluverify.cli.inputs`).
Without points, a one-line error names ``--point``, ``--points`` and ``--global --domain``.

Every point x delta is one query of a sweep plan (Def. 1, or Def. 3 with ``--epsilon``), run by
the sweep's own backend and loop (:func:`reluverify.sweep.certified.certify`, as
``Verifier.certified_accuracy`` runs them, with ``--jobs`` worker processes); ``--timeout`` is per
query. The rows are then summarised by :mod:`reluverify.sweep.accuracy`: one line per delta with
the certified robust accuracy (certified / total; with known labels a misclassified point is never
certified). ``--fail-on-violation`` exits 1 when a point is not robust, tied or misclassified.
``--verbose`` adds one line per point, ``--json`` prints everything as JSON instead, and
``--cex-out DIR`` writes one counterexample (JSON and ``.npz``, as ``verify --cex-out``) per
refuted query, named ``point{i}_delta{d}.json``.
"""

from __future__ import annotations

import json
import os
import sys

NORM_WORDS = {"inf": "L-inf", "1": "L1"}


def _points(args, network):
    from reluverify.errors import SpecError
    from reluverify.sweep.evaluation import card_path, from_card, from_file

    if args.points:
        return from_file(args.points, network.input_size, network.output_size)
    found = from_card(args.network, network.input_size, network.output_size)
    if found is None:
        card = card_path(args.network)
        why = f"its model card {card} names no evaluation points" if os.path.isfile(card) else \
            f"it has no model card {card} naming evaluation points"
        raise SpecError(f"no points to check ({why}): give --point FILE, --points FILE or --global --domain FILE")
    return found


def _labels(args, evaluation, outputs: int):
    """The true labels (``--labels`` first, else the points file's) and where they come from, in words."""
    from reluverify.properties.inputs import read_labels

    if args.labels is not None:
        return read_labels(args.labels, len(evaluation.points), outputs), f"from {args.labels}"
    return evaluation.labels, ""


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
    from reluverify.cli.common import verdict_status
    from reluverify.cli.inputs import check_points_in, choose_domain, note_no_domain, print_warnings
    from reluverify.errors import SpecError
    from reluverify.onnx_import import load_onnx
    from reluverify.properties.common import final_softmax_note
    from reluverify.properties.registry import select
    from reluverify.sweep.certified import certify

    if getattr(args, "vnncomp_out", None):
        raise SpecError("--vnncomp-out writes the result of one point: use it with --point FILE")
    if options.timeout is not None and options.timeout <= 0:
        raise SpecError("--timeout must be positive")
    if args.cex_out and os.path.exists(args.cex_out) and not os.path.isdir(args.cex_out):
        raise SpecError(f"--cex-out {args.cex_out}: with many points this is a folder (one file per refuted point), "
                        "and a file of that name exists")
    network = load_onnx(args.network, drop_final_softmax=True)
    evaluation = _points(args, network)
    kind = select("point", point=evaluation.points, delta=args.delta, epsilon=args.epsilon)
    note = final_softmax_note(network, kind.cls)  # refuses Def. 3 on a network that ends in Softmax
    true_labels, labels_source = _labels(args, evaluation, network.output_size)
    domain, domain_source = choose_domain(args.domain, network.input_size,
                                          (evaluation.domain, evaluation.domain_source))
    check_points_in(evaluation.points, domain, evaluation.file)
    decision = args.decision or evaluation.decision or "max"
    if domain is None:
        note_no_domain(args)
    found = certify(network, evaluation.points, args.delta, [args.epsilon], true_labels=true_labels,
                    norm=args.norm, decision=decision, domain=domain, jobs=options.parallel.jobs,
                    timeout=options.timeout, strategy=options.strategy)
    table, outcomes, rows = found.per_delta, found.points, found.rows
    status = verdict_status([o.verdict for o in outcomes], args, violated=any(o.misclassified for o in outcomes))

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
                       "labels": true_labels is not None, "labels_file": args.labels,
                       "description": evaluation.description},
            "property": kind.name,
            "norm": args.norm,
            "epsilon": args.epsilon,
            "decision": decision if args.epsilon is None else None,
            "domain": None if domain is None else domain.to_dict(),
            "domain_source": domain_source or None,
            "accuracy": [acc.to_dict() for acc in table],
            "per_point": [o.to_dict() for o in outcomes],
            "files": files,
            **({"notes": [note]} if note else {}),
        }
        if getattr(args, "warnings", None):
            payload["warnings"] = list(args.warnings)
        print(json.dumps(payload, indent=2))
        print_warnings(args)
        return status
    labelled = f"with their true labels{' ' + labels_source if labels_source else ''}" if true_labels is not None \
        else "no labels (accuracy = robust / total)"
    print(f"points    {len(evaluation.points)} from {evaluation.source}, {labelled}")
    rule = "" if args.epsilon is not None or decision == "max" else ", label = lowest score"
    inside = ", balls not cut to an input domain" if domain is None else f", balls cut to {domain_source}"
    print(f"property  {prop}, {NORM_WORDS[args.norm]}{rule}{inside}")
    if note:
        print(f"note      {note}")
    for acc in table:
        print(acc.line(true_labels is not None))
        if args.verbose:
            for outcome in outcomes:
                if outcome.delta == acc.delta:
                    print(_point_line(outcome))
    if files:
        print(f"wrote     {len(files) // 2} counterexamples to {args.cex_out}")
    print_warnings(args)
    return status
