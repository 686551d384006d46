"""Counterexample export: JSON for people and tools, ``.npz`` for numpy, and the VNN-COMP text format.

:func:`write_counterexample` ``(result, path)`` writes two files:

* ``path`` -- JSON (``format: "reluverify-counterexample"``, ``version: 1``) with the property and
  its parameters, the verdict, the network (path and sha256 of the ONNX file; of the float64
  weights for an in-memory network), ``inputs`` (the counterexample ``x``; for global robustness
  ``x1``), ``outputs`` (onnxruntime) and ``ir_outputs`` (reluverify's float64 IR), ``point`` (``x0``;
  for global robustness ``x2``) with its outputs, ``distance`` and ``norm``, ``violated`` (the
  disjunct's index and its description), ``subdomain`` (global robustness with partitions),
  ``query_inputs`` (all solver variables, auxiliaries included) and ``slack``;
* the same arrays as ``.npz`` beside it: ``path`` with its ``.json`` suffix replaced by ``.npz``, or
  ``path + ".npz"`` when ``path`` does not end in ``.json``.

:func:`vnncomp_text` gives the VNN-COMP result file (``sat`` with ``((X_0 v) ... (Y_0 v) ...)``
over the query's network inputs and outputs -- the file's outputs by onnxruntime where a final
Softmax was dropped -- or the bare verdict).
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np

FORMAT = "reluverify-counterexample"
VERSION = 1


def npz_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    root, suffix = os.path.splitext(path)
    return root + ".npz" if suffix.lower() == ".json" else path + ".npz"


def counterexample_payload(result) -> dict:
    """The JSON object for a result with a counterexample (a PropertyResult or MaxDeltaResult)."""
    cex = result.counterexample
    if cex is None:
        raise ValueError("the result has no counterexample")
    data = cex.to_dict()
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": result.to_dict()["kind"],
        "verdict": result.verdict,
        "description": getattr(result, "description", ""),
        "network": result.network,
        "parameters": {k: v for k, v in result.parameters.items() if k not in ("point", "scores")},
        "label": getattr(result, "label", None),
        "violated": {"disjunct": data.pop("disjunct"), "description": data.pop("violated")},
    }
    if hasattr(result, "refuted"):
        payload["certified_delta"] = result.certified
        payload["refuted_delta"] = result.refuted
    payload.update(data)
    return payload


def dumps_compact(payload: dict) -> str:
    """JSON with one top-level key per line (arrays stay on their line)."""
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in payload.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_counterexample(result, path: str | os.PathLike) -> tuple[str, str]:
    """Write the counterexample of ``result`` as JSON at ``path`` and ``.npz`` beside it; both paths."""
    payload = counterexample_payload(result)
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w") as handle:
        handle.write(dumps_compact(payload))
    cex = result.counterexample
    arrays = {
        "inputs": cex.inputs,
        "outputs": cex.outputs,
        "ir_outputs": cex.ir_outputs,
        "point": cex.point,
        "point_outputs": cex.point_outputs,
        "point_ir_outputs": cex.point_ir_outputs,
        "query_inputs": cex.query_inputs,
        "distance": np.float64(cex.distance),
        "disjunct": np.int64(cex.disjunct),
    }
    target = npz_path(path)
    np.savez(target, **arrays)
    return path, target


def vnncomp_text(result) -> str:
    """The VNN-COMP result file for ``result``: network inputs ``X`` and outputs ``Y`` of the query."""
    from reluverify.vnncomp import format_result

    verdict = result.solver_verdict or "unknown"
    cex = result.counterexample
    if verdict != "sat" or cex is None:
        return format_result(SimpleNamespace(verdict=verdict, counterexample=None))
    if result.kind == "global-robustness":
        inputs = np.concatenate([cex.inputs, cex.point])
        outputs = np.concatenate([cex.outputs, cex.point_outputs])
    else:
        inputs, outputs = cex.inputs, cex.outputs
    if result.network.get("final_softmax") and result.network.get("path"):
        from reluverify.onnx_runtime import reference_model

        outputs = reference_model(result.network["path"])(inputs)  # the file's outputs, not the logits
    return format_result(SimpleNamespace(verdict="sat", counterexample=SimpleNamespace(inputs=inputs, outputs=outputs)))
