"""The branch-and-bound pool (relu_bab._Pool): what is pushed comes out once, rows stay whole."""

from __future__ import annotations

import numpy as np

from reluverify.solver.relu_bab.pool import Pool as _Pool


def test_the_pool_keeps_every_row_whole_through_random_pushes_and_pops():
    rng = np.random.default_rng(0)
    pool, expected = _Pool(), []
    for _ in range(300):
        rows = rng.integers(0, 10**9, int(rng.integers(0, 40)))
        pool.push({"key": rows.astype(np.int64), "pair": np.stack([rows, -rows], axis=1)})
        expected += rows.tolist()
        if pool.size:
            index = rng.choice(pool.size, int(rng.integers(1, pool.size + 1)), replace=False)
            wanted = pool.view("key")[index].copy()
            out = pool.pop(index)
            np.testing.assert_array_equal(out["key"], wanted)
            np.testing.assert_array_equal(out["pair"], np.stack([wanted, -wanted], axis=1))
            for r in wanted.tolist():
                expected.remove(r)
        assert sorted(pool.view("key").tolist()) == sorted(expected)
        np.testing.assert_array_equal(pool.view("pair"), np.stack([pool.view("key"), -pool.view("key")], axis=1))
