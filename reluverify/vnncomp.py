"""VNN-COMP result files: ``sat`` with the counterexample as ``((X_0 v) ... (Y_0 v) ...)``, or a bare verdict.

:func:`format_result` writes one (``reluverify vnnlib --out``, the ``vnncomp_scripts``);
:func:`parse_result` reads one back, ours or another tool's, so results can be compared and a
``sat`` counterexample replayed: the first line is the verdict (``holds`` and ``violated``, the
2021 words, read as ``unsat`` and ``sat``), and a ``sat`` file's assignment is the pairs
``(X_i v)`` and ``(Y_j v)`` in any order and layout. A verdict that is not one of the
competition's, or a ``sat`` file whose indices are not ``0..n-1``, is a one-line SpecError.
"""

from __future__ import annotations

import re

import numpy as np

from reluverify.errors import SpecError
from reluverify.solver.result import SAT, Result

VERDICTS = ("sat", "unsat", "unknown", "timeout", "error")
ALIASES = {"holds": "unsat", "violated": "sat"}
_PAIR = re.compile(r"\(\s*([XY])_(\d+)\s+([^\s()]+)\s*\)")


def format_result(result: Result) -> str:
    """The text of a VNN-COMP result file (network inputs and outputs of the counterexample)."""
    if result.verdict != SAT:
        return f"{result.verdict}\n"
    cex = result.counterexample
    lines = [f"(X_{i} {float(v)!r})" for i, v in enumerate(cex.inputs)]
    lines += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(cex.outputs)]
    body = "\n ".join(lines)
    return f"sat\n({body})\n"


def parse_result(text: str, where: str = "result file") -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """``(verdict, x, y)`` of a result file's text; ``x`` and ``y`` only for ``sat`` (else None)."""
    stripped = text.strip()
    first = stripped.split(None, 1)[0].lower() if stripped else ""
    verdict = ALIASES.get(first, first)
    if verdict not in VERDICTS:
        raise SpecError(f"{where}: the first word {first[:30]!r} is not a verdict ({', '.join(VERDICTS)})")
    if verdict != SAT:
        return verdict, None, None
    values: dict[str, dict[int, float]] = {"X": {}, "Y": {}}
    for name, index, value in _PAIR.findall(stripped):
        try:
            values[name][int(index)] = float(value)
        except ValueError:
            raise SpecError(f"{where}: {name}_{index} is {value[:30]!r}, not a number") from None
    arrays = []
    for name in ("X", "Y"):
        found = values[name]
        if not found or sorted(found) != list(range(len(found))):
            raise SpecError(f"{where}: sat needs {name}_0 .. {name}_n-1, each once")
        arrays.append(np.array([found[i] for i in range(len(found))], dtype=np.float64))
    return SAT, arrays[0], arrays[1]
