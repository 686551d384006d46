"""VNN-COMP result files: ``sat`` with the counterexample as ``((X_0 v) ... (Y_0 v) ...)``, or a bare verdict."""

from __future__ import annotations

from reluverify.solver.result import SAT, Result


def format_result(result: Result) -> str:
    """The text of a VNN-COMP result file (network inputs and outputs of the counterexample)."""
    if result.verdict != SAT:
        return f"{result.verdict}\n"
    cex = result.counterexample
    lines = [f"(X_{i} {float(v)!r})" for i, v in enumerate(cex.inputs)]
    lines += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(cex.outputs)]
    body = "\n ".join(lines)
    return f"sat\n({body})\n"
