"""max-eps against an exact method independent of its bounds, on random small networks.

200 networks (2-5 inputs, 1-3 hidden layers of 2-10 ReLUs, 1-3 outputs), each with a random box
domain, a random delta and norm (L-inf, L1): the bracket ``[L, U]`` that
:func:`reluverify.properties.max_eps.max_eps` reaches in a short budget must contain ``eps*(delta)``
as a two-copy MILP (:mod:`exact_pairs`, scipy's HiGHS) brackets it: ``U >= the MILP's best pair`` and
``L <= the MILP's dual bound``, overall and per output. ``L``'s pair is checked on its own: both
points in the domain, at distance at most delta, and their onnxruntime outputs differ by ``L``.
"""

from __future__ import annotations

import numpy as np
import pytest

from exact_pairs import eps_interval
from reluverify.properties.max_eps import max_eps
from reluverify.properties.inputs import Domain
from test_properties_oracles import random_net

NETWORKS = 200
CHUNK = 10
TOLERANCE = 1e-6


def _case(seed: int):
    rng = np.random.default_rng(5000 + seed)
    n = int(rng.integers(2, 6))
    hidden = [int(rng.integers(2, 11)) for _ in range(int(rng.integers(1, 4)))]
    sizes = [n, *hidden, int(rng.integers(1, 4))]
    lower = rng.uniform(-1.0, 0.5, n)
    upper = lower + rng.uniform(0.05, 1.0, n)
    delta = float(rng.choice([0.001, 0.01, 0.05, 0.2]))
    norm = "inf" if seed % 3 else "1"
    return sizes, lower, upper, delta, norm


@pytest.mark.parametrize("chunk", range(NETWORKS // CHUNK))
def test_bracket_contains_the_exact_eps(tmp_path, chunk):
    for seed in range(chunk * CHUNK, (chunk + 1) * CHUNK):
        sizes, lower, upper, delta, norm = _case(seed)
        net = random_net(tmp_path, seed, sizes)
        primal, dual = eps_interval(net.network.relu_chain(), lower, upper, delta, norm, time_limit=5.0)
        found = max_eps(net.network, Domain(lower, upper), [delta], norm, gap=0.0, timeout=0.2).brackets[0]
        scale = TOLERANCE * (1.0 + np.abs(primal).max())
        where = f"seed {seed}, sizes {sizes}, delta {delta}, L{norm}"
        assert found.upper >= primal.max() - scale, where
        assert found.lower <= dual.max() + scale, where
        assert np.all(np.array(found.output_upper) >= primal - scale), where
        assert np.all(np.array(found.output_lower) <= np.maximum(dual, 0.0) + scale), where
        if found.pair is not None:
            x1, x2 = np.array(found.pair["x1"]), np.array(found.pair["x2"])
            assert np.all(x1 >= lower) and np.all(x1 <= upper) and np.all(x2 >= lower) and np.all(x2 <= upper)
            gap = np.abs(x2 - x1).max() if norm == "inf" else np.abs(x2 - x1).sum()
            assert gap <= delta * (1 + 1e-12), where
            change = np.array(found.pair["outputs2"]) - np.array(found.pair["outputs1"])
            assert change[found.pair["output"]] >= found.lower - 1e-9, where
