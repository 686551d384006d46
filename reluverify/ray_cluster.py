"""Joining a Ray cluster, one way for every command that uses one (a sweep's queries, one query's
sub-problems): ``ray`` is imported only here and only when asked for
(``pip install "reluverify[distributed]"``).

:func:`connect` uses an already initialised Ray as it is; otherwise it joins the cluster at
``address`` (``auto``: the one ``ray start`` runs on this machine; ``HOST:PORT``: the one whose
head ran ``ray start --head --port=PORT`` on HOST), else ``RAY_ADDRESS``, else starts a fresh local
instance (never someone else's cluster by accident). A cluster with token authentication is
reached with ``RAY_AUTH_MODE=token`` and its token (Ray's own settings, read by ``ray.init``);
every failure to connect is one :class:`BackendError` line, an authentication failure naming its fix.
"""

from __future__ import annotations

import os

from reluverify.errors import ReluverifyError


class BackendError(ReluverifyError):
    """A backend cannot be used (Ray not installed, no cluster at the address)."""


AUTH_FIX_NO_MODE = (
    "the cluster requires token authentication: set RAY_AUTH_MODE=token and give the cluster's token in "
    "~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN ('ray get-auth-token' on the head node prints it)"
)
AUTH_FIX_WRONG_TOKEN = (
    "the cluster refused this machine's token: copy the head node's token ('ray get-auth-token' there) to "
    "~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN"
)


def is_auth_failure(exc: BaseException) -> bool:
    """True when ``exc`` or an exception it was raised from is Ray refusing this client's token (or its absence)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(exc) or \
                "Unauthenticated" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def connection_error(exc: BaseException, address: str | None) -> BackendError:
    """The one-line error for a failed ``ray.init``; an authentication failure names its fix."""
    where = f" at {address}" if address else ""
    if is_auth_failure(exc):
        token_mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"
        return BackendError(f"cannot reach the Ray cluster{where}: {AUTH_FIX_WRONG_TOKEN if token_mode else AUTH_FIX_NO_MODE}")
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return BackendError(f"cannot start or reach a Ray cluster{where}: {first}")


def connect(address: str | None = None, cpus: int | None = None, init_options: dict | None = None):
    """``(ray, owned)``: the ``ray`` module, initialised (see the module docstring), and whether this
    call started it (the caller then shuts it down when done). A local instance started here gets
    ``cpus`` CPUs when given."""
    try:
        import ray
    except ImportError:
        raise BackendError('--backend ray needs Ray: pip install "reluverify[distributed]"') from None
    if ray.is_initialized():
        return ray, False
    options = {"include_dashboard": False, "log_to_driver": False, **(init_options or {})}
    if address:
        options["address"] = address
    elif not os.environ.get("RAY_ADDRESS") and "address" not in options:
        options["address"] = "local"  # a fresh instance, never someone else's cluster by accident
        if cpus and "num_cpus" not in options:
            options["num_cpus"] = int(cpus)
    try:
        ray.init(**options)
    except Exception as exc:  # noqa: BLE001 - ray raises many types (ConnectionError, RuntimeError, ...)
        raise connection_error(exc, address or os.environ.get("RAY_ADDRESS")) from None
    return ray, True
