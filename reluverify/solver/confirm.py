"""Confirm a counterexample candidate with onnxruntime before anything is reported ``sat``.

The candidate is first pulled inside the query's box (and the disjunct's box), then each
network copy is run by onnxruntime on the original ONNX file (or on an ONNX export of an
in-memory network), and the disjuncts are checked on those outputs with the stated
tolerance. A candidate that fails is rejected: it is never reported.
"""

from __future__ import annotations

import numpy as np

from reluverify.onnx_runtime import reference_for
from reluverify.query import Query
from reluverify.solver.result import Counterexample

INPUT_TOLERANCE = 1e-9
"""Relative slack for the query's input constraints (e.g. an L1 ball): the input side is
checked in float64 on reluverify's own arithmetic, so it is held much tighter than outputs."""


def reference_outputs(query: Query, inputs: np.ndarray) -> np.ndarray:
    parts, offset = [], 0
    for network in query.networks:
        x = inputs[offset : offset + network.input_size]
        parts.append(np.atleast_1d(reference_for(network)(x)))
        offset += network.input_size
    return np.concatenate(parts)


def confirm(query: Query, inputs: np.ndarray, tolerance: float, disjunct_hint: int | None = None) -> Counterexample | None:
    """A confirmed :class:`Counterexample` for ``inputs``, or None.

    A disjunct holds when each of its rows satisfies ``row @ [v; y] - rhs <= tolerance *
    (|row| @ |[v; y]| + |rhs|)`` on onnxruntime's outputs ``y``, and again on the outputs of
    the network evaluated in float64 (the network ``unsat`` is proven for): ``tolerance`` is
    relative to the size of the row's terms, the scale of float32 round-off. There is no absolute
    floor: a specification may draw its lines at 1e-6 (``Y_0 >= 1e-6``: "strictly positive"), and an
    output of exactly 0 must not pass for one that crosses it.
    """
    v = np.asarray(inputs, dtype=np.float64).reshape(-1)
    if v.shape[0] != query.num_inputs or not np.all(np.isfinite(v)):
        return None
    order = list(range(len(query.disjuncts)))
    if disjunct_hint is not None:
        order.remove(disjunct_hint)
        order.insert(0, disjunct_hint)
    for index in order:
        disjunct = query.disjuncts[index]
        if disjunct.is_empty_box():
            continue
        point = np.clip(v, disjunct.lower, disjunct.upper)  # disjunct boxes lie inside the query box
        rows = query.input_constraints
        if rows.num_rows:
            scale = 1.0 + np.abs(rows.rhs).max() + np.abs(point).max()
            if not rows.holds(point, INPUT_TOLERANCE * scale):
                continue
        y_ref = reference_outputs(query, point)
        if not np.all(np.isfinite(y_ref)):
            continue
        constraints = disjunct.constraints
        residual = constraints.residuals(np.concatenate([point, y_ref]))
        slack = float(residual.max()) if residual.size else -np.inf
        if not _holds(constraints, point, y_ref, tolerance):
            continue
        # the network in float64 must agree: onnxruntime's float32 (with fused multiply-adds) can miss
        # the real value by far more than its own round-off where large terms cancel, and unsat is
        # proven for the float64 network, so a sat it alone confirms could contradict a true unsat
        y_ir = query.outputs(point)
        if residual.size and not (np.all(np.isfinite(y_ir)) and _holds(constraints, point, y_ir, tolerance)):
            continue
        return Counterexample(
            inputs=point,
            outputs=y_ref,
            ir_outputs=y_ir,
            disjunct=index,
            slack=slack,
            tolerance=tolerance,
        )
    return None


def _holds(constraints, point: np.ndarray, outputs: np.ndarray, tolerance: float) -> bool:
    """Every row within ``tolerance`` of its right-hand side at ``[point; outputs]``, relative to the size
    of the row's terms (float32 round-off grows with them)."""
    full = np.concatenate([point, outputs])
    scale = np.abs(constraints.matrix) @ np.abs(full) + np.abs(constraints.rhs)
    return bool(np.all(constraints.residuals(full) <= tolerance * scale))
