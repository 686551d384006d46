"""``reluverify verify --point FILE --delta D [D ...]`` (or ``--global``) with several checks: one line each.

Each (delta, epsilon) of the command is checked in turn at the same point (or on the same domain)
by :func:`reluverify.cli.verify.run`; this module reports them:

* text -- the point (or domain) and the property once, then one line per check: delta (and eps),
  verdict, seconds, and for a counterexample the violated disjunct and its distance;
* ``--json`` -- a list with one result per check (each as ``verify --json`` prints one, with its
  ``files``);
* ``--cex-out DIR`` -- a folder with one counterexample per refuted check (JSON and ``.npz``),
  named as for many points: ``point0_delta0.05.json`` (``..._eps0.1`` for Def. 3), or
  ``domain_delta0.05_eps0.1.json`` for ``--global``.
"""

from __future__ import annotations

import json
import os
import sys

from reluverify.cli.verify_points import NORM_WORDS


def counterexample_file(result, args) -> str:
    """Where the counterexample of ``result`` goes in the ``--cex-out`` folder."""
    from reluverify.sweep.evidence import counterexample_name

    parameters = result.parameters
    row = {"point_index": 0, "delta": parameters["delta"], "epsilon": parameters.get("epsilon")}
    name = counterexample_name(row)
    if args.global_:
        name = "domain_" + name[len("point0_"):]
    return os.path.join(args.cex_out, name)


def check_line(result) -> str:
    """One check in one line: delta (and eps), verdict, seconds, the violation or the reason."""
    parameters = result.parameters
    line = f"delta {parameters['delta']:<7g}"
    if parameters.get("epsilon") is not None:
        line += f" eps {parameters['epsilon']:<7g}"
    line += f" {result.verdict:<11} {result.seconds:7.3f} s"
    cex = result.counterexample
    if cex is not None:
        where = f" in sub-domain {cex.subdomain}" if cex.subdomain is not None else ""
        line += f"   violated {cex.violated}{where} (distance {cex.distance:.3g})"
    elif result.reason and result.verdict not in ("robust", "not robust"):
        line += f"   ({result.reason})"
    return line


def check_arguments(args) -> None:
    """Refuse, before anything runs, what several checks cannot do: one proof or one VNN-COMP result file
    for all of them, or a ``--cex-out`` folder where a file of that name exists."""
    from reluverify.errors import SpecError

    if args.proof or args.vnncomp_out:
        raise SpecError("--proof and --vnncomp-out write the answer of one check: give one --delta (and one --epsilon)")
    if args.cex_out and os.path.exists(args.cex_out) and not os.path.isdir(args.cex_out):
        raise SpecError(f"--cex-out {args.cex_out}: with several checks this is a folder (one file per refuted "
                        "check), and a file of that name exists")


def report_each(results: list, kind, args) -> None:
    """Write the counterexamples asked for and print the results (lines or a JSON list), then the
    warnings on stderr."""
    from reluverify.cli.inputs import print_warnings
    from reluverify.properties.export import write_counterexample

    files: list[list[str]] = [[] for _ in results]
    refuted = [i for i, r in enumerate(results) if r.counterexample is not None]
    if args.cex_out:
        for i in refuted:
            files[i] = list(write_counterexample(results[i], counterexample_file(results[i], args)))
        if not refuted:
            print(f"reluverify: no counterexample to write to {args.cex_out} (no check was refuted)", file=sys.stderr)
    if args.json:
        print(json.dumps([{**r.to_dict(), "files": f} for r, f in zip(results, files)], indent=2))
        print_warnings(args)
        return
    first = results[0]
    if args.global_:
        print(f"domain    {args.domain}")
    else:
        label = "tie between labels " + ", ".join(map(str, first.ties)) if first.ties else \
            ("" if first.label is None else f"label {first.label}")
        print(f"point     {args.point}" + (f" ({label})" if label else ""))
    inside = "" if args.global_ or first.parameters.get("domain") is None else ", in the domain"
    print(f"property  {kind.title} ({kind.definition}), {NORM_WORDS[args.norm]}{inside}")
    for result in results:
        print(check_line(result))
    if refuted and args.cex_out:
        print(f"wrote     {len(refuted)} counterexample{'s' if len(refuted) > 1 else ''} to {args.cex_out}")
    print_warnings(args)
