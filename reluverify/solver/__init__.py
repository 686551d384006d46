"""The decision procedure: Reluplex with bound tightening, input splitting and falsification.

``solve(query, options)`` is the entry point; see :mod:`reluverify.solver.decide`. Names are
imported lazily so that, e.g., the independent z3 encoding loads without the main solver.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "solve": "reluverify.solver.decide",
    "SolverOptions": "reluverify.solver.options",
    "Result": "reluverify.solver.result",
    "Counterexample": "reluverify.solver.result",
    "Statistics": "reluverify.solver.result",
    "SAT": "reluverify.solver.result",
    "UNSAT": "reluverify.solver.result",
    "UNKNOWN": "reluverify.solver.result",
    "TIMEOUT": "reluverify.solver.result",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reluverify.solver' has no attribute {name!r}")
