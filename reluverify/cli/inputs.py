"""What the verification commands share about their inputs: ``--domain`` and ``--labels``, which domain
a query runs in, and the warning when it runs in none (not a subcommand).

One rule in every command (``verify`` at a point or at many points, ``max-delta``, ``sweep``): the
domain is ``--domain`` when given (a file or the ``LO:HI`` shorthand, see
:mod:`reluverify.properties.domains`), else the one the point or points file carries (``"domain"``
in JSON, ``lower``/``upper`` in ``.npz``), else the model card's; the points are checked inside it.
Without any, the query runs on the whole ball, and one warning says so on stderr after the results
(and in the JSON output). The true labels are ``--labels FILE`` when given, else the points file's.
"""

from __future__ import annotations

import sys

NO_DOMAIN = "no input domain: the delta-ball is not cut to a valid input range (give --domain LO:HI)"

DOMAIN_HELP = ("box domain the balls are cut to: LO:HI for every input (--domain 0:1; a negative bound as "
               "--domain=-1:1), one LO:HI per input separated by commas (0:1,0:1,-1:1,...), or a file "
               "(.json, .npy, .csv, .npz); it replaces the domain the point file or the model card gives")

LABELS_HELP = ("the true label of each point (.npy, .csv, .json or .npz; one integer per point, from 0 to the "
               "number of outputs - 1); replaces the labels the points file carries")


def add_domain_argument(parser) -> None:
    parser.add_argument("--domain", metavar="LO:HI|FILE", help=DOMAIN_HELP)


def choose_domain(option: str | None, size: int, *carried):
    """The domain of a query and where it comes from, in words: ``--domain`` (``option``) when given,
    else the first ``(domain, words)`` of ``carried`` that has a domain, else ``(None, "")``."""
    from reluverify.properties.domains import read_domain

    if option is not None:
        return read_domain(option, size), f"--domain {option}"
    for domain, words in carried:
        if domain is not None:
            return domain, words
    return None, ""


def check_points_in(points, domain, file: str) -> None:
    """A one-line error naming the first point of ``file`` outside ``domain`` (and its input)."""
    from reluverify.properties.domains import check_in_domain

    if domain is None:
        return
    for index, point in enumerate(points):
        check_in_domain(point, domain, what=file if len(points) == 1 else f"{file}: point {index}")


def note_no_domain(args) -> None:
    """Note that the queries run without a domain: ``args.warnings`` keeps it for ``--json`` and
    :func:`print_warnings`."""
    warnings = getattr(args, "warnings", None) or []
    if NO_DOMAIN not in warnings:
        args.warnings = [*warnings, NO_DOMAIN]


def print_warnings(args) -> None:
    """Each noted warning once on stderr, after the command's results (so an error that ends the command
    earlier stays its only line)."""
    for warning in getattr(args, "warnings", None) or []:
        print(f"reluverify: warning: {warning}", file=sys.stderr, flush=True)
