"""``reluverify max-eps NETWORK.onnx --global --delta D [D ...]``: the threshold eps*(delta) of Def. 2, bracketed.

    reluverify max-eps NETWORK.onnx [--global] [--domain LO:HI|FILE] --delta D [D ...] [--norm inf|1]
                       [--gap G] [--timeout S] [--json] [--csv FILE] [--plot FILE.png]

For each delta, the search of :mod:`reluverify.properties.max_eps` brackets eps*(delta), the largest
change of any score between two points of the domain at distance at most delta: ``upper`` is
certified (the network is (delta, eps)-globally robust for every eps above it), ``lower`` is the
change of a pair onnxruntime evaluated (Def. 2 fails for every eps up to it). Each delta stops at
the relative ``--gap`` (default 1%) or after ``--timeout`` seconds (per delta), and the line says which.
The domain is ``--domain``, else the model card's (``NAME.json`` beside the network); without either,
a one-line error. A live line on stderr shows the bracket and the share of the domain settled.
``--csv FILE`` writes one row per delta, ``--plot FILE.png`` draws eps*(delta) with its bracket.
"""

from __future__ import annotations

FIELDS = ("delta", "lower", "upper", "gap", "status", "settled", "boxes", "seconds")


def register(subparsers) -> None:
    from reluverify.cli.common import add_memory_argument, add_numbers_argument, seconds
    from reluverify.cli.inputs import add_domain_argument

    parser = subparsers.add_parser(
        "max-eps",
        help="the threshold eps*(delta) of (delta, eps)-global robustness (Def. 2), as a certified bracket",
        description="Bracket eps*(delta): the largest change of any score between two points of the domain at "
        "distance at most delta. The upper end is certified (the network is (delta, eps)-globally robust for "
        "every larger eps), the lower end is witnessed by a pair that onnxruntime evaluated. Each delta stops "
        "at --gap or after --timeout seconds.",
    )
    parser.add_argument("network", help="ONNX file (affine layers and ReLUs)")
    parser.add_argument("--global", dest="global_", action="store_true",
                        help="pairs anywhere in the domain (Def. 2; the default and the only kind)")
    add_domain_argument(parser)
    add_numbers_argument(parser, "--delta", required=True, metavar="D",
                         help="distance(s) between the two points (several values, or comma-separated)")
    parser.add_argument("--norm", choices=("inf", "1"), default="inf", help="distance: L-infinity (default) or L1")
    parser.add_argument("--gap", type=float, default=0.01,
                        help="stop a delta when (upper - lower) / lower is at most this (default 0.01)")
    parser.add_argument("--timeout", type=seconds(), default=600.0, help="seconds per delta (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pair attack's random starts (default 0)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--csv", metavar="FILE", help="write one row per delta (delta, lower, upper, gap, ...)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw eps*(delta) with its bracket")
    parser.add_argument("--quiet", action="store_true", help="no live progress line on stderr")
    add_memory_argument(parser)
    parser.set_defaults(handler=run)


def _domain(args, size: int):
    from reluverify.cli.inputs import choose_domain
    from reluverify.errors import SpecError
    from reluverify.sweep.evaluation import card_path, from_card

    card = None if args.domain is not None else from_card(args.network, size)
    carried = (None, "") if card is None else (card.domain, f"the model card {card_path(args.network)}")
    domain, words = choose_domain(args.domain, size, carried)
    if domain is None:
        raise SpecError("max-eps needs a domain: give --domain LO:HI or --domain FILE (the network has no model "
                        "card naming one)")
    return domain, words


def _check(args) -> None:
    import math
    import os

    from reluverify.errors import SpecError

    if not (args.gap >= 0 and math.isfinite(args.gap)):
        raise SpecError(f"--gap must be a number >= 0, got {args.gap}")
    for option in ("csv", "plot"):
        path = getattr(args, option)
        if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise SpecError(f"--{option} {path}: the folder {os.path.dirname(os.path.abspath(path))} does not exist")


def run(args) -> int:
    import json

    from reluverify.cli.verify import live_progress
    from reluverify.onnx_import import load_onnx
    from reluverify.properties.max_eps import max_eps

    _check(args)
    network = load_onnx(args.network)
    domain, words = _domain(args, network.input_size)
    with live_progress(args):
        result = max_eps(network, domain, args.delta, args.norm, args.gap, args.timeout, args.seed)
    files = []
    if args.csv:
        write_csv(result, args.csv)
        files.append(args.csv)
    if args.plot:
        plot_brackets(result, args.plot, title=f"{args.network}: eps*(delta) on {words}")
        files.append(args.plot)
    if args.json:
        print(json.dumps({**result.to_dict(), "domain_source": words, "files": files}, indent=2))
        return 0
    print(f"network   {args.network}")
    print(f"domain    {words}")
    print(result.summary())
    best = max(result.brackets, key=lambda b: b.lower)
    if best.pair is not None:
        pair = best.pair
        print(f"pair      delta {best.delta:g}: output {pair['output']} changes by {pair['change']:.6g} between "
              f"x1 = {_vector(pair['x1'])} and x2 = {_vector(pair['x2'])} (onnxruntime)")
    if files:
        print(f"wrote     {', '.join(files)}")
    return 0


def _vector(values) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values[:8]) + (", ...]" if len(values) > 8 else "]")


def write_csv(result, path: str) -> None:
    """One row per delta: ``FIELDS``."""
    import csv

    from reluverify.errors import SpecError

    try:
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            for row in result.csv_rows():
                writer.writerow({key: row[key] for key in FIELDS})
    except OSError as exc:
        raise SpecError(f"--csv {path}: cannot write it: {exc.strerror or exc}") from None


def plot_brackets(result, path: str, title: str = "") -> None:
    """eps*(delta): the certified upper end and the witnessed lower end per delta, the bracket shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reluverify.errors import SpecError

    brackets = sorted(result.brackets, key=lambda b: b.delta)
    deltas = [b.delta for b in brackets]
    lower = [b.lower for b in brackets]
    upper = [b.upper for b in brackets]
    figure, axes = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    axes.fill_between(deltas, lower, upper, color="#1f77b4", alpha=0.2, label="eps* lies in here")
    axes.plot(deltas, upper, "v-", color="#d62728", label="upper (certified: robust above)")
    axes.plot(deltas, lower, "^-", color="#2ca02c", label="lower (a pair onnxruntime confirmed)")
    if len(deltas) > 1 and min(deltas) > 0:
        axes.set_xscale("log")
    if min(lower) > 0 and max(upper) / min(lower) > 50:
        axes.set_yscale("log")
    axes.set_xlabel(f"delta ({'L-inf' if result.norm == 'inf' else 'L1'})")
    axes.set_ylabel("largest score change eps*(delta)")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    try:
        figure.savefig(path, dpi=120)
    except OSError as exc:
        raise SpecError(f"--plot {path}: cannot write the picture: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)
