"""The solver against z3 on box queries around random points of a small imported network."""

from __future__ import annotations

import numpy as np

from reluverify.query import box_query
from reluverify.solver import SolverOptions, solve
from reluverify.solver.z3_encoding import decide_with_z3


def verdicts_agree_with_z3(network, rng, radius: float, rounds: int = 3, samples: int = 4000) -> list[str]:
    """For ``rounds`` boxes and two thresholds each (one met by one of ``samples`` samples, one below every
    sample), the relu-split solver's verdict on ``c . y < threshold`` equals z3's wherever z3 decides; the
    verdicts."""
    verdicts = []
    n = network.input_size
    for k in range(rounds):
        centre = rng.uniform(-1, 1, size=n)
        lower, upper = centre - radius, centre + radius
        c = np.zeros(network.output_size)
        c[0], c[-1] = (1.0, -1.0) if k % 2 == 0 else (-1.0, 1.0)
        values = network.evaluate(rng.uniform(lower, upper, size=(samples, n))) @ c
        spread = float(np.ptp(values)) + 0.1
        for threshold in (float(values.min()) + 1e-3, float(values.min()) - 0.5 * spread):
            query = box_query(network, lower, upper, [[(c, threshold)]])
            ours = solve(query, SolverOptions(timeout=20, strategy="relu-split"))
            z3 = decide_with_z3(query, timeout_s=20)
            if z3.verdict in ("sat", "unsat"):
                assert ours.verdict == z3.verdict, (k, threshold, ours.verdict, z3.verdict)
                verdicts.append(ours.verdict)
    return verdicts
