"""The project's error types.

Every problem caused by the user's input (a file, an option, a point) is raised as a
:class:`ReluverifyError` whose message is one line naming the problem; the CLI prints
it as ``reluverify: error: <message>`` and exits with a non-zero status, never with a
traceback. Errors that indicate a bug in reluverify itself are left as ordinary
exceptions.
"""


class ReluverifyError(Exception):
    """A user-facing error: its message is a single line that names the problem."""

    exit_code = 2


class NetworkError(ReluverifyError):
    """The network file is unreadable, malformed or uses something unsupported."""


class SpecError(ReluverifyError):
    """A specification (VNN-LIB file, point file, domain file) is malformed."""


class QueryError(ReluverifyError):
    """A query is ill-formed: inverted or missing bounds, shape mismatch, NaN."""


class MemoryLimitError(ReluverifyError):
    """The command needs more memory than its limit (``--max-memory``) or the machine allows."""
