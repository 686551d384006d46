"""Options and output shared by the verification commands (not a subcommand)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

VIOLATIONS = ("not robust", "tie", "sat")
"""Verdicts that make ``--fail-on-violation`` exit 1: a refuted robustness property (a tie at the point
included: its label is not unique), a satisfiable VNN-LIB specification."""
UNDECIDED = ("unknown", "timeout", "error")
"""Verdicts that make ``--fail-on-unknown`` exit 1."""


def add_memory_argument(parser) -> None:
    """``--max-memory SIZE`` (see :mod:`reluverify.memory`); the command line sets it before the handler runs."""
    import argparse

    from reluverify.memory import parse_size

    def size(text: str) -> str:
        try:
            parse_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    parser.add_argument("--max-memory", metavar="SIZE", type=size,
                        help="memory limit per process, e.g. 512M, 1G or 2.5G: a query that needs more ends with "
                        "one error line naming the limit (default: no limit)")


def add_checkpoint_arguments(parser) -> None:
    """``--checkpoint FILE`` and ``--checkpoint-every SECONDS``, read by :func:`with_checkpoint`."""
    parser.add_argument("--checkpoint", metavar="FILE",
                        help="keep the search's open work in FILE (.npz) as it goes, and resume from it: a rerun of "
                        "the same command after a kill or a timeout goes on where the last save left off (a "
                        "search it finished is answered at once); an entry of another query in FILE is not used")
    parser.add_argument("--checkpoint-every", type=seconds(), metavar="SECONDS",
                        help="seconds between two saves of the checkpoint (default 60)")


def with_checkpoint(options, args):
    """``options`` with the checkpoint of ``--checkpoint`` / ``--checkpoint-every``, once the file is known to
    be absent (a new checkpoint) or readable; one error line when the flags do not go together."""
    from reluverify.errors import SpecError

    path, every = getattr(args, "checkpoint", None), getattr(args, "checkpoint_every", None)
    if path is None:
        if every is not None:
            raise SpecError("--checkpoint-every needs --checkpoint FILE")
        return options
    if getattr(args, "proof", None):
        raise SpecError("--checkpoint cannot be kept with --proof (proof trees are not saved in a checkpoint)")
    from reluverify.solver.checkpoint import check

    check(path)
    return options.with_checkpoint(path, every)


def seconds(zero: bool = False, unit: str = " of seconds"):
    """An argparse ``type`` for a time (``--timeout``, ``--probe-timeout``, ...; ``unit=""`` for a factor): a
    finite number > 0 (>= 0 with ``zero``); anything else -- a negative number, 0, ``nan``, ``inf`` -- is a one-line argument error
    (argparse names the option), since no budget could then be met or it would never end."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:30]!r} is not a number") from None
        if not np.isfinite(value) or value < 0 or (value == 0 and not zero):
            bound = ">= 0" if zero else "> 0"
            raise argparse.ArgumentTypeError(f"must be a finite number{unit} {bound}, got {text[:30]!r}")
        return value

    parse.__name__ = "seconds"  # argparse names the type in its own messages
    return parse


def parse_numbers(values, flag: str) -> list[float]:
    """The numbers of ``--delta 0.01 0.03``, ``--delta 0.01,0.03`` or both mixed, in order (blank parts
    between commas skipped); a part that is not a number is an :class:`argparse.ArgumentTypeError` naming
    it. The range (finite, >= 0) is checked where the value is used, by the property or the sweep's plan."""
    out = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(float(part))
            except ValueError:
                raise argparse.ArgumentTypeError(f"{part[:30]!r} is not a number") from None
    if not out:
        raise argparse.ArgumentTypeError(f"{flag} needs at least one number")
    return out


