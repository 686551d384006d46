"""Reproducers for the solver's owner: property queries the solver finds slow (run from the repository root).

    python docs/solver_reproducers.py tiny-global      # input-split stalls on 9 ReLUs per copy; relu-split: ~2 s
    python docs/solver_reproducers.py acas-global      # input-split times out; 4 sub-domains prove it in ~6 s
    python docs/solver_reproducers.py acas-global-l1   # relu-split (auxiliaries) times out; 6 sub-domains: ~27 s
    python docs/solver_reproducers.py falsify-cost     # a robust cell with 5 boxes spends ~0.3 s falsifying

Each prints the verdict and seconds per strategy. The common cause of the first three: the rows
``|x1_i - x2_i| <= delta`` of a two-copy query are only used to discard boxes. Input splitting neither
shrinks x2's box when x1's box is split (interval propagation of the input rows would) nor uses the
rows when it concretises the symbolic bounds of ``y1_l - y2_l`` (an LP over box ∩ rows instead of the
box would keep the correlation between the copies).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ACAS = REPO.parent / "shared" / "benchmarks" / "acasxu" / "ACASXU_run2a_1_1_batch_2000.onnx"


def solve_each(query, strategies, timeout):
    from reluverify.solver import SolverOptions, solve

    for strategy in strategies:
        start = time.perf_counter()
        result = solve(query, SolverOptions(timeout=timeout, strategy=strategy))
        s = result.statistics
        print(f"  {strategy:<12} {result.verdict:<8} {time.perf_counter() - start:7.2f} s   boxes {s.boxes}  "
              f"relu splits {s.relu_splits}  pivots {s.pivots}  {result.reason}")


def tiny_global(timeout):
    sys.path.insert(0, str(REPO / "tests"))
    import tempfile

    from random_queries import chain_to_onnx, random_chain
    from reluverify.onnx_import import load_onnx
    from reluverify.properties.global_robustness import GlobalRobustness
    from reluverify.properties.inputs import Domain

    chain = random_chain(np.random.default_rng(5), (2, 5, 4, 2), mantissa_bits=8)
    path = Path(tempfile.mkdtemp()) / "tiny.onnx"
    chain_to_onnx(chain, path)
    network = load_onnx(path)
    prop = GlobalRobustness(network, Domain(np.full(2, -1.0), np.full(2, 1.0)), 0.1, 0.1251407938543707)
    print("tiny-global: 2 -> 5 -> 4 -> 2 (9 ReLUs per copy), D = [-1, 1]^2, delta 0.1, eps 0.125 (z3: unsat)")
    solve_each(prop.query(), ("auto", "relu-split"), timeout)


def acas_global(timeout, norm="inf", eps=0.01):
    from reluverify.onnx_import import load_onnx
    from reluverify.properties.global_robustness import GlobalRobustness
    from reluverify.properties.inputs import Domain

    network = load_onnx(ACAS)
    prop = GlobalRobustness(network, Domain(np.full(5, 0.05), np.full(5, 0.15)), 0.01, eps, norm)
    print(f"acas-global: ACAS Xu 1_1, D = [0.05, 0.15]^5, {norm} delta 0.01, eps {eps} (robust: sampled max "
          "difference 9e-5; adaptive refinement proves it)")
    solve_each(prop.query(), ("auto", "relu-split"), timeout)


def falsify_cost(timeout):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from table1 import DOMAIN_LOWER, DOMAIN_UPPER, POINTS

    from reluverify.onnx_import import load_onnx
    from reluverify.properties.eps_local import EpsLocalRobustness
    from reluverify.properties.inputs import Domain
    from reluverify.solver import SolverOptions, solve

    network = load_onnx(ACAS)
    prop = EpsLocalRobustness(network, np.array(POINTS[1]), 0.018, 0.02, "inf", Domain(DOMAIN_LOWER, DOMAIN_UPPER))
    query = prop.query()
    print("falsify-cost: Table 1 point 1, eps 0.02 (robust, 10 disjuncts)")
    for falsify in (True, False):
        start = time.perf_counter()
        result = solve(query, SolverOptions(timeout=timeout, falsify=falsify))
        print(f"  falsify={falsify!s:<5} {result.verdict} {time.perf_counter() - start:.3f} s  boxes {result.statistics.boxes}")


CASES = {
    "tiny-global": tiny_global,
    "acas-global": acas_global,
    "acas-global-l1": lambda timeout: acas_global(timeout, "1", 0.05),
    "falsify-cost": falsify_cost,
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(CASES)
    for name in names:
        CASES[name](timeout=60.0)
