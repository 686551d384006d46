"""`reluverify verify`: filled in by its issue."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("verify", help="(not yet available)")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from reluverify.errors import ReluverifyError

    raise ReluverifyError("'verify' is not available yet in this version")
