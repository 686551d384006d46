"""reluverify: prove or refute robustness properties of ReLU networks.

Data flows one way: network file -> :class:`~reluverify.network.Network` ->
:class:`~reluverify.query.Query` (a property compiled) -> solver -> verdict.

``from reluverify import Verifier`` gives the Python API (:mod:`reluverify.api`); it is
imported on first use, so importing the package stays light.
"""

from reluverify.errors import ReluverifyError
from reluverify.version import __version__

__all__ = ["ReluverifyError", "Verifier", "__version__"]


def __getattr__(name: str):
    if name == "Verifier":
        from reluverify.api import Verifier

        return Verifier
    raise AttributeError(f"module 'reluverify' has no attribute {name!r}")
