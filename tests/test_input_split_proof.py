"""A recorded input-splitting proof counts every box it refutes: also linear boxes that only the triangle
LP refutes (they are not split, so their share of the search box is proven where the LP refutes them)."""

from __future__ import annotations

import numpy as np

from random_queries import chain_to_onnx, random_chain
from reluverify.onnx_import import load_onnx
from reluverify.proof_check import check_files, sha256
from reluverify.query import Disjunct, LinearConstraints, Query
from reluverify.solver import SolverOptions, solve
from reluverify.solver.input_split.problem import Problem
from reluverify.vnnlib import load_query
from reluverify.vnnlib_export import write_vnnlib


def test_linear_boxes_refuted_by_the_lp_alone_are_proven(tmp_path, monkeypatch):
    def no_weighted_rows(self, lo, hi, alive, layer_bounds, slopes=True, warm=None):
        # sound (a bound may always fail to refute): conjunctions are left to the triangle LP
        return np.zeros(alive.shape, dtype=bool), [None] * alive.shape[1], [None] * alive.shape[1]

    monkeypatch.setattr(Problem, "optimised_refutations", no_weighted_rows)
    checked_lp = 0
    for seed in range(12):
        rng = np.random.default_rng(70 + seed)
        chain = random_chain(rng, [1, 4, 4, 1])  # one input: ReLU boundaries are points, boxes turn linear
        lower, upper = np.array([-1.0]), np.array([1.0])
        y = chain.evaluate(np.linspace(-1.0, 1.0, 201)[:, None])[:, 0]
        if np.ptp(y) < 0.1:
            continue
        centre, gap = float(np.median(y)), 0.01 * float(np.ptp(y))
        # y <= c and y >= c + gap: near y = c no single row is refuted, the pair is everywhere
        rows = LinearConstraints(np.array([[0.0, 1.0], [0.0, -1.0]]), np.array([centre, -centre - gap]))
        query = Query((chain.to_network(),), lower, upper, (Disjunct(lower, upper, rows, "pair"),),
                      LinearConstraints(np.zeros((0, 1)), np.zeros(0)))
        network = chain_to_onnx(chain, tmp_path / f"net{seed}.onnx")
        spec = write_vnnlib(query, tmp_path / f"spec{seed}.vnnlib")
        result = solve(load_query(load_onnx(network), spec),
                       SolverOptions(proof=True, timeout=30, strategy="input-split", falsify=False))
        assert result.verdict == "unsat", result.reason
        checked_lp += result.statistics.lp_calls > 0
        result.certificate.write(tmp_path / f"proof{seed}.npz", sha256(network), sha256(spec))
        checked = check_files(network, spec, tmp_path / f"proof{seed}.npz")
        assert checked.valid, checked.reason
    assert checked_lp >= 3
