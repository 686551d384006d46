"""Structured linear operators: every operator agrees with its own dense matrix, and convolutions with torch."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from reluverify import linear_ops as lo
from reluverify.errors import NetworkError


def _check(op, rng, exact_abs=True):
    """forward, backward, absolute, rows, dense, pickling and the helpers agree with ``dense()``."""
    out_size, in_size = lo.shape(op)
    matrix = lo.dense(op)
    assert matrix.shape == (out_size, in_size)
    x = rng.normal(size=(4, in_size))
    c = rng.normal(size=(3, out_size))
    assert np.allclose(lo.forward(op, x), x @ matrix.T, atol=1e-12)
    assert np.allclose(lo.backward(op, c), c @ matrix, atol=1e-12)
    assert np.allclose(lo.forward(op, x[0]), matrix @ x[0], atol=1e-12)
    assert np.allclose(lo.matvec(op, x[0]), matrix @ x[0], atol=1e-12)
    if exact_abs:
        assert np.allclose(lo.dense(lo.absolute(op)), np.abs(matrix), atol=1e-12)
    index = rng.integers(0, out_size, size=min(5, out_size))
    assert np.allclose(lo.rows(op, index), matrix[index])
    assert np.allclose(lo.dense(lo.scaled(op, -2.5)), -2.5 * matrix, atol=1e-12)
    copy = pickle.loads(pickle.dumps(op))
    assert np.array_equal(lo.dense(copy), matrix)
    assert lo.signature(copy) == lo.signature(op)
    assert lo.matrix_size(op) == out_size * in_size
    assert lo.nbytes(op) >= 0 and lo.finite(op)
    return matrix


def _torch_conv(x, kernel, spatial, strides, pads, dilations, groups):
    nd = len(spatial)
    t = torch.tensor(x.reshape((x.shape[0], kernel.shape[1] * groups) + tuple(spatial)))
    if nd == 1:
        t = torch.nn.functional.pad(t, (pads[0], pads[1]))
        y = torch.nn.functional.conv1d(t, torch.tensor(kernel), stride=strides, dilation=dilations, groups=groups)
    else:
        t = torch.nn.functional.pad(t, (pads[1], pads[3], pads[0], pads[2]))
        y = torch.nn.functional.conv2d(t, torch.tensor(kernel), stride=strides, dilation=dilations, groups=groups)
    return y.numpy().reshape(x.shape[0], -1)


def test_random_convolutions_match_torch_and_their_dense_matrix(rng):
    checked = 0
    while checked < 30:
        nd = int(rng.integers(1, 3))
        groups = int(rng.choice([1, 2, 3]))
        cg, mg = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        kernel_shape = tuple(int(rng.integers(1, 4)) for _ in range(nd))
        spatial = tuple(int(rng.integers(3, 8)) for _ in range(nd))
        strides = [int(rng.integers(1, 3)) for _ in range(nd)]
        dilations = [int(rng.integers(1, 3)) for _ in range(nd)]
        pads = [int(rng.integers(0, 3)) for _ in range(2 * nd)]  # asymmetric
        kernel = rng.normal(size=(mg * groups, cg) + kernel_shape)
        try:
            op = lo.Conv(kernel, (cg * groups,) + spatial, strides, pads, dilations, groups)
        except NetworkError:
            continue  # kernel larger than the padded input
        matrix = _check(op, rng)
        x = rng.normal(size=(3, op.shape[1]))
        assert np.allclose(x @ matrix.T, _torch_conv(x, kernel, spatial, strides, pads, dilations, groups), atol=1e-12)
        checked += 1


def test_conv_refuses_bad_geometry():
    with pytest.raises(NetworkError, match="larger than"):
        lo.Conv(np.ones((1, 1, 5, 5)), (1, 3, 3))
    with pytest.raises(NetworkError, match="groups"):
        lo.Conv(np.ones((3, 1, 1, 1)), (2, 3, 3), groups=2)
    with pytest.raises(NetworkError, match="1-D and 2-D"):
        lo.Conv(np.ones((1, 1, 1, 1, 1)), (1, 2, 2, 2))


def test_index_maps_sparse_blocks_and_sums(rng):
    n = 12
    perm = lo.IndexMap(rng.permutation(n), n)
    assert perm.injective and perm.structure == "monomial"
    _check(perm, rng)
    gather = lo.IndexMap(rng.integers(-1, n, size=20), n, rng.normal(size=20))  # repeats and zero rows
    _check(gather, rng)
    padded = lo.IndexMap(np.pad(np.arange(n).reshape(3, 4), 1, constant_values=-1).ravel(), n)
    assert np.allclose(padded.forward(np.arange(n, dtype=float)[None])[0].reshape(5, 6)[1:-1, 1:-1],
                       np.arange(n).reshape(3, 4))
    _check(padded, rng)
    _check(lo.diagonal(rng.normal(size=n)), rng)
    sparse = lo.Sparse(rng.integers(0, 7, 30), rng.integers(0, n, 30), rng.normal(size=30), (7, n))
    _check(sparse, rng)
    conv = lo.Conv(rng.normal(size=(2, 3, 2, 2)), (3, 2, 2))  # 12 -> 2
    dense = rng.normal(size=(5, n))
    grid = lo.Blocks([2, 5, 4], [n, n], {(0, 0): conv, (1, 1): dense, (2, 0): lo.identity(n).rows(np.arange(4))})
    _check(grid, rng)
    _check(lo.BlockDiagonal([conv, perm, dense]), rng)
    _check(lo.Repeat(conv, 3), rng)
    _check(lo.Repeat(dense, 2), rng)
    _check(lo.Sum([dense, lo.Conv(rng.normal(size=(5, 3, 2, 2)), (3, 2, 2))]), rng)


def test_composites_are_exact_or_fold(rng):
    n = 3 * 4 * 4
    conv = lo.Conv(rng.normal(size=(2, 3, 3, 3)), (3, 4, 4), pads=[1, 1, 1, 1])  # 48 -> 32
    perm = lo.IndexMap(rng.permutation(n), n)
    after = lo.IndexMap(rng.permutation(32), 32, rng.normal(size=32))
    composite = lo.Composite([perm, conv, after])
    assert composite.exact_absolute
    matrix = _check(composite, rng)
    assert np.allclose(matrix, lo.dense(after) @ lo.dense(conv) @ lo.dense(perm))
    # two general factors: |W| is not |A||B|, and absolute() says so by folding to dense
    twice = lo.Composite([conv, lo.Conv(rng.normal(size=(1, 2, 2, 2)), (2, 4, 4))])
    assert not twice.exact_absolute
    _check(twice, rng)
    assert isinstance(twice.absolute(), np.ndarray)
    # compose: identities vanish, index maps merge, small dense products multiply out
    assert lo.compose(conv, lo.identity(n)) is conv
    assert isinstance(lo.compose(perm, perm), lo.IndexMap)
    folded = lo.compose(rng.normal(size=(4, 32)), lo.compose(after, conv))
    assert isinstance(folded, np.ndarray) and folded.shape == (4, n)
    big = lo.compose(conv.with_kernel(np.ones((2, 3, 3, 3))), lo.Conv(np.ones((3, 3, 1, 1)), (3, 4, 4)), limit=0)
    assert isinstance(big, lo.Composite) and not big.exact_absolute
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(4, 5))
    assert np.array_equal(lo.compose(a, b), a @ b)


def test_channel_scales_fold_into_the_kernel(rng):
    conv = lo.Conv(rng.normal(size=(4, 2, 3, 3)), (2, 5, 5))
    out_scale = rng.uniform(0.5, 2.0, size=4)
    folded = lo.compose(lo.diagonal(np.repeat(out_scale, 9)), conv)
    assert isinstance(folded, lo.Conv)
    assert np.allclose(lo.dense(folded), np.repeat(out_scale, 9)[:, None] * lo.dense(conv))
    in_scale = rng.uniform(0.5, 2.0, size=2)
    folded = lo.compose(conv, lo.diagonal(np.repeat(in_scale, 25)))
    assert isinstance(folded, lo.Conv)
    assert np.allclose(lo.dense(folded), lo.dense(conv) * np.repeat(in_scale, 25)[None, :])


def test_dense_helpers_keep_the_ndarray_path(rng):
    w = rng.normal(size=(3, 4))
    x = rng.normal(size=(2, 4))
    assert np.array_equal(lo.forward(w, x), x @ w.T)
    assert np.array_equal(lo.absolute(w), np.abs(w))
    assert lo.dense(w) is w and lo.shape(w) == (3, 4)
    assert isinstance(lo.from_dense(np.eye(4)), lo.IndexMap)
    assert isinstance(lo.from_dense(w), np.ndarray)


def test_dense_is_refused_above_the_limit(monkeypatch):
    monkeypatch.setattr(lo.base, "DENSE_LIMIT", 100)
    with pytest.raises(NetworkError, match="too large"):
        lo.identity(11).dense()


def test_zero_column_skipping_decides_as_the_full_scan_does():
    """The early look at the first 64 rows only ends the scan when those rows already use too many
    columns; otherwise every row counts (late rows may use the columns the first ones leave zero)."""
    from reluverify import linear_ops

    rng = np.random.default_rng(3)
    rows, cols = 400, 256
    dense = rng.normal(size=(rows, cols))
    assert linear_ops._used_columns(dense) is None
    sparse = np.zeros((rows, cols))
    sparse[:, :40] = rng.normal(size=(rows, 40))
    np.testing.assert_array_equal(linear_ops._used_columns(sparse), np.arange(40))
    late = sparse.copy()
    late[300:, 40:] = 1.0  # the first 64 rows look sparse, the whole matrix is not
    assert linear_ops._used_columns(late) is None
    w = rng.normal(size=(7, cols))
    np.testing.assert_allclose(linear_ops.forward(w, sparse), sparse @ w.T)