class _Numbers(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        try:
            setattr(namespace, self.dest, parse_numbers(values, option_string or self.dest))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def add_numbers_argument(parser, flag: str, help: str, metavar: str, required: bool = False) -> None:
    """``flag`` takes one number or several, as separate words or comma-separated (:func:`parse_numbers`),
    the same in every command; the parsed value is a list of floats (None when the flag is absent)."""
    parser.add_argument(flag, nargs="+", action=_Numbers, required=required, metavar=metavar, help=help)


def add_exit_status_arguments(parser, violation: str, undecided: str = "unknown or timeout") -> None:
    """``--fail-on-violation`` and ``--fail-on-unknown``, read by :func:`verdict_status`."""
    parser.add_argument("--fail-on-violation", action="store_true",
                        help=f"exit status 1 when {violation}; unknown and timeout still exit 0 (see "
                        "--fail-on-unknown). Without it a reached verdict exits 0, whatever it is")
    parser.add_argument("--fail-on-unknown", action="store_true",
                        help=f"exit status 1 when an answer is {undecided}")


def verdict_status(verdicts, args, violated: bool = False) -> int:
    """The exit status for the verdicts a command reached: 1 when ``--fail-on-violation`` is given and one
    of them is a violation (:data:`VIOLATIONS`, or ``violated``: a violation the verdicts do not show, such
    as a misclassified point), or when ``--fail-on-unknown`` is given and one is undecided
    (:data:`UNDECIDED`); else 0."""
    found = set(verdicts)
    if getattr(args, "fail_on_violation", False) and (violated or found & set(VIOLATIONS)):
        return 1
    if getattr(args, "fail_on_unknown", False) and found & set(UNDECIDED):
        return 1
    return 0


def print_summary(query, result, check=None, file=None) -> None:
    out = file or sys.stdout
    print(result.verdict, file=out)
    s = result.statistics
    print(
        f"time {result.seconds:.2f}s  boxes {s.boxes}  relu splits {s.relu_splits}  pivots {s.pivots}  "
        f"repairs {s.repairs}  tightened bounds {s.tightened_bounds}  max depth {s.max_depth}",
        file=out,
    )
    if result.reason:
        print(f"reason: {result.reason}", file=out)
    cex = result.counterexample
    if cex is not None:
        disjunct = query.disjuncts[cex.disjunct]
        print(f"violated: {disjunct.label} (largest row slack {cex.slack:.3g} on onnxruntime outputs)", file=out)
        with np.printoptions(precision=6, suppress=True, linewidth=120, threshold=20):
            print(f"input:  {cex.inputs}", file=out)
            print(f"output: {cex.outputs}", file=out)
    if check is not None:
        line = f"z3 cross-check: {check['z3_verdict']} in {check['z3_seconds']:.2f}s"
        if check["disagreement"]:
            line += "  DISAGREEMENT: the two procedures contradict each other"
        print(line, file=out)


def run_cross_check(query, result, timeout: float) -> dict:
    """Decide ``query`` with the independent z3 encoding; a disagreement is sat against unsat."""
    from reluverify.solver.z3_encoding import decide_with_z3

    z3 = decide_with_z3(query, timeout_s=timeout)
    decided = {"sat", "unsat"}
    disagreement = result.verdict in decided and z3.verdict in decided and result.verdict != z3.verdict
    if disagreement:
        print(
            f"reluverify: DISAGREEMENT: reluverify says {result.verdict}, z3 says {z3.verdict}",
            file=sys.stderr,
        )
    return {"z3_verdict": z3.verdict, "z3_seconds": z3.seconds, "disagreement": disagreement}


class ProgressLine:
    """The live progress line: one line on stderr, rewritten in place, shown only when stderr is a
    terminal and only from the first second on; nothing of it reaches stdout. Use as the observer
    of :func:`reluverify.solver.progress.observe` and call :meth:`close` before printing results."""

    def __init__(self, timeout: float | None = None, stream=None, enabled: bool = True, delay: float = 1.0) -> None:
        import time

        self.stream = stream or sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.timeout = timeout
        self.started = time.monotonic()
        self.delay = delay
        self.width = 0

    def __call__(self, progress) -> None:
        import time

        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        if elapsed < self.delay:
            return
        budget = f"/{self.timeout:.0f}" if self.timeout else ""
        unit = "boxes" if progress.strategy in ("input-split", "max-eps") else "sub-problems"
        text = (f"{elapsed:5.1f}{budget} s  {progress.strategy}  {unit} done {progress.done}, open {progress.open}  "
                f"{'settled' if progress.bracket else 'proven'} {100.0 * progress.proven:5.1f}%")
        if progress.bracket is not None:
            text += f"  in [{progress.bracket[0]:.4g}, {progress.bracket[1]:.4g}]"
        elif progress.best_bound is not None:
            text += f"  best bound {progress.best_bound:.4g}"
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = max(self.width, len(text))

    def close(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def add_quiet_argument(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no live progress line on stderr")


def add_backend_arguments(parser) -> None:
    """``--backend local|ray`` and ``--address``: where one query's shared search runs with ``--jobs N``."""
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="with --jobs N: where one query's search runs: local worker processes (default) or N "
                        "workers on a Ray cluster, any number of nodes (pip install \"reluverify[distributed]\")")
    parser.add_argument("--address", metavar="ADDR",
                        help="--backend ray: the cluster's address ('auto': the one 'ray start' runs here; HOST:PORT; "
                        "default: RAY_ADDRESS, else a fresh local Ray instance)")


def with_backend(options, args, jobs_flag: str = "--jobs"):
    """``options`` with the command's ``--backend`` and ``--address`` (checked: one line on misuse);
    ``jobs_flag`` names the option that gives one search's workers."""
    from dataclasses import replace

    from reluverify.errors import SpecError

    if args.address and args.backend != "ray":
        raise SpecError("--address applies to --backend ray only")
    if args.backend == "ray" and options.parallel.jobs < 2:
        raise SpecError(f"--backend ray spreads one search over {jobs_flag} N workers: give N >= 2")
    if args.backend == "ray" and getattr(args, "proof", None):
        raise SpecError("--proof runs the search in one process: drop --backend ray")
    return replace(options, parallel=replace(options.parallel, backend=args.backend, address=args.address))
