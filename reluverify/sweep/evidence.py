"""A sweep row back as a :class:`~reluverify.properties.result.PropertyResult`, to write its evidence.

A row keeps the counterexample as plain data (:meth:`PropertyCounterexample.to_dict`); rebuilt
here with the property the job checked (:func:`reluverify.sweep.worker.job_property`, evaluated
on the network in this process), it goes through the same writer as ``reluverify verify
--cex-out`` (:func:`reluverify.properties.export.write_counterexample`): the same JSON and
``.npz``, whatever backend found it.
"""

from __future__ import annotations

import os

from reluverify.properties.common import network_info
from reluverify.properties.result import PropertyCounterexample, PropertyResult
from reluverify.sweep.worker import job_property


def row_result(row: dict, network) -> PropertyResult:
    """The result a row records, on ``network`` (the row's network, already loaded)."""
    prop = job_property(network, row)
    cex = row.get("counterexample")
    return PropertyResult(
        kind=row["kind"],
        verdict=row["verdict"],
        description=prop.describe(),
        parameters=prop.parameters(),
        solver_verdict=row.get("solver_verdict") or "",
        label=row.get("label"),
        counterexample=None if cex is None else PropertyCounterexample.from_dict(cex),
        statistics=row.get("statistics") or {},
        seconds=float(row["seconds"]),
        reason=row.get("reason") or "",
        queries=1,
        network=network_info(network),
    )


def counterexample_name(row: dict) -> str:
    """``point3_delta0.05.json`` (``..._eps0.1`` for Def. 3): one file per refuted query."""
    name = f"point{int(row['point_index'])}_delta{float(row['delta']):g}"
    if row.get("epsilon") is not None:
        name += f"_eps{float(row['epsilon']):g}"
    return name + ".json"


def write_row_counterexample(row: dict, network, folder: str | os.PathLike) -> tuple[str, str]:
    """Write the counterexample of ``row`` into ``folder`` (JSON and .npz); both paths."""
    from reluverify.properties.export import write_counterexample

    return write_counterexample(row_result(row, network), os.path.join(os.fspath(folder), counterexample_name(row)))
