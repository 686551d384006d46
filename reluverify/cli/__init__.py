"""The ``reluverify`` command line.

Each subcommand lives in its own module under :mod:`reluverify.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` (a function
``args -> int`` returning the exit status). Modules import heavy dependencies
(torch, ray, the solver) inside their handlers so that ``--help`` stays instant.

Exit statuses: 0 success (for verification commands: a verdict was reached and
reported), 1 a certificate that ``check-proof`` rejects, a wrong answer in ``bench``, or -- asked
for with ``--fail-on-violation`` / ``--fail-on-unknown`` (``verify``, ``vnnlib``, ``sweep``; see
:func:`reluverify.cli.common.verdict_status`) -- a violation or an undecided answer, 2 bad input
(an argument error included) or not enough memory (one line on stderr), 3 an internal error (one
line on stderr; ``--debug`` shows the traceback), 4 a ``vnnlib --cross-check`` disagreement, 130
interrupted.

An argument error (a missing or unknown option, a value argparse refuses) is one line
``reluverify: error: MESSAGE (see reluverify COMMAND --help)``, not the usage block
(:class:`OneLineParser`); ``--help`` prints the usage as usual.

The long-running commands take ``--max-memory SIZE`` (:mod:`reluverify.memory`): the limit is
set before the handler runs, and an allocation beyond it -- here or in a worker process -- ends
with one line naming the limit, never with the kernel's OOM killer.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from reluverify.version import __version__
from reluverify.errors import ReluverifyError
from reluverify.memory import current_limit, is_allocation_failure, keep_freed_memory, out_of_memory

# Order is the order shown by --help.
SUBCOMMAND_MODULES = (
    "info",
    "verify",
    "max_delta",
    "max_eps",
    "vnnlib",
    "check_proof",
    "sweep",
    "report",
    "bench",
    "train",
)


class ArgumentsError(ReluverifyError):
    """An argument error, raised by :meth:`OneLineParser.error` and printed as one line by :func:`main`."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (:class:`ArgumentsError`) instead of the usage block
    and ``SystemExit``; the subcommands' parsers are of this class too (argparse makes them so)."""

    def error(self, message: str):
        raise ArgumentsError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="reluverify",
        description="Prove or refute robustness properties of ReLU neural networks given as ONNX files.",
    )
    parser.add_argument("--version", action="version", version=f"reluverify {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        module = importlib.import_module(f"reluverify.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:  # named by the subcommand's parser, so the hint points at its own --help
            command = getattr(args, "command", None)
            prog = f"{parser.prog} {command.replace('_', '-')}" if command else parser.prog
            raise ArgumentsError(f"unrecognized arguments: {' '.join(extras)} (see {prog} --help)")
    except ArgumentsError as exc:
        print(f"reluverify: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    keep_freed_memory()  # the bound passes' temporaries reuse heap instead of fresh mappings
    try:
        if getattr(args, "max_memory", None) is not None:
            from reluverify.memory import set_limit

            set_limit(args.max_memory)
        return int(args.handler(args) or 0)
    except ReluverifyError as exc:
        print(f"reluverify: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        print(f"reluverify: error: {out_of_memory()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reluverify: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # an internal bug: one line unless --debug
        if current_limit() is not None and is_allocation_failure(str(exc)):  # a native library out of memory
            print(f"reluverify: error: {out_of_memory()}", file=sys.stderr)
            return 2
        if args.debug:
            raise
        first_line = (str(exc).splitlines() or [""])[0]
        print(
            f"reluverify: internal error: {type(exc).__name__}: {first_line} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 3
