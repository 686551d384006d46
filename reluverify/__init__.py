"""reluverify: prove or refute robustness properties of ReLU networks.

Data flows one way: network file -> :class:`~reluverify.network.Network` ->
:class:`~reluverify.query.Query` (a property compiled) -> solver -> verdict.
"""

from reluverify.errors import ReluverifyError

__version__ = "0.1.0"

__all__ = ["ReluverifyError", "__version__"]
